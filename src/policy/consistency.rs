//! Consistency policy (CPQL) over `[H, A]` chunks: Karras noise levels, the
//! boundary-condition parameterisation D(x, s) = c_skip(s) x + c_out(s) F(...),
//! its two behaviour-cloning losses (the released CPQL's weighted
//! reconstruction, the default, and consistency training against a target
//! (EMA) network), and one- or few-step sampling.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

use super::denoiser::{Denoiser, DenoiserConfig};
use crate::chunk::ChunkDims;
use crate::noise::NoiseSource;

/// The behaviour-cloning loss of the consistency policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyLoss {
    /// Consistency training against the target (EMA) network D', with the
    /// improvements of Song & Dhariwal 2023 (iCT): pseudo-Huber distance
    /// d(u, v) = sqrt(||u - v||^2 + c^2) - c, c = 0.00054 sqrt(H A), weighted by
    /// 1 / (s_n - s_{n+1}):
    /// d(D(a + s_n z, s_n), D'(a + s_{n+1} z, s_{n+1})) / (s_n - s_{n+1}).
    /// Keeps several modes of the data (src/agent/tests/bimodal.rs) but, with
    /// the Q term, scores far below `Reconstruction` on the built-in tasks
    /// (docs/results.md).
    Consistency,
    /// What the released CPQL code optimises, and the default:
    /// (1/s^2 + 1/sigma_data^2) ||D(a + s z, s) - a||^2, the mean over
    /// `[B, H, A]` (a denoising loss; see docs/reference-notes.md 2.4). With
    /// one-step sampling the policy is close to the data's conditional mean.
    Reconstruction,
}

/// Consistency-model settings (CPQL / Consistency Models defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsistencyConfig {
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub sigma_data: f64,
    /// Karras schedule exponent.
    pub rho: f64,
    /// N, noise levels of the discretisation.
    pub scales: usize,
    /// Network evaluations per sample (1 = one-step).
    pub sample_steps: usize,
    pub loss: ConsistencyLoss,
    pub net: DenoiserConfig,
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        ConsistencyConfig {
            sigma_min: 0.002,
            sigma_max: 80.0,
            sigma_data: 0.5,
            rho: 7.0,
            scales: 40,
            sample_steps: 1,
            loss: ConsistencyLoss::Reconstruction,
            net: DenoiserConfig::default(),
        }
    }
}

/// Karras noise levels, decreasing: sigma_i = (smax^(1/rho) + i/(N-1)
/// (smin^(1/rho) - smax^(1/rho)))^rho for i = 0..N-1.
pub fn karras_sigmas(scales: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f64> {
    let (lo, hi) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    (0..scales)
        .map(|i| (hi + i as f64 / (scales - 1) as f64 * (lo - hi)).powf(rho))
        .collect()
}

/// (c_skip, c_out, c_in) at noise level s:
/// c_skip = sd^2 / ((s - smin)^2 + sd^2), c_out = (s - smin) sd / sqrt(s^2 + sd^2),
/// c_in = 1 / sqrt(s^2 + sd^2). At s = smin, D is the identity.
pub fn scalings(s: f64, sigma_min: f64, sigma_data: f64) -> (f64, f64, f64) {
    let sd2 = sigma_data * sigma_data;
    let c_skip = sd2 / ((s - sigma_min).powi(2) + sd2);
    let c_out = (s - sigma_min) * sigma_data / (s * s + sd2).sqrt();
    let c_in = 1.0 / (s * s + sd2).sqrt();
    (c_skip, c_out, c_in)
}

/// Consistency policy pi(chunk | obs history).
#[derive(Debug)]
pub struct ConsistencyPolicy {
    net: Denoiser,
    cfg: ConsistencyConfig,
    /// Host noise levels, decreasing.
    sigmas: Vec<f64>,
    /// `[N]` the same on the device.
    sigma_table: Tensor,
    /// c of the pseudo-Huber distance.
    huber_c: f64,
    dims: ChunkDims,
}

impl ConsistencyPolicy {
    pub fn new(p: &nn::Path, dims: ChunkDims, cfg: &ConsistencyConfig) -> Self {
        let sigmas = karras_sigmas(cfg.scales, cfg.sigma_min, cfg.sigma_max, cfg.rho);
        ConsistencyPolicy {
            net: Denoiser::new(&(p / "net"), dims, &cfg.net),
            sigma_table: Tensor::from_slice(&sigmas)
                .to_kind(Kind::Float)
                .to_device(p.device()),
            sigmas,
            cfg: cfg.clone(),
            huber_c: 0.00054 * (dims.chunk_dim() as f64).sqrt(),
            dims,
        }
    }

    /// D(x, s): x `[B, H, A]`, sigma `[B]`, obs `[B, To*O]` -> `[B, H, A]`.
    /// Public for `examples/parity_dump.rs` only.
    #[doc(hidden)]
    pub fn denoise(&self, x: &Tensor, sigma: &Tensor, obs: &Tensor) -> Tensor {
        let (smin, sd) = (self.cfg.sigma_min, self.cfg.sigma_data);
        let b = x.size()[0];
        let s2_sd2 = (sigma.square() + sd * sd).view([b, 1, 1]);
        let c_skip = (sigma - smin)
            .square()
            .view([b, 1, 1])
            .g_add_scalar(sd * sd)
            .reciprocal()
            * (sd * sd);
        let c_out = (sigma - smin).view([b, 1, 1]) * sd / s2_sd2.sqrt();
        let c_in = s2_sd2.rsqrt();
        let time = (sigma + 1e-44).log() * 250.0;
        let f = self.net.forward(&(x * c_in), &time, obs);
        c_skip * x + c_out * f
    }

    fn full(&self, b: i64, value: f64, device: tch::Device) -> Tensor {
        Tensor::full([b], value, (Kind::Float, device))
    }

    /// Behaviour-cloning loss on dataset chunks: obs `[B, To*O]`, actions
    /// `[B, H, A]` in [-1, 1] -> scalar. `target` is the network the
    /// consistency loss pulls towards (the agent's EMA copy).
    pub fn bc_loss(
        &self,
        obs: &Tensor,
        actions: &Tensor,
        target: &Self,
        noise: &mut NoiseSource,
    ) -> Tensor {
        let b = actions.size()[0];
        let n = noise.integers(b as usize, self.sigmas.len() as i64 - 1);
        let sigma = self.sigma_table.index_select(0, &n);
        let z = noise.normal(&actions.size());
        let noisy = actions + &z * sigma.view([b, 1, 1]);
        let denoised = self.denoise(&noisy, &sigma, obs);
        match self.cfg.loss {
            ConsistencyLoss::Consistency => {
                let sigma_next = self.sigma_table.index_select(0, &(n + 1));
                let target = crate::nn::no_grad(|| {
                    let noisy_next = actions + &z * sigma_next.view([b, 1, 1]);
                    target.denoise(&noisy_next, &sigma_next, obs)
                });
                let squared = (denoised - target).square().sum_dim_intlist(
                    &[1i64, 2][..],
                    false,
                    Kind::Float,
                );
                let c = self.huber_c;
                let distance = (squared + c * c).sqrt() - c;
                let weight = (&sigma - &sigma_next).reciprocal();
                (weight * distance).mean(Kind::Float)
            }
            ConsistencyLoss::Reconstruction => {
                let sd = self.cfg.sigma_data;
                let weight = (sigma.square().reciprocal() + 1.0 / (sd * sd)).view([b, 1, 1]);
                (weight * (denoised - actions).square()).mean(Kind::Float)
            }
        }
    }

    /// Noise levels visited by sampling: sigma_max, then `sample_steps - 1`
    /// levels evenly spaced in the discretisation's index.
    pub fn sampling_sigmas(&self) -> Vec<f64> {
        let steps = self.cfg.sample_steps.max(1);
        let last = self.sigmas.len() - 1;
        (0..steps).map(|k| self.sigmas[k * last / steps]).collect()
    }

    /// obs `[B, To*O]` -> chunks `[B, H, A]` in [-1, 1]: x = D(sigma_max z,
    /// sigma_max), then for each further level s: x = D(clamp(x, -1, 1) +
    /// sqrt(s^2 - smin^2) z, s); the result clamped to [-1, 1].
    pub fn sample(&self, obs: &Tensor, noise: &mut NoiseSource) -> Tensor {
        let b = obs.size()[0];
        let shape = [b, self.dims.horizon as i64, self.dims.act_dim as i64];
        let device = obs.device();
        let levels = self.sampling_sigmas();
        let mut x = noise.normal(&shape) * levels[0];
        x = self.denoise(&x, &self.full(b, levels[0], device), obs);
        for &s in &levels[1..] {
            let spread = (s * s - self.cfg.sigma_min * self.cfg.sigma_min)
                .max(0.0)
                .sqrt();
            x = x.clamp(-1.0, 1.0) + noise.normal(&shape) * spread;
            x = self.denoise(&x, &self.full(b, s, device), obs);
        }
        x.clamp(-1.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::test_nets::KnownNet;

    #[test]
    fn karras_levels_match_cpql_table() {
        let s = karras_sigmas(40, 0.002, 80.0, 7.0);
        assert_eq!(s.len(), 40);
        assert!((s[0] - 80.0).abs() < 1e-9 && (s[39] - 0.002).abs() < 1e-12);
        // docs/reference-notes.md 2.3
        for (i, v) in [(1, 69.45095), (19, 2.81839), (38, 0.00368)] {
            assert!(
                (s[i] - v).abs() < 1e-4 * v.max(1.0),
                "sigma_{i} = {} vs {v}",
                s[i]
            );
        }
    }

    #[test]
    fn scalings_are_the_identity_at_sigma_min() {
        let (skip, out, _) = scalings(0.002, 0.002, 0.5);
        assert_eq!((skip, out), (1.0, 0.0));
        let (skip, out, c_in) = scalings(80.0, 0.002, 0.5);
        assert!((skip - 3.906e-5).abs() < 1e-7, "{skip}");
        assert!((out - 0.49998).abs() < 1e-5 && (c_in - 0.0125).abs() < 1e-5);
    }

    #[test]
    fn denoise_is_the_identity_at_sigma_min_and_sampling_visits_decreasing_levels() {
        use crate::noise::NoiseSource;
        let dims = ChunkDims {
            obs_dim: 2,
            act_dim: 1,
            horizon: 2,
            obs_horizon: 1,
        };
        let cfg = ConsistencyConfig {
            net: DenoiserConfig {
                hidden: vec![8],
                ..DenoiserConfig::default()
            },
            sample_steps: 3,
            ..ConsistencyConfig::default()
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let policy = ConsistencyPolicy::new(&vs.root(), dims, &cfg);
        let mut noise = NoiseSource::new(0, tch::Device::Cpu);
        let x = noise.normal(&[3, 2, 1]);
        let obs = noise.normal(&[3, 2]);
        // At sigma_min the network's output is multiplied by c_out = 0.
        let at_min = policy.denoise(&x, &policy.full(3, 0.002, tch::Device::Cpu), &obs);
        assert!(at_min.allclose(&x, 1e-6, 1e-6, false));
        let levels = policy.sampling_sigmas();
        assert_eq!(levels.len(), 3);
        assert_eq!(levels[0], 80.0);
        assert!(levels[1] > levels[2] && levels[2] > 0.002, "{levels:?}");
        let chunks = policy.sample(&obs, &mut noise);
        assert_eq!(chunks.size(), vec![3, 2, 1]);
        assert!(chunks.abs().max().double_value(&[]) <= 1.0);
    }

    /// Both BC losses against the formulas computed on the host in f64: with
    /// every weight of the network zero, F = 0 and D(x, s) = c_skip(s) x, so
    /// the losses depend only on the scalings, the drawn levels and the noise
    /// (replayed from a clone of the noise stream).
    #[test]
    fn bc_losses_match_their_formulas_for_a_zero_network() {
        use crate::noise::NoiseSource;
        let dims = ChunkDims {
            obs_dim: 1,
            act_dim: 2,
            horizon: 3,
            obs_horizon: 1,
        };
        let (b, per_row) = (5usize, 6usize);
        let actions = [0.5, -0.25, 1.0, 0.0, -1.0, 0.75];
        let batch: Vec<f32> = (0..b)
            .flat_map(|i| actions.map(|a| a * (1.0 - 0.2 * i as f32)))
            .collect();
        let chunk = Tensor::from_slice(&batch).view([b as i64, 3, 2]);
        let obs = Tensor::zeros([b as i64, 1], (Kind::Float, tch::Device::Cpu));
        for loss in [
            ConsistencyLoss::Reconstruction,
            ConsistencyLoss::Consistency,
        ] {
            let cfg = ConsistencyConfig {
                scales: 6,
                loss,
                ..ConsistencyConfig::default()
            };
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let policy = ConsistencyPolicy::new(&vs.root(), dims, &cfg);
            crate::nn::no_grad(|| {
                for mut v in vs.trainable_variables() {
                    let _ = v.zero_();
                }
            });
            let mut noise = NoiseSource::new(3, tch::Device::Cpu);
            let mut replay = noise.clone();
            let got = policy
                .bc_loss(&obs, &chunk, &policy, &mut noise)
                .double_value(&[]);

            let n = Vec::<i64>::try_from(replay.integers(b, 5)).unwrap();
            let z = Vec::<f32>::try_from(replay.normal(&[b as i64, 3, 2]).flatten(0, -1)).unwrap();
            let sigmas = karras_sigmas(6, 0.002, 80.0, 7.0);
            let skip = |s: f64| scalings(s, 0.002, 0.5).0;
            let mut total = 0.0;
            for i in 0..b {
                let (s, s_next) = (sigmas[n[i] as usize], sigmas[n[i] as usize + 1]);
                let row = i * per_row..(i + 1) * per_row;
                let (a, z) = (&batch[row.clone()], &z[row]);
                total += match loss {
                    ConsistencyLoss::Reconstruction => {
                        let w = 1.0 / (s * s) + 4.0;
                        a.iter()
                            .zip(z)
                            .map(|(&a, &z)| {
                                let (a, z) = (a as f64, z as f64);
                                w * (skip(s) * (a + s * z) - a).powi(2)
                            })
                            .sum::<f64>()
                            / per_row as f64
                    }
                    ConsistencyLoss::Consistency => {
                        let c = 0.00054 * (per_row as f64).sqrt();
                        let squared: f64 = a
                            .iter()
                            .zip(z)
                            .map(|(&a, &z)| {
                                let (a, z) = (a as f64, z as f64);
                                (skip(s) * (a + s * z) - skip(s_next) * (a + s_next * z)).powi(2)
                            })
                            .sum();
                        ((squared + c * c).sqrt() - c) / (s - s_next)
                    }
                };
            }
            let want = total / b as f64;
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{loss:?}: {got} vs {want}"
            );
        }
    }

    fn rel_close(got: f64, want: f64, tol: f64) -> bool {
        (got - want).abs() <= tol * want.abs()
    }

    /// The scalings at two levels worked by hand (sd = 4):
    /// - t = 3, eps = 0: c_skip = 16 / (9 + 16) = 0.64, c_out = 4 * 3 / 5 = 2.4,
    ///   c_in = 1 / 5 = 0.2;
    /// - t = 4, eps = 1: c_skip = 16 / (3^2 + 16) = 0.64, c_out = 4 * 3 /
    ///   sqrt(16 + 16) = 3 / sqrt 2, c_in = 1 / (4 sqrt 2).
    #[test]
    fn scalings_by_hand() {
        let (skip, out, c_in) = scalings(3.0, 0.0, 4.0);
        assert!(rel_close(skip, 0.64, 1e-15) && rel_close(out, 2.4, 1e-15));
        assert!(rel_close(c_in, 0.2, 1e-15));
        let (skip, out, c_in) = scalings(4.0, 1.0, 4.0);
        assert!(rel_close(skip, 0.64, 1e-15));
        assert!(rel_close(out, 3.0 / 2f64.sqrt(), 1e-15));
        assert!(rel_close(c_in, 1.0 / (4.0 * 2f64.sqrt()), 1e-15));
    }

    proptest! {
        /// Karras et al. 2022 eq. 5: sigma_i^(1/rho) runs in N - 1 equal
        /// steps from sigma_max^(1/rho) down to sigma_min^(1/rho), so the
        /// levels start at sigma_max, end at sigma_min and strictly decrease.
        #[test]
        fn karras_sigmas_run_strictly_down_from_sigma_max_to_sigma_min(
            scales in 2usize..=200,
            sigma_min in 1e-4f64..1.0,
            ratio in 1.5f64..1e5,
            rho in 1.0f64..10.0,
        ) {
            let sigma_max = sigma_min * ratio;
            let s = karras_sigmas(scales, sigma_min, sigma_max, rho);
            prop_assert_eq!(s.len(), scales);
            prop_assert!(rel_close(s[0], sigma_max, 1e-12), "{} vs {}", s[0], sigma_max);
            prop_assert!(rel_close(s[scales - 1], sigma_min, 1e-9), "{} vs {}", s[scales - 1], sigma_min);
            for (i, pair) in s.windows(2).enumerate() {
                prop_assert!(pair[0] > pair[1], "not decreasing at {}: {:?}", i, pair);
            }
            let step = (sigma_max.powf(1.0 / rho) - sigma_min.powf(1.0 / rho)) / (scales - 1) as f64;
            for pair in s.windows(2) {
                let gap = pair[0].powf(1.0 / rho) - pair[1].powf(1.0 / rho);
                prop_assert!(rel_close(gap, step, 1e-8), "{} vs {}", gap, step);
            }
        }

        /// The boundary-condition scalings of Song et al. 2023 (Consistency
        /// Models, appendix C), with t the noise level and eps = sigma_min:
        /// c_skip(t) = sd^2 / ((t - eps)^2 + sd^2),
        /// c_out(t) = sd (t - eps) / sqrt(sd^2 + t^2), and EDM's
        /// c_in(t) = 1 / sqrt(t^2 + sd^2); c_skip(eps) = 1 and c_out(eps) = 0
        /// make D(x, eps) = x. With eps = 0 they are EDM's scalings (Karras
        /// et al. 2022, table 1), whose training target has unit variance:
        /// c_skip^2 t^2 + (1 - c_skip)^2 sd^2 = c_out^2.
        #[test]
        fn scalings_match_song_et_al_2023(
            sigma_data in 0.01f64..10.0,
            sigma_min in 1e-4f64..1.0,
            above in 0.0f64..100.0,
        ) {
            let t = sigma_min + above;
            let (c_skip, c_out, c_in) = scalings(t, sigma_min, sigma_data);
            let sd2 = sigma_data.powi(2);
            let want_skip = sd2 / ((t - sigma_min).powi(2) + sd2);
            let want_out = sigma_data * (t - sigma_min) / (sd2 + t.powi(2)).sqrt();
            let want_in = 1.0 / (t.powi(2) + sd2).sqrt();
            prop_assert!(rel_close(c_skip, want_skip, 1e-12), "c_skip {} vs {}", c_skip, want_skip);
            prop_assert!(rel_close(c_out, want_out, 1e-12), "c_out {} vs {}", c_out, want_out);
            prop_assert!(rel_close(c_in, want_in, 1e-12), "c_in {} vs {}", c_in, want_in);
            prop_assert!(c_skip > 0.0 && c_skip <= 1.0 && c_out >= 0.0);

            let (skip_at_min, out_at_min, _) = scalings(sigma_min, sigma_min, sigma_data);
            prop_assert_eq!((skip_at_min, out_at_min), (1.0, 0.0));

            let (skip, out, c_in) = scalings(t, 0.0, sigma_data);
            let variance = skip.powi(2) * t.powi(2) + (1.0 - skip).powi(2) * sd2;
            prop_assert!(rel_close(variance, out.powi(2), 1e-12), "{} vs {}", variance, out.powi(2));
            prop_assert!(rel_close(c_in.powi(2) * (t.powi(2) + sd2), 1.0, 1e-12));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The policy computes its scalings on the device, apart from
        /// `scalings`: with a net of known output F (`KnownNet`, no time
        /// term), D(x, s) = c_skip x + c_out F(c_in x) must equal the f64
        /// value from `scalings` at any level in [sigma_min, sigma_max].
        #[test]
        fn denoise_applies_the_scalings_to_a_known_net(
            seed in any::<u64>(),
            sigma_data in 0.05f64..5.0,
            position in 0.0f64..1.0,
            k in -1.0f64..1.0,
            u in -0.5f64..0.5,
            bias in proptest::collection::vec(-0.5f64..0.5, 4),
        ) {
            let dims = ChunkDims { obs_dim: 3, act_dim: 2, horizon: 2, obs_horizon: 1 };
            let cfg = ConsistencyConfig {
                sigma_data,
                net: DenoiserConfig { hidden: vec![], time_dim: 8, ..DenoiserConfig::default() },
                ..ConsistencyConfig::default()
            };
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let policy = ConsistencyPolicy::new(&vs.root(), dims, &cfg);
            let net = KnownNet { k, w_t: 0.0, u, bias };
            net.install(&vs, "net", 8, 3);
            // Log-uniform between the ends, as float32 holds it.
            let sigma = (cfg.sigma_min * (cfg.sigma_max / cfg.sigma_min).powf(position)) as f32 as f64;
            let mut noise = NoiseSource::new(seed, tch::Device::Cpu);
            let x = noise.normal(&[4, 2, 2]) * sigma;
            let obs = noise.normal(&[4, 3]);
            let got = crate::nn::no_grad(|| policy.denoise(&x, &policy.full(4, sigma, tch::Device::Cpu), &obs));
            let host = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
            let (got, x, obs) = (host(&got), host(&x), host(&obs));
            let (c_skip, c_out, c_in) = scalings(sigma, cfg.sigma_min, sigma_data);
            for r in 0..4 {
                let row = &x[r * 4..(r + 1) * 4];
                let scaled: Vec<f64> = row.iter().map(|v| c_in * v).collect();
                let f = net.output(&scaled, 0.0, &obs[r * 3..(r + 1) * 3]);
                for j in 0..4 {
                    let want = c_skip * row[j] + c_out * f[j];
                    let got = got[r * 4 + j];
                    prop_assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + row[j].abs()),
                        "sigma {}: {} vs {}", sigma, got, want
                    );
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "consistency_tests.rs"]
mod formula_tests;
