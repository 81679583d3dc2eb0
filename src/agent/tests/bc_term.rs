//! The behaviour-cloning part of the actor update against hand computations
//! (DESIGN.md 1): with eta > 0 the gradient of the policy's output bias is
//! the BC gradient plus the Q term's, for both agents; and CPQL's
//! consistency-training loss pulls the online policy towards the EMA copy
//! (its target network), not towards itself.
//!
//! Fixture (as in `losses::actor_q_term`): H = 2, A = 1, To = 1, O = 1,
//! identity normaliser, silent noise, s = [1, 2, -1] with dataset chunks 0,
//! linear critics Q1 = s + c1 + c2, Q2 = 2 s - c1 + 1, critic lr 1e-12 (the
//! actor sees these critics). Unlike there, the policy's output layer has
//! weight 0 and a non-zero bias beta, so the network's output is beta for
//! every input and the BC loss is not 0.

use tch::{Device, Kind, nn};

use super::losses::{Row, actor_rows, agent, close, hand_batch};
use super::*;
use crate::agent::{ChunkPolicy, Metrics};
use crate::noise::NoiseSource;
use crate::policy::{ConsistencyConfig, ConsistencyLoss, ConsistencyPolicy, DiffusionPolicy};

/// Sets the output layer of the `mlp` policy network in `vs` to weight 0
/// and the given bias `[H*A]`: the network then outputs `bias` for every
/// input (noisy chunk, time, observation).
fn set_policy_output(vs: &nn::VarStore, bias: &[f32]) {
    let vars = vs.variables();
    crate::nn::no_grad(|| {
        let _ = vars["net.mlp.out.weight"].shallow_clone().zero_();
        let out = &vars["net.mlp.out.bias"];
        assert_eq!(out.size(), vec![bias.len() as i64], "output width");
        out.shallow_clone().copy_(&Tensor::from_slice(bias));
    });
}

fn host(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

// ------------------------------------------------- gap: BC + Q gradient

const BETA: [f32; 2] = [0.2, 0.1];
const ETA: f64 = 2.0;

/// One update (eta = 2) of the fixture above, its policy's output bias set
/// to [`BETA`] after `change` configured the policy. Returns the metrics, the
/// gradient of the actor loss with respect to the output bias (clipping
/// off) and the chunk a_pi the policy sampled before the update.
fn bc_and_q_update<P: ChunkPolicy>(
    change: impl FnOnce(&mut AgentConfig),
) -> (Metrics, Vec<f64>, Vec<f64>) {
    let mut agent = agent::<P>(|cfg| {
        cfg.eta = ETA;
        cfg.critic_lr = 1e-12;
        change(cfg);
    });
    let q1 = (&[1.0f32, 1.0, 1.0][..], 0.0);
    let q2 = (&[2.0f32, -1.0, 0.0][..], 1.0);
    set_linear_critics(&agent.critic_vs, q1, q2);
    set_linear_critics(&agent.target_vs, q1, q2);
    set_policy_output(&agent.policy_vs, &BETA);
    let batch = actor_rows();
    let b = agent.tensors(&batch);
    let a_pi = crate::nn::no_grad(|| {
        agent
            .policy
            .sample(&b.obs, &mut NoiseSource::silent(Device::Cpu))
    });
    let metrics = agent.update(&batch);
    let grad = agent.policy_vs.variables()["net.mlp.out.bias"].grad();
    (metrics, host(&grad), host(&a_pi))
}

/// Checks the update against the hand values: a_pi = `slope` * beta in
/// every row, the metrics, and the output-bias gradient `bc_grad` +
/// `q_grad`, where q_grad = -eta / N * d(a1 + a2)/d beta_h = -eta slope / N
/// (N = mean |Q2(s, a_pi)|, held constant; d Q1 / d c_j = 1).
fn check(name: &str, got: (Metrics, Vec<f64>, Vec<f64>), hand: Hand) {
    let (metrics, grad, a_pi) = got;
    let want_a: Vec<f64> = BETA.iter().map(|&b| hand.slope * f64::from(b)).collect();
    for (i, a) in a_pi.iter().enumerate() {
        close(*a, want_a[i % 2], &format!("{name}: a_pi[{i}]"));
    }
    close(metrics.bc_loss, hand.bc_loss, &format!("{name}: bc_loss"));
    close(metrics.q_loss, hand.q_loss, &format!("{name}: q_loss"));
    close(
        metrics.actor_loss,
        hand.bc_loss + ETA * hand.q_loss,
        &format!("{name}: actor_loss"),
    );
    assert_eq!(grad.len(), 2);
    for (h, (got, bc)) in grad.iter().zip(hand.bc_grad).enumerate() {
        close(
            *got,
            bc + hand.q_grad,
            &format!("{name}: d actor_loss / d beta_{h} (BC part {bc})"),
        );
    }
}

/// Hand-worked values of one agent's update.
struct Hand {
    /// d a_pi / d beta, per component (a_pi = slope * beta).
    slope: f64,
    bc_loss: f64,
    /// d BC / d beta_h.
    bc_grad: [f64; 2],
    q_loss: f64,
    /// d (-eta mean Q1(s, a_pi) / N) / d beta_h, the same for h = 0, 1.
    q_grad: f64,
}

// DDPM with T = 1 and alpha_bar_1 = 1/4: the VP schedule's
// alpha_1 = exp(-b_min - (b_max - b_min) / 2) = exp(-(b_min + b_max) / 2),
// so b_min = ln 2, b_max = 3 ln 2 give exp(-2 ln 2) = 1/4.
//
// BC: t = 0, eps = 0, so the network sees 0.5 * chunk and outputs beta;
//   L = mean_{b,h} (beta_h - 0)^2 = (0.04 + 0.01) / 2 = 0.025,
//   dL/dbeta_h = 2 beta_h / H = beta_h = (0.2, 0.1).
// Sampling from x = 0: eps = beta, x0 = sqrt(1/abar) * 0 - sqrt(1/abar - 1) beta
//   = -sqrt(3) beta (inside [-1, 1]); posterior coef1 = beta_1 sqrt(1) /
//   (1 - abar) = 0.75 / 0.75 = 1 and it is the last step, so
//   a_pi = -sqrt(3) beta = (-0.34641, -0.17321).
// Q: Q1(s, a_pi) = s - 0.3 sqrt(3): mean = 2/3 - 0.3 sqrt(3).
//   Q2(s, a_pi) = 2 s + 1 + 0.2 sqrt(3) = (3.3464, 5.3464, -0.6536),
//   N = mean |Q2| = (3 + 5 + 1 + 0.2 sqrt(3)) / 3 = (9 + 0.2 sqrt(3)) / 3 = 3.115470.
//   q_loss = -(2/3 - 0.3 sqrt(3)) / N = -(2 - 0.9 sqrt(3)) / (9 + 0.2 sqrt(3))
//          = -0.441154 / 9.346410 = -0.047200.
//   d(-eta mean Q1 / N)/dbeta_h = -eta / N * (-sqrt(3)) = 6 sqrt(3) / (9 + 0.2 sqrt(3))
//          = 10.392305 / 9.346410 = 1.111903.
// Gradient of the output bias: beta + 1.111903 = (1.311903, 1.211903);
// without the BC part it would be (1.111903, 1.111903), with BC weighted
// by eta (0.4, 0.2) + 1.111903.
#[test]
fn diffusion_ql_actor_gradient_is_bc_plus_q_term_by_hand() {
    let got = bc_and_q_update::<DiffusionPolicy>(|cfg| {
        cfg.diffusion.steps = 1;
        cfg.diffusion.beta_min = std::f64::consts::LN_2;
        cfg.diffusion.beta_max = 3.0 * std::f64::consts::LN_2;
    });
    let r3 = 3f64.sqrt();
    let n = (9.0 + 0.2 * r3) / 3.0;
    let hand = Hand {
        slope: -r3,
        bc_loss: 0.025,
        bc_grad: [0.2, 0.1],
        q_loss: -(2.0 / 3.0 - 0.3 * r3) / n,
        q_grad: -ETA / n * -r3,
    };
    assert!((hand.q_grad - 1.111903).abs() < 1e-6, "{}", hand.q_grad);
    check("Diffusion-QL", got, hand);
}

// Consistency policy, reconstruction loss (the default), one-step sampling,
// sigma_max = 1, sigma_min = 0.25, sigma_data = 0.75. At s = 1:
//   c_skip = 0.5625 / (0.75^2 + 0.5625) = 0.5,
//   c_out = (1 - 0.25) 0.75 / sqrt(1 + 0.5625) = 0.5625 / 1.25 = 0.45.
// BC: level index 0 (s = 1), z = 0, so the input is the chunk 0:
//   D = 0.5 * 0 + 0.45 beta; weight 1/s^2 + 1/sd^2 = 1 + 16/9 = 25/9;
//   L = 25/9 * 0.45^2 * mean_h beta_h^2 = 25/9 * 0.2025 * 0.025
//     = 0.5625 * 0.025 = 0.0140625,
//   dL/dbeta_h = 0.5625 * 2 beta_h / H = 0.5625 beta_h = (0.1125, 0.05625).
// Sampling: x = 0 * sigma_max, a_pi = D(0, 1) = 0.45 beta = (0.09, 0.045).
// Q: Q1(s, a_pi) = s + 0.135: mean = 2/3 + 0.135 = 0.801667.
//   Q2(s, a_pi) = 2 s + 1 - 0.09 = (2.91, 4.91, -1.09), N = 8.91 / 3 = 2.97.
//   q_loss = -0.801667 / 2.97 = -0.269921.
//   d(-eta mean Q1 / N)/dbeta_h = -2 * 0.45 / 2.97 = -10/33 = -0.303030.
// Gradient of the output bias: (0.1125 - 0.303030, 0.05625 - 0.303030)
//   = (-0.190530, -0.246780); without BC (-0.303030, -0.303030).
#[test]
fn cpql_actor_gradient_is_bc_plus_q_term_by_hand() {
    let got = bc_and_q_update::<ConsistencyPolicy>(|cfg| {
        cfg.consistency.sigma_min = 0.25;
        cfg.consistency.sigma_max = 1.0;
        cfg.consistency.sigma_data = 0.75;
        cfg.consistency.sample_steps = 1;
        cfg.consistency.loss = ConsistencyLoss::Reconstruction;
    });
    let hand = Hand {
        slope: 0.45,
        bc_loss: 0.0140625,
        bc_grad: [0.1125, 0.05625],
        q_loss: -(2.0 / 3.0 + 0.135) / 2.97,
        q_grad: -10.0 / 33.0,
    };
    check("CPQL", got, hand);
}

// ------------------------------------------- gap: CPQL's consistency target

/// c of the pseudo-Huber distance for H A = 2.
fn huber_c() -> f64 {
    0.00054 * 2f64.sqrt()
}

/// (1 / (s_0 - s_1)) mean_i (sqrt(q_i + c^2) - c) for squared distances q_i.
fn consistency_loss(squared: &[f64], weight: f64) -> f64 {
    let c = huber_c();
    let sum: f64 = squared.iter().map(|q| (q + c * c).sqrt() - c).sum();
    weight * sum / squared.len() as f64
}

/// Consistency training with three Karras levels (rho = 1: linear),
/// sigma_max = 1.75, sigma_min = 0.25, so s_0 = 1.75, s_1 = 1 and the
/// weight 1 / (s_0 - s_1) = 4/3; sigma_data = 0.75:
///   c_skip(1.75) = 0.5625 / (1.5^2 + 0.5625) = 0.5625 / 2.8125 = 0.2,
///   c_skip(1) = 0.5625 / (0.75^2 + 0.5625) = 0.5,
///   c_out(1) = 0.75 * 0.75 / sqrt(1 + 0.5625) = 0.45.
/// The online policy outputs F = 0 (output layer zeroed), its EMA copy
/// F' = b' = (0.4, 0.2) (weight 0, bias b'); every other weight is shared
/// (the EMA copied the policy at construction). Silent noise: level index
/// 0 and z = 0 in every row, so both networks see the dataset chunk a:
///   D(a, s_0) = 0.2 a,  D'(a, s_1) = 0.5 a + 0.45 b' = 0.5 a + (0.18, 0.09),
///   D(a, s_1) = 0.5 a (the online policy as its own target).
/// Per row, q = ||D(a, s_0) - target||^2:
///
/// | a           | -0.3 a - (0.18, 0.09) | q (EMA) | -0.3 a       | q (online) |
/// |-------------|-----------------------|---------|--------------|------------|
/// | (0.5, -0.5) | (-0.33, 0.06)         | 0.1125  | (-0.15, 0.15)| 0.045      |
/// | (1, 1)      | (-0.48, -0.39)        | 0.3825  | (-0.3, -0.3) | 0.18       |
/// | (-1, 0.5)   | (0.12, -0.24)         | 0.072   | (0.3, -0.15) | 0.1125     |
///
/// bc = 4/3 mean_i (sqrt(q_i + c^2) - c), c = 0.00054 sqrt(2):
/// with the EMA target about 4/3 (0.33541 + 0.61847 + 0.26833 - 3c) / 3
/// = 0.542185, with the online one about 4/3 (0.21213 + 0.42426 + 0.33541
/// - 3c) / 3 = 0.430897.
#[test]
fn cpql_consistency_loss_takes_the_ema_policy_as_its_target() {
    let mut agent = agent::<ConsistencyPolicy>(|cfg| {
        cfg.consistency = ConsistencyConfig {
            sigma_min: 0.25,
            sigma_max: 1.75,
            sigma_data: 0.75,
            rho: 1.0,
            scales: 3,
            sample_steps: 1,
            loss: ConsistencyLoss::Consistency,
            net: cfg.consistency.net.clone(),
        };
    });
    set_policy_output(&agent.policy_vs, &[0.0, 0.0]);
    set_policy_output(&agent.ema_vs, &[0.4, 0.2]);
    let row = |s, chunk| Row {
        s,
        chunk,
        reward: 0.0,
        done: 0.0,
        discount: 0.25,
        next_s: s,
    };
    let batch = hand_batch(&[
        row(1.0, [0.5, -0.5]),
        row(-1.0, [1.0, 1.0]),
        row(0.0, [-1.0, 0.5]),
    ]);
    let b = agent.tensors(&batch);
    let weight = 4.0 / 3.0;
    let with_ema = consistency_loss(&[0.1125, 0.3825, 0.072], weight);
    let with_online = consistency_loss(&[0.045, 0.18, 0.1125], weight);
    assert!((with_ema - 0.542185).abs() < 1e-6, "{with_ema}");
    assert!((with_online - 0.430897).abs() < 1e-6, "{with_online}");

    // The policy's own loss function, called directly with either target and
    // the same (silent) noise, gives the hand values.
    let bc = |target: &ConsistencyPolicy| {
        let mut noise = NoiseSource::silent(Device::Cpu);
        crate::nn::no_grad(|| {
            agent
                .policy
                .bc_loss(&b.obs, &b.actions, target, &mut noise)
                .double_value(&[])
        })
    };
    close(bc(&agent.ema), with_ema, "bc_loss(policy, target = EMA)");
    close(
        bc(&agent.policy),
        with_online,
        "bc_loss(policy, target = policy)",
    );

    // The update's BC loss is the one against the EMA.
    let metrics = agent.update(&batch);
    close(metrics.bc_loss, with_ema, "update's bc_loss");
    assert!(
        (metrics.bc_loss - with_online).abs() > 0.05,
        "the update's BC loss {} is the online-target value {with_online}",
        metrics.bc_loss
    );
}
