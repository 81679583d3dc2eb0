//! The consistency policy's sampler (here) and BC losses (`losses`) against
//! f64 restatements of docs/reference-notes.md §2.2-2.4 and 2.7, and both
//! over random inputs (`properties`) (with chunkql's documented
//! departures, docs/agents.md "differences" table), using denoisers of known
//! output (`KnownNet`) that depend on x, on the time input 250 ln(s) and on
//! the observation. Each test also checks that the f64 versions of the wrong
//! implementations it names land far outside its tolerance, so that those
//! variants cannot pass.

use tch::{Device, Tensor, nn};

use super::*;
use crate::noise::NoiseSource;
use crate::policy::NetKind;
use crate::policy::test_nets::{KnownNet, host, max_abs_diff};

/// H = 2, A = 2, To = 1, O = 3.
const DIMS: ChunkDims = ChunkDims {
    obs_dim: 3,
    act_dim: 2,
    horizon: 2,
    obs_horizon: 1,
};
const CHUNK: usize = 4;
const COND: usize = 3;
const TIME_DIM: i64 = 8;

fn known_policy(net: &KnownNet, cfg: &ConsistencyConfig) -> (nn::VarStore, ConsistencyPolicy) {
    let cfg = ConsistencyConfig {
        net: DenoiserConfig {
            net: NetKind::Mlp,
            hidden: vec![],
            time_dim: TIME_DIM,
            ..DenoiserConfig::default()
        },
        ..cfg.clone()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let policy = ConsistencyPolicy::new(&vs.root(), DIMS, &cfg);
    net.install(&vs, "net", TIME_DIM, COND as i64);
    (vs, policy)
}

/// reference-notes §2.3 (Karras et al. 2022 eq. 5): sigma_i =
/// (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho.
fn karras_f64(i: usize, cfg: &ConsistencyConfig) -> f64 {
    let (lo, hi) = (
        cfg.sigma_min.powf(1.0 / cfg.rho),
        cfg.sigma_max.powf(1.0 / cfg.rho),
    );
    (hi + i as f64 / (cfg.scales - 1) as f64 * (lo - hi)).powf(cfg.rho)
}

/// reference-notes §2.2, one row: c_skip = sd^2 / ((s - smin)^2 + sd^2),
/// c_out = (s - smin) sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(s^2 + sd^2),
/// D(x, s) = c_skip x + c_out F(c_in x, time, obs), time = 250 ln(s) unless
/// a test passes a wrong one. No clamp here: chunkql clamps only where chunks
/// are sampled (docs/agents.md, "CPQL's D(x, s) in the BC loss").
fn denoise_f64(
    net: &KnownNet,
    cfg: &ConsistencyConfig,
    x: &[f64],
    s: f64,
    time: f64,
    obs: &[f64],
) -> Vec<f64> {
    let (smin, sd) = (cfg.sigma_min, cfg.sigma_data);
    let c_skip = sd * sd / ((s - smin).powi(2) + sd * sd);
    let c_out = (s - smin) * sd / (s * s + sd * sd).sqrt();
    let c_in = 1.0 / (s * s + sd * sd).sqrt();
    let scaled: Vec<f64> = x.iter().map(|v| c_in * v).collect();
    let f = net.output(&scaled, time, obs);
    x.iter()
        .zip(f)
        .map(|(x, f)| c_skip * x + c_out * f)
        .collect()
}

fn c_out_f64(s: f64, cfg: &ConsistencyConfig) -> f64 {
    let (smin, sd) = (cfg.sigma_min, cfg.sigma_data);
    (s - smin) * sd / (s * s + sd * sd).sqrt()
}

/// Wrong samplers whose f64 results the sampling test keeps far from the
/// right one (and so from the policy's output).
#[derive(Debug, Clone, Copy, PartialEq)]
enum SampleFlaw {
    Correct,
    /// x_T = z instead of sigma_max z.
    UnscaledStart,
    /// Re-noising with s z instead of sqrt(s^2 - smin^2) z.
    RenoiseWithS,
    /// No clamp to [-1, 1] before re-noising.
    NoClampBetweenSteps,
    /// No clamp of the result.
    NoFinalClamp,
    /// Time input ln(s) instead of 250 ln(s).
    TimeLnSigma,
    /// Time input s instead of 250 ln(s).
    TimeSigma,
}

/// reference-notes §2.7 with chunkql's levels (docs/agents.md, "CPQL
/// multi-step sampling"): levels s_0 = sigma_max > s_1 > ... at `indices` of
/// the discretisation; x = D(sigma_max z_0, sigma_max), then for each further
/// level s_k: x = D(clamp(x) + sqrt(s_k^2 - smin^2) z_k, s_k); the result is
/// clamp(x). (CPQL clamps inside its D, which amounts to the same clamps in
/// the sampler.) `draws[k]` is z_k, `[B * H * A]`.
fn sample_f64(
    net: &KnownNet,
    cfg: &ConsistencyConfig,
    obs: &[f64],
    draws: &[Vec<f64>],
    indices: &[usize],
    flaw: SampleFlaw,
) -> Vec<f64> {
    let levels: Vec<f64> = indices.iter().map(|&i| karras_f64(i, cfg)).collect();
    let time = |s: f64| match flaw {
        SampleFlaw::TimeLnSigma => s.ln(),
        SampleFlaw::TimeSigma => s,
        _ => 250.0 * s.ln(),
    };
    let denoise_all = |x: &[f64], s: f64| -> Vec<f64> {
        x.chunks(CHUNK)
            .zip(obs.chunks(COND))
            .flat_map(|(x, o)| denoise_f64(net, cfg, x, s, time(s), o))
            .collect()
    };
    let start = if flaw == SampleFlaw::UnscaledStart {
        1.0
    } else {
        levels[0]
    };
    let x0: Vec<f64> = draws[0].iter().map(|z| start * z).collect();
    let mut x = denoise_all(&x0, levels[0]);
    for (k, &s) in levels.iter().enumerate().skip(1) {
        let smin = cfg.sigma_min;
        let spread = if flaw == SampleFlaw::RenoiseWithS {
            s
        } else {
            (s * s - smin * smin).sqrt()
        };
        let noisy: Vec<f64> = x
            .iter()
            .zip(&draws[k])
            .map(|(&x, &z)| {
                let x = if flaw == SampleFlaw::NoClampBetweenSteps {
                    x
                } else {
                    x.clamp(-1.0, 1.0)
                };
                x + spread * z
            })
            .collect();
        x = denoise_all(&noisy, s);
    }
    if flaw != SampleFlaw::NoFinalClamp {
        for v in &mut x {
            *v = v.clamp(-1.0, 1.0);
        }
    }
    x
}

/// `sampling_sigmas` for the default 40 levels (0.002..80, rho 7), worked
/// by hand from "sample_steps evenly spaced indices k x 39 / steps" (integer
/// division; docs/agents.md) and the table of reference-notes §2.3:
/// - 1 step:  [0]                                   -> [80]
/// - 2 steps: [0, 39/2 = 19]                        -> [80, 2.81839]
/// - 3 steps: [0, 39/3 = 13, 78/3 = 26]             -> [80, 9.7232, 0.46998]
/// - 4 steps: [0, 39/4 = 9, 78/4 = 19, 117/4 = 29]  -> [80, 19.94563, 2.81839, 0.18459]
///
/// Catches: a linspace including sigma_min (3 steps: 0, 19, 39), levels
/// after the first ((k + 1) 39 / 3: 13, 26, 39), k N / steps instead of
/// k (N - 1) / steps (4 steps: 0, 10, 20, 30), rounding instead of
/// truncating (4 steps: 0, 10, 20, 29), and sample_steps = 0 not meaning 1.
#[test]
fn sampling_sigmas_are_pinned_for_40_scales() {
    let table = karras_sigmas(40, 0.002, 80.0, 7.0);
    for (steps, indices, values) in [
        (0usize, vec![0usize], vec![80.0]),
        (1, vec![0], vec![80.0]),
        (2, vec![0, 19], vec![80.0, 2.81839]),
        (3, vec![0, 13, 26], vec![80.0, 9.7232, 0.46998]),
        (
            4,
            vec![0, 9, 19, 29],
            vec![80.0, 19.94563, 2.81839, 0.18459],
        ),
    ] {
        let cfg = ConsistencyConfig {
            sample_steps: steps,
            net: DenoiserConfig {
                hidden: vec![],
                time_dim: TIME_DIM,
                ..DenoiserConfig::default()
            },
            ..ConsistencyConfig::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let policy = ConsistencyPolicy::new(&vs.root(), DIMS, &cfg);
        let got = policy.sampling_sigmas();
        let at_indices: Vec<f64> = indices.iter().map(|&i| table[i]).collect();
        assert_eq!(
            got, at_indices,
            "{steps} steps: not the levels at {indices:?}"
        );
        for (g, v) in got.iter().zip(&values) {
            // The table's values are rounded to 5 decimals (7 digits).
            assert!((g - v).abs() <= 1e-5, "{steps} steps: {got:?}");
        }
    }
}

/// A case of the sampling test: the discretisation, `sample_steps`, the
/// indices of the levels worked out by hand, the flaws that the case must
/// tell apart and other indices that it must tell apart.
type SampleCase = (
    ConsistencyConfig,
    usize,
    Vec<usize>,
    Vec<SampleFlaw>,
    Vec<Vec<usize>>,
);

/// `sample` against `sample_f64`, noise replayed from a clone of the
/// stream, for a net whose output depends on c_in x (k), the time input
/// 250 ln(s) (w_t != 0) and the observation. Cases: a small discretisation
/// (N = 8, sigma 0.4..5, so that sqrt(s^2 - smin^2) differs from s by 3-6%)
/// with 1 and 3 steps (hand indices: 7/3 = 2, 14/3 = 4 -> [0, 2, 4]), and
/// the default 40 levels with 3 steps ([0, 13, 26]).
///
/// Catches: initial noise not multiplied by sigma_max, re-noising with s
/// instead of sqrt(s^2 - sigma_min^2), no clamp between steps or at the
/// end, a time input other than 250 ln(s) (ln s, s), and levels at other
/// indices (0, 3, 7 = a linspace to sigma_min; 2, 4, 7 = (k + 1) 7 / 3;
/// 0, 2, 5 = k N / steps; 0, 19, 39 and 13, 26, 39 for 40 levels).
#[test]
fn sample_matches_the_f64_sampler_for_a_time_dependent_net() {
    const B: usize = 4;
    const TOL: f64 = 5e-5;
    let net = KnownNet {
        k: 0.7,
        w_t: 0.9,
        u: 0.4,
        bias: vec![2.6, -0.5, 0.3, -2.9],
    };
    let obs: Vec<f32> = vec![
        0.5, -0.2, 0.1, -0.6, 0.3, 0.2, 0.0, 0.9, -0.4, 0.2, -0.1, -0.8,
    ];
    let obs_t = Tensor::from_slice(&obs).view([B as i64, COND as i64]);
    let obs: Vec<f64> = obs.iter().map(|&v| v as f64).collect();
    let small = ConsistencyConfig {
        sigma_min: 0.4,
        sigma_max: 5.0,
        scales: 8,
        ..ConsistencyConfig::default()
    };
    use SampleFlaw::*;
    let all_flaws = vec![
        UnscaledStart,
        RenoiseWithS,
        NoClampBetweenSteps,
        NoFinalClamp,
        TimeLnSigma,
        TimeSigma,
    ];
    let cases: Vec<SampleCase> = vec![
        (
            small.clone(),
            1,
            vec![0],
            vec![UnscaledStart, NoFinalClamp, TimeLnSigma, TimeSigma],
            vec![],
        ),
        (
            small.clone(),
            3,
            vec![0, 2, 4],
            all_flaws,
            vec![vec![0, 3, 7], vec![2, 4, 7], vec![0, 2, 5]],
        ),
        (
            ConsistencyConfig::default(),
            3,
            vec![0, 13, 26],
            // With sigma_min = 0.002, s and sqrt(s^2 - smin^2) agree to 2e-7
            // at these levels, and a clamp at 80 changes the result by less
            // than 2e-3 (c_skip(9.72) = 0.0026): `RenoiseWithS` and
            // `NoClampBetweenSteps` are caught by the small case.
            vec![UnscaledStart, TimeLnSigma, TimeSigma],
            vec![vec![0, 19, 39], vec![13, 26, 39]],
        ),
    ];
    for (base, steps, indices, flaws, wrong_indices) in cases {
        let cfg = ConsistencyConfig {
            sample_steps: steps,
            ..base
        };
        let (_vs, policy) = known_policy(&net, &cfg);
        let want_levels: Vec<f64> = indices.iter().map(|&i| karras_f64(i, &cfg)).collect();
        let levels = policy.sampling_sigmas();
        assert_eq!(levels.len(), want_levels.len());
        for (g, w) in levels.iter().zip(&want_levels) {
            assert!((g - w).abs() <= 1e-12 * w, "{levels:?} vs {want_levels:?}");
        }

        for seed in [5u64, 6] {
            let mut noise = NoiseSource::new(seed, Device::Cpu);
            let mut replay = noise.clone();
            let got = host(&crate::nn::no_grad(|| policy.sample(&obs_t, &mut noise)));
            let draws: Vec<Vec<f64>> = (0..steps)
                .map(|_| host(&replay.normal(&[B as i64, 2, 2])))
                .collect();
            let want = sample_f64(&net, &cfg, &obs, &draws, &indices, Correct);
            let err = max_abs_diff(&got, &want);
            assert!(
                err <= TOL,
                "N {} steps {steps} seed {seed}: {got:?} vs {want:?}",
                cfg.scales
            );
            // The case exercises the clamps: some outputs end inside the
            // box, so they carry the arithmetic.
            assert!(want.iter().any(|v| v.abs() < 0.95), "{want:?}");

            for &flaw in &flaws {
                let wrong = sample_f64(&net, &cfg, &obs, &draws, &indices, flaw);
                let gap = max_abs_diff(&wrong, &want);
                assert!(
                    gap > 20.0 * TOL,
                    "N {} steps {steps} seed {seed}: {flaw:?} only {gap} away",
                    cfg.scales
                );
            }
            for other in &wrong_indices {
                let wrong = sample_f64(&net, &cfg, &obs, &draws, other, Correct);
                let gap = max_abs_diff(&wrong, &want);
                assert!(
                    gap > 20.0 * TOL,
                    "N {} steps {steps} seed {seed}: indices {other:?} only {gap} away",
                    cfg.scales
                );
            }
        }
    }
}

#[path = "consistency_loss_tests.rs"]
mod losses;
#[path = "consistency_properties.rs"]
mod properties;
