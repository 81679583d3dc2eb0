//! CPQL's two BC losses against f64 restatements of docs/reference-notes.md
//! §2.4: consistency training with a distinct target network (and the
//! gradient it must not get), and the reconstruction loss, each for a net
//! whose output depends on the time input.

use tch::{Device, Tensor};

use super::*;

/// Wrong consistency losses whose f64 values the loss test keeps far from
/// the right one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum LossFlaw {
    Correct,
    /// The online network (`self`) as its own target.
    OnlineAsTarget,
    /// The target evaluated at (a + s_n z, s_n) instead of
    /// (a + s_{n+1} z, s_{n+1}).
    TargetAtSameLevel,
    /// Time input ln(s) instead of 250 ln(s), online and target.
    TimeLnSigma,
}

/// The consistency-training loss as ConsistencyLoss::Consistency documents
/// it (iCT, Song & Dhariwal 2023; the target network of reference-notes
/// §2.4): per row, with n as drawn, s = sigma_n, s' = sigma_{n+1} and z as
/// drawn,
///   D = D_online(a + s z, s), T = D_target(a + s' z, s'),
///   q = ||D - T||^2 over [H, A], c = 0.00054 sqrt(H A),
///   l = (sqrt(q + c^2) - c) / (s - s'),
/// and the loss is the mean of l over the batch. Also returns d loss / d
/// (the online net's output bias b_j): dD_j/db_j = c_out(s), so
///   (1/B) sum_rows c_out(s) (D_j - T_j) / (sqrt(q + c^2) (s - s')).
#[allow(clippy::too_many_arguments)]
pub(super) fn consistency_loss_f64(
    online: &KnownNet,
    target: &KnownNet,
    cfg: &ConsistencyConfig,
    obs: &[f64],
    actions: &[f64],
    n: &[i64],
    z: &[f64],
    flaw: LossFlaw,
) -> (f64, Vec<f64>) {
    let time = |s: f64| {
        if flaw == LossFlaw::TimeLnSigma {
            s.ln()
        } else {
            250.0 * s.ln()
        }
    };
    let c = 0.00054 * (CHUNK as f64).sqrt();
    let rows = n.len();
    let (mut loss, mut grad) = (0.0, vec![0.0; CHUNK]);
    for (r, &n) in n.iter().enumerate() {
        let (s, s_next) = (karras_f64(n as usize, cfg), karras_f64(n as usize + 1, cfg));
        let (a, z, o) = (
            &actions[r * CHUNK..(r + 1) * CHUNK],
            &z[r * CHUNK..(r + 1) * CHUNK],
            &obs[r * COND..(r + 1) * COND],
        );
        let at = |s: f64| -> Vec<f64> { a.iter().zip(z).map(|(a, z)| a + s * z).collect() };
        let d = denoise_f64(online, cfg, &at(s), s, time(s), o);
        let t = match flaw {
            LossFlaw::OnlineAsTarget => {
                denoise_f64(online, cfg, &at(s_next), s_next, time(s_next), o)
            }
            LossFlaw::TargetAtSameLevel => denoise_f64(target, cfg, &at(s), s, time(s), o),
            _ => denoise_f64(target, cfg, &at(s_next), s_next, time(s_next), o),
        };
        let q: f64 = d.iter().zip(&t).map(|(d, t)| (d - t).powi(2)).sum();
        let root = (q + c * c).sqrt();
        loss += (root - c) / (s - s_next);
        for j in 0..CHUNK {
            grad[j] += c_out_f64(s, cfg) * (d[j] - t[j]) / (root * (s - s_next));
        }
    }
    let b = rows as f64;
    (loss / b, grad.into_iter().map(|g| g / b).collect())
}

/// Relative tolerance of the losses (f32 against f64: at most 5e-6 seen).
pub(super) const LOSS_TOL: f64 = 5e-5;

const ACTIONS: [f32; 24] = [
    0.5, -0.25, 1.0, 0.0, -1.0, 0.75, 0.3, -0.6, 0.9, 0.1, -0.4, 0.2, -0.8, 0.65, 0.05, -0.15,
    0.45, -0.95, 0.7, 0.35, -0.5, 0.0, 0.85, -0.3,
];
const OBS: [f32; 18] = [
    0.5, -0.2, 0.1, -0.6, 0.3, 0.2, 0.0, 0.9, -0.4, 0.2, -0.1, -0.8, 0.7, 0.4, -0.3, -0.9, 0.6, 0.1,
];

/// `bc_loss` with `ConsistencyLoss::Consistency` and a target network
/// distinct from the online one (different k, time weight, obs weight and
/// bias), against `consistency_loss_f64` with the draws (n, z) replayed from
/// a clone of the stream; then the gradient: the online net's output bias
/// gets the f64 derivative, and no parameter of the target gets a gradient
/// although all of them require one.
///
/// Catches: using the online network instead of the target (the
/// `OnlineAsTarget` value is far off), evaluating the target at the online
/// level s_n rather than s_{n+1}, a wrong time input (ln s), and a target
/// not excluded from the graph (its parameters would get gradients).
#[test]
fn consistency_loss_uses_the_target_network_without_its_gradient() {
    const B: usize = 6;
    let online = KnownNet {
        k: 0.5,
        w_t: 1.3,
        u: 0.3,
        bias: vec![0.4, -0.6, 0.2, 0.1],
    };
    let target = KnownNet {
        k: 0.3,
        w_t: -0.9,
        u: -0.2,
        bias: vec![-0.1, 0.5, 0.3, -0.4],
    };
    let cfg = ConsistencyConfig {
        scales: 6,
        loss: ConsistencyLoss::Consistency,
        ..ConsistencyConfig::default()
    };
    let (online_vs, policy) = known_policy(&online, &cfg);
    let (target_vs, target_policy) = known_policy(&target, &cfg);
    let actions = Tensor::from_slice(&ACTIONS).view([B as i64, 2, 2]);
    let obs = Tensor::from_slice(&OBS).view([B as i64, COND as i64]);

    for seed in [11u64, 12, 13] {
        let mut noise = NoiseSource::new(seed, Device::Cpu);
        let mut replay = noise.clone();
        let loss = policy.bc_loss(&obs, &actions, &target_policy, &mut noise);
        let n = Vec::<i64>::try_from(replay.integers(B, cfg.scales as i64 - 1)).unwrap();
        let z = host(&replay.normal(&[B as i64, 2, 2]));
        let (a, o) = (host(&actions), host(&obs));
        let (want, want_grad) =
            consistency_loss_f64(&online, &target, &cfg, &o, &a, &n, &z, LossFlaw::Correct);
        let got = loss.double_value(&[]);
        assert!(
            (got - want).abs() <= LOSS_TOL * want.abs(),
            "seed {seed} n {n:?}: {got} vs {want}"
        );
        for flaw in [
            LossFlaw::OnlineAsTarget,
            LossFlaw::TargetAtSameLevel,
            LossFlaw::TimeLnSigma,
        ] {
            let (wrong, _) = consistency_loss_f64(&online, &target, &cfg, &o, &a, &n, &z, flaw);
            assert!(
                (wrong - want).abs() > 20.0 * LOSS_TOL * want.abs(),
                "seed {seed}: {flaw:?} gives {wrong} vs {want}"
            );
        }

        for mut v in online_vs
            .trainable_variables()
            .into_iter()
            .chain(target_vs.trainable_variables())
        {
            v.zero_grad();
        }
        loss.backward();
        let vars = target_vs.variables();
        assert!(!vars.is_empty());
        for (name, v) in &vars {
            assert!(
                v.requires_grad(),
                "{name} is frozen: the check means nothing"
            );
            let g = v.grad();
            assert!(
                !g.defined() || g.abs().max().double_value(&[]) == 0.0,
                "seed {seed}: the target's {name} got a gradient"
            );
        }
        let bias_grad = host(&online_vs.variables()["net.mlp.out.bias"].grad());
        let scale = want_grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(scale > 1e-3, "{want_grad:?}");
        assert!(
            max_abs_diff(&bias_grad, &want_grad) <= 2e-3 * scale,
            "seed {seed}: online bias gradient {bias_grad:?} vs {want_grad:?}"
        );
    }
}

/// reference-notes §2.4's recon_loss: the mean over [B, H, A] of
/// (1/s^2 + 1/sd^2) (D(a + s z, s) - a)^2 with s = sigma_n, n and z as
/// drawn, and the time input `time(s)` (250 ln(s) when right).
pub(super) fn reconstruction_loss_f64(
    net: &KnownNet,
    cfg: &ConsistencyConfig,
    obs: &[f64],
    actions: &[f64],
    n: &[i64],
    z: &[f64],
    time: &dyn Fn(f64) -> f64,
) -> f64 {
    let mut total = 0.0;
    for (r, &n) in n.iter().enumerate() {
        let s = karras_f64(n as usize, cfg);
        let rows = r * CHUNK..(r + 1) * CHUNK;
        let x: Vec<f64> = actions[rows.clone()]
            .iter()
            .zip(&z[rows.clone()])
            .map(|(a, z)| a + s * z)
            .collect();
        let d = denoise_f64(net, cfg, &x, s, time(s), &obs[r * COND..(r + 1) * COND]);
        let w = 1.0 / (s * s) + 1.0 / (cfg.sigma_data * cfg.sigma_data);
        total += d
            .iter()
            .zip(&actions[rows])
            .map(|(d, a)| w * (d - a).powi(2))
            .sum::<f64>();
    }
    total / (n.len() * CHUNK) as f64
}

/// `bc_loss` with `ConsistencyLoss::Reconstruction` (the default) for a net
/// whose output depends on the time input, against reference-notes §2.4's
/// recon_loss: the mean over [B, H, A] of (1/s^2 + 1/sd^2) (D(a + s z, s) -
/// a)^2, n uniform in 0..N-2. The existing zero-network test cannot see the
/// time input; this one catches a time input other than 250 ln(s) (ln s, s).
#[test]
fn reconstruction_loss_matches_its_formula_for_a_time_dependent_net() {
    const B: usize = 6;
    let net = KnownNet {
        k: 0.5,
        w_t: 0.7,
        u: 0.3,
        bias: vec![0.4, -0.6, 0.2, 0.1],
    };
    let cfg = ConsistencyConfig {
        scales: 6,
        ..ConsistencyConfig::default()
    };
    assert_eq!(cfg.loss, ConsistencyLoss::Reconstruction);
    let (_vs, policy) = known_policy(&net, &cfg);
    let actions = Tensor::from_slice(&ACTIONS).view([B as i64, 2, 2]);
    let obs = Tensor::from_slice(&OBS).view([B as i64, COND as i64]);
    let (a, o) = (host(&actions), host(&obs));
    let recon = |n: &[i64], z: &[f64], time: &dyn Fn(f64) -> f64| {
        reconstruction_loss_f64(&net, &cfg, &o, &a, n, z, time)
    };
    for seed in [21u64, 22, 23] {
        let mut noise = NoiseSource::new(seed, Device::Cpu);
        let mut replay = noise.clone();
        let got = crate::nn::no_grad(|| policy.bc_loss(&obs, &actions, &policy, &mut noise))
            .double_value(&[]);
        let n = Vec::<i64>::try_from(replay.integers(B, cfg.scales as i64 - 1)).unwrap();
        let z = host(&replay.normal(&[B as i64, 2, 2]));
        let want = recon(&n, &z, &|s| 250.0 * s.ln());
        assert!(
            (got - want).abs() <= LOSS_TOL * want.abs(),
            "seed {seed} n {n:?}: {got} vs {want}"
        );
        for (name, wrong) in [
            ("ln s", recon(&n, &z, &|s: f64| s.ln())),
            ("s", recon(&n, &z, &|s| s)),
        ] {
            assert!(
                (wrong - want).abs() > 20.0 * LOSS_TOL * want.abs(),
                "seed {seed}: time {name} gives {wrong} vs {want}"
            );
        }
    }
}
