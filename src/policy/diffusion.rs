//! DDPM diffusion policy over `[H, A]` chunks (Diffusion-QL's, with its VP
//! schedule): epsilon prediction, x0 clipped to the action bounds [-1, 1] at
//! every reverse step, gradients through every step when grad mode is on.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

use super::denoiser::{Denoiser, DenoiserConfig};
use crate::chunk::ChunkDims;
use crate::noise::NoiseSource;

/// DDPM settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffusionConfig {
    /// T, denoising steps (Diffusion-QL: 5).
    pub steps: usize,
    /// VP schedule's beta_min and beta_max.
    pub beta_min: f64,
    pub beta_max: f64,
    pub net: DenoiserConfig,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        DiffusionConfig {
            steps: 5,
            beta_min: 0.1,
            beta_max: 10.0,
            net: DenoiserConfig::default(),
        }
    }
}

/// The VP schedule: for t = 1..=T,
/// alpha_t = exp(-b_min/T - (b_max - b_min)(2t - 1) / (2 T^2)), beta_t = 1 - alpha_t.
pub fn vp_betas(steps: usize, beta_min: f64, beta_max: f64) -> Vec<f64> {
    let t_max = steps as f64;
    (1..=steps)
        .map(|t| {
            let t = t as f64;
            let alpha = (-beta_min / t_max
                - 0.5 * (beta_max - beta_min) * (2.0 * t - 1.0) / (t_max * t_max))
                .exp();
            1.0 - alpha
        })
        .collect()
}

/// Every coefficient DDPM needs, per step index i = 0..T-1 (host, f64).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    pub sqrt_alphas_cumprod: Vec<f64>,
    pub sqrt_one_minus_alphas_cumprod: Vec<f64>,
    pub sqrt_recip_alphas_cumprod: Vec<f64>,
    pub sqrt_recipm1_alphas_cumprod: Vec<f64>,
    /// log(max(posterior variance, 1e-20)).
    pub posterior_log_variance: Vec<f64>,
    /// Posterior mean = coef1 * x0 + coef2 * x_t.
    pub posterior_mean_coef1: Vec<f64>,
    pub posterior_mean_coef2: Vec<f64>,
}

impl Schedule {
    pub fn new(betas: Vec<f64>) -> Self {
        let mut abar = Vec::with_capacity(betas.len());
        let mut acc = 1.0;
        for b in &betas {
            acc *= 1.0 - b;
            abar.push(acc);
        }
        let abar_prev: Vec<f64> = std::iter::once(1.0)
            .chain(abar.iter().copied())
            .take(betas.len())
            .collect();
        let each = |f: &dyn Fn(usize) -> f64| (0..betas.len()).map(f).collect::<Vec<f64>>();
        Schedule {
            sqrt_alphas_cumprod: each(&|i| abar[i].sqrt()),
            sqrt_one_minus_alphas_cumprod: each(&|i| (1.0 - abar[i]).sqrt()),
            sqrt_recip_alphas_cumprod: each(&|i| (1.0 / abar[i]).sqrt()),
            sqrt_recipm1_alphas_cumprod: each(&|i| (1.0 / abar[i] - 1.0).sqrt()),
            posterior_log_variance: each(&|i| {
                (betas[i] * (1.0 - abar_prev[i]) / (1.0 - abar[i]))
                    .max(1e-20)
                    .ln()
            }),
            posterior_mean_coef1: each(&|i| betas[i] * abar_prev[i].sqrt() / (1.0 - abar[i])),
            posterior_mean_coef2: each(&|i| {
                (1.0 - abar_prev[i]) * (1.0 - betas[i]).sqrt() / (1.0 - abar[i])
            }),
            alphas_cumprod: abar,
            betas,
        }
    }

    /// The first coefficient (name, step index, value) that is not a finite
    /// number representable in float32, the precision the policy computes
    /// in; `None` when every one is. Betas too large drive alpha_bar so
    /// close to 0 (or, once alpha_t = exp(...) is below f64's epsilon, to 0
    /// exactly: beta_t rounds to 1) that 1 / sqrt(alpha_bar) overflows; betas
    /// too small round alpha_t to 1 and 1 - alpha_bar to 0.
    pub fn first_unusable(&self) -> Option<(&'static str, usize, f64)> {
        let tables: [(&'static str, &[f64]); 9] = [
            ("betas", &self.betas),
            ("alphas_cumprod", &self.alphas_cumprod),
            ("sqrt_alphas_cumprod", &self.sqrt_alphas_cumprod),
            (
                "sqrt_one_minus_alphas_cumprod",
                &self.sqrt_one_minus_alphas_cumprod,
            ),
            ("sqrt_recip_alphas_cumprod", &self.sqrt_recip_alphas_cumprod),
            (
                "sqrt_recipm1_alphas_cumprod",
                &self.sqrt_recipm1_alphas_cumprod,
            ),
            ("posterior_log_variance", &self.posterior_log_variance),
            ("posterior_mean_coef1", &self.posterior_mean_coef1),
            ("posterior_mean_coef2", &self.posterior_mean_coef2),
        ];
        tables.into_iter().find_map(|(name, values)| {
            values
                .iter()
                .position(|v| !(v.is_finite() && v.abs() <= f32::MAX as f64))
                .map(|i| (name, i, values[i]))
        })
    }
}

/// DDPM policy pi(chunk | obs history).
#[derive(Debug)]
pub struct DiffusionPolicy {
    net: Denoiser,
    schedule: Schedule,
    /// `[T]` on the device, for the per-sample gather of the BC loss.
    sqrt_abar: Tensor,
    sqrt_one_minus_abar: Tensor,
    dims: ChunkDims,
}

impl DiffusionPolicy {
    pub fn new(p: &nn::Path, dims: ChunkDims, cfg: &DiffusionConfig) -> Self {
        let schedule = Schedule::new(vp_betas(cfg.steps, cfg.beta_min, cfg.beta_max));
        let on_device = |v: &[f64]| {
            Tensor::from_slice(v)
                .to_kind(Kind::Float)
                .to_device(p.device())
        };
        DiffusionPolicy {
            net: Denoiser::new(&(p / "net"), dims, &cfg.net),
            sqrt_abar: on_device(&schedule.sqrt_alphas_cumprod),
            sqrt_one_minus_abar: on_device(&schedule.sqrt_one_minus_alphas_cumprod),
            schedule,
            dims,
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Noise-prediction MSE at a uniform random step per sample:
    /// obs `[B, To*O]`, actions `[B, H, A]` in [-1, 1] -> scalar.
    pub fn bc_loss(&self, obs: &Tensor, actions: &Tensor, noise: &mut NoiseSource) -> Tensor {
        let b = actions.size()[0];
        let t = noise.integers(b as usize, self.schedule.betas.len() as i64);
        let eps = noise.normal(&actions.size());
        let coef = |table: &Tensor| table.index_select(0, &t).view([b, 1, 1]);
        let noisy = actions * coef(&self.sqrt_abar) + &eps * coef(&self.sqrt_one_minus_abar);
        let predicted = self.net.forward(&noisy, &t.to_kind(Kind::Float), obs);
        (predicted - eps).square().mean(Kind::Float)
    }

    /// Reverse diffusion from N(0, I): obs `[B, To*O]` -> chunks `[B, H, A]`
    /// in [-1, 1].
    pub fn sample(&self, obs: &Tensor, noise: &mut NoiseSource) -> Tensor {
        let b = obs.size()[0];
        let shape = [b, self.dims.horizon as i64, self.dims.act_dim as i64];
        let s = &self.schedule;
        let mut x = noise.normal(&shape);
        for i in (0..s.betas.len()).rev() {
            let t = Tensor::full([b], i as f64, (Kind::Float, obs.device()));
            let eps = self.net.forward(&x, &t, obs);
            let x0 = (&x * s.sqrt_recip_alphas_cumprod[i] - eps * s.sqrt_recipm1_alphas_cumprod[i])
                .clamp(-1.0, 1.0);
            let mean = x0 * s.posterior_mean_coef1[i] + &x * s.posterior_mean_coef2[i];
            x = if i > 0 {
                mean + noise.normal(&shape) * (0.5 * s.posterior_log_variance[i]).exp()
            } else {
                mean
            };
        }
        x.clamp(-1.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp_schedule_matches_diffusion_ql_numbers() {
        // docs/reference-notes.md 1.2, T = 5.
        let s = Schedule::new(vp_betas(5, 0.1, 10.0));
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 2e-6);
        assert!(
            close(
                &s.betas,
                &[0.195875, 0.458818, 0.635781, 0.754878, 0.835031]
            ),
            "{:?}",
            s.betas
        );
        assert!(close(
            &s.alphas_cumprod,
            &[0.804125, 0.435178, 0.158500, 0.038852, 0.006409]
        ));
        assert!(close(
            &s.posterior_mean_coef1,
            &[1.0, 0.728435, 0.498410, 0.312681, 0.165654]
        ));
        assert!(close(
            &s.posterior_mean_coef2,
            &[0.0, 0.255116, 0.405078, 0.433466, 0.392901]
        ));
        let var: Vec<f64> = s.posterior_log_variance.iter().map(|l| l.exp()).collect();
        assert!(close(&var[1..], &[0.159114, 0.426742, 0.660907, 0.807766]));
        assert!(var[0] < 1e-19, "step 0 has no posterior noise");
        assert_eq!(s.first_unusable(), None);
    }

    #[test]
    fn schedules_that_overflow_float32_or_divide_by_zero_are_found() {
        // T = 20, alpha_bar_19 ~ exp(-180.5): finite in f64, but 1 / sqrt of
        // it is beyond float32 (alpha_bar_18 ~ exp(-162) still fits).
        let (name, i, value) = Schedule::new(vp_betas(20, 0.1, 400.0))
            .first_unusable()
            .expect("float32 overflow");
        assert_eq!((name, i), ("sqrt_recip_alphas_cumprod", 18));
        assert!(value.is_finite() && value > f32::MAX as f64, "{value}");
        // T = 5, beta_max = 500: alpha_3 = exp(-50) rounds beta_3 to 1, so
        // alpha_bar_3 = 0 and 1 / sqrt of it is inf.
        let (name, i, value) = Schedule::new(vp_betas(5, 0.1, 500.0))
            .first_unusable()
            .expect("overflow");
        assert_eq!((name, i), ("sqrt_recip_alphas_cumprod", 2));
        assert!(value.is_infinite(), "{value}");
        // beta_t rounds to 0: 1 - alpha_bar_1 = 0 and the posterior is 0 / 0.
        let (name, i, value) = Schedule::new(vp_betas(5, 1e-20, 2e-20))
            .first_unusable()
            .expect("0 / 0");
        assert_eq!((name, i), ("posterior_mean_coef1", 0));
        assert!(value.is_nan());
    }
}
