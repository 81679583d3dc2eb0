//! The losses of an update against hand computations (DESIGN.md 1), on
//! linear critics with known weights and silent noise: the critic loss is
//! the sum of the twins' mean squared errors; the actor's Q term is
//! -mean Q1(s, a_pi) / mean |Q2(s, a_pi)| with the denominator held
//! constant, for both agents. Then the schedules an update runs: the soft
//! target update and the EMA's copy/step schedule, and the cosine learning
//! rate. Property tests: the critic loss over any split into slices, and
//! the Q term over random states, critics and slice counts.

use proptest::prelude::*;
use tch::{Device, Kind, Tensor, nn};

use super::*;
use crate::agent::{ChunkAgent, ChunkPolicy, Metrics, Workers, cosine_lr, step};
use crate::chunk::{ChunkBatch, ChunkDims, ChunkSpec};
use crate::critic::full_mask;
use crate::nn::packed_gradient;
use crate::noise::NoiseSource;
use crate::policy::{ConsistencyPolicy, DiffusionPolicy};

/// One hand-made chunk transition with O = 1, To = 1, H = 2, A = 1.
pub(super) struct Row {
    pub s: f32,
    pub chunk: [f32; 2],
    pub reward: f32,
    pub done: f32,
    pub discount: f32,
    pub next_s: f32,
}

pub(super) fn hand_batch(rows: &[Row]) -> ChunkBatch {
    let mut b = ChunkBatch::zeros(rows.len(), ChunkSpec::new(2, 0.5, 1).unwrap(), 1, 1);
    for (i, r) in rows.iter().enumerate() {
        b.observations[i] = r.s;
        b.actions[2 * i..2 * i + 2].copy_from_slice(&r.chunk);
        b.action_mask[2 * i..2 * i + 2].copy_from_slice(&[1.0, 1.0]);
        b.cumulative_reward[i] = r.reward;
        b.chunk_done[i] = r.done;
        b.discount_factor[i] = r.discount;
        b.effective_length[i] = 2;
        b.next_observations[i] = r.next_s;
        b.start_index[i] = i as i64;
    }
    b
}

/// An agent for [`hand_batch`]es: the identity normaliser (so the batch
/// enters the networks unchanged), linear critics, no gradient clipping,
/// silent noise (every draw 0).
pub(super) fn agent<P: ChunkPolicy>(change: impl FnOnce(&mut AgentConfig)) -> ChunkAgent<P> {
    one_thread();
    let mut cfg = small_config(8);
    linear_critics(&mut cfg);
    cfg.grad_clip = 0.0;
    change(&mut cfg);
    let dims = ChunkDims {
        obs_dim: 1,
        act_dim: 1,
        horizon: 2,
        obs_horizon: 1,
    };
    let mut agent =
        ChunkAgent::<P>::new(cfg, dims, Normalizer::identity(1, 1), Device::Cpu, 3).unwrap();
    agent.noise = NoiseSource::silent(Device::Cpu);
    agent
}

pub(super) fn close(got: f64, expected: f64, what: &str) {
    assert!(
        (got - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
        "{what}: got {got}, expected {expected}"
    );
}

// ---------------------------------------------------------------- critic loss

/// Three rows, input x = [s, c1, c2]:
///
/// | row | s  | c          | R  | done | gamma^tau | s'  |
/// |-----|----|------------|----|------|-----------|-----|
/// | 0   | 1  | [0.5, -0.5]| 1  | 0    | 0.25      | 2   |
/// | 1   | -1 | [1, 1]     | 2  | 1    | 0.5       | 0.5 |
/// | 2   | 0  | [-1, 0.5]  | -1 | 0    | 0.5       | 0.5 |
fn critic_rows() -> ChunkBatch {
    let row = |s, chunk, reward, done, discount, next_s| Row {
        s,
        chunk,
        reward,
        done,
        discount,
        next_s,
    };
    hand_batch(&[
        row(1.0, [0.5, -0.5], 1.0, 0.0, 0.25, 2.0),
        row(-1.0, [1.0, 1.0], 2.0, 1.0, 0.5, 0.5),
        row(0.0, [-1.0, 0.5], -1.0, 0.0, 0.5, 0.5),
    ])
}

/// Online Q1 = s + c1 + c2, Q2 = 2 s - c1 + 1; target Q1' = s' + 1,
/// Q2' = 2 s' (independent of the next chunk, so y does not depend on what
/// the EMA policy samples).
fn critic_agent(workers: usize) -> ChunkAgent<DiffusionPolicy> {
    let mut agent = agent::<DiffusionPolicy>(|_| {});
    set_linear_critics(
        &agent.critic_vs,
        (&[1.0, 1.0, 1.0], 0.0),
        (&[2.0, -1.0, 0.0], 1.0),
    );
    set_linear_critics(
        &agent.target_vs,
        (&[1.0, 0.0, 0.0], 1.0),
        (&[2.0, 0.0, 0.0], 0.0),
    );
    if workers > 1 {
        agent.workers = Workers::serial(workers);
    }
    agent
}

// By hand:
//   min(Q1', Q2')(s'): s' = 2 -> min(3, 4) = 3;  s' = 0.5 -> min(1.5, 1) = 1.
//   y = R + (1 - d) gamma^tau min Q':
//     y0 = 1 + 0.25 * 3 = 1.75;  y1 = 2 (done);  y2 = -1 + 0.5 * 1 = -0.5.
//   mean y = 3.25 / 3.
//   Q1 = [1 + 0.5 - 0.5, -1 + 1 + 1, 0 - 1 + 0.5] = [1, 1, -0.5], mean 0.5.
//   Q2 = [2 - 0.5 + 1, -2 - 1 + 1, 0 + 1 + 1] = [2.5, -2, 2].
//   e1 = Q1 - y = [-0.75, -1, 0]:    sum e1^2 = 0.5625 + 1 + 0 = 1.5625
//   e2 = Q2 - y = [0.75, -4, 2.5]:   sum e2^2 = 0.5625 + 16 + 6.25 = 22.8125
//   L = 1.5625 / 3 + 22.8125 / 3 = 24.375 / 3 = 8.125
//   (Q1 term alone: 0.5208; halved: 4.0625.)
const CRITIC_LOSS: f64 = 8.125;
const Q_MEAN: f64 = 0.5;
const TARGET_MEAN: f64 = 3.25 / 3.0;
// Gradient, x = [s, c1, c2]: dL/dw_j = 2/3 sum_i e_ji x_i, dL/db_j = 2/3 sum_i e_ji.
//   sum e1 x = -0.75 [1, 0.5, -0.5] - [-1, 1, 1] = [0.25, -1.375, -0.625]
//     -> dw1 = [1/6, -11/12, -5/12], db1 = 2/3 * -1.75 = -7/6
//   sum e2 x = 0.75 [1, 0.5, -0.5] - 4 [-1, 1, 1] + 2.5 [0, -1, 0.5] = [4.75, -6.125, -3.125]
//     -> dw2 = [19/6, -49/12, -25/12], db2 = 2/3 * -0.75 = -1/2
//   |g|^2 * 144 = 2^2 + 11^2 + 5^2 + 14^2 + 38^2 + 49^2 + 25^2 + 6^2
//               = 4 + 121 + 25 + 196 + 1444 + 2401 + 625 + 36 = 4852
fn critic_grad_norm() -> f64 {
    4852f64.sqrt() / 12.0
}

#[test]
fn critic_loss_is_the_sum_of_both_twins_mean_squared_errors() {
    let batch = critic_rows();
    // Whole batch, and split 2 + 1 (each slice must divide by the whole
    // batch's size, not its own).
    for workers in [1, 2] {
        let metrics = critic_agent(workers).update(&batch);
        let what = |field| format!("{field} with {workers} slice(s)");
        close(metrics.critic_loss, CRITIC_LOSS, &what("critic_loss"));
        close(metrics.q_mean, Q_MEAN, &what("q_mean"));
        close(metrics.target_mean, TARGET_MEAN, &what("target_mean"));
        close(
            metrics.critic_grad_norm,
            critic_grad_norm(),
            &what("critic_grad_norm"),
        );
    }
}

#[test]
fn critic_step_reports_the_same_hand_values() {
    // `critic_step` (policy evaluation drives it with given next chunks).
    let batch = critic_rows();
    let mut agent = critic_agent(1);
    let b = agent.tensors(&batch);
    let next = Tensor::zeros([3, 2, 1], (Kind::Float, Device::Cpu));
    let y = Vec::<f32>::try_from(agent.critic_target(&b, &next)).unwrap();
    assert_eq!(y, vec![1.75, 2.0, -0.5]);
    let stats = agent.critic_step(&b, &next);
    close(stats.loss, CRITIC_LOSS, "loss");
    close(stats.q_mean, Q_MEAN, "q_mean");
    close(stats.target_mean, TARGET_MEAN, "target_mean");
    close(stats.grad_norm, critic_grad_norm(), "grad_norm");
}

// ------------------------------------------------------------ actor Q term

/// s = [1, 2, -1]; the dataset chunks and the rest do not enter the Q term.
pub(super) fn actor_rows() -> ChunkBatch {
    actor_rows_of(&[1.0, 2.0, -1.0])
}

/// One row per state s, as in [`actor_rows`].
fn actor_rows_of(states: &[f32]) -> ChunkBatch {
    let row = |&s: &f32| Row {
        s,
        chunk: [0.0, 0.0],
        reward: 0.0,
        done: 0.0,
        discount: 0.25,
        next_s: s,
    };
    hand_batch(&states.iter().map(row).collect::<Vec<_>>())
}

/// One update of an agent whose policy samples a_pi = 0 (zero output layer,
/// silent noise) and whose critics are Q1 = s + c1 + c2 and
/// Q2 = k (2 s - c1 + 1). The critic's learning rate is 1e-12: its Adam
/// step moves each weight by at most that (|lr g / (|g| + eps)| <= lr), so
/// the actor sees these critics. Returns the metrics, the actor's gradient
/// (packed, clipping off) and d mean Q1(s, pi(s)) / d theta, taken by
/// autograd before the update.
fn actor_update<P: ChunkPolicy>(eta: f64, k: f32) -> (Metrics, Tensor, Tensor) {
    let q1 = ([1.0f32, 1.0, 1.0], 0.0);
    let q2 = ([2.0 * k, -k, 0.0], k);
    actor_update_with::<P>(eta, q1, q2, &[1.0, 2.0, -1.0], 1)
}

/// Linear critic weights on [s, c1, c2], and a bias.
type Linear = ([f32; 3], f32);

/// As [`actor_update`], with critics `q1` and `q2`, one row per state in
/// `states` ([`actor_rows`]' other fields) and the batch split into
/// `workers` slices.
fn actor_update_with<P: ChunkPolicy>(
    eta: f64,
    q1: Linear,
    q2: Linear,
    states: &[f32],
    workers: usize,
) -> (Metrics, Tensor, Tensor) {
    let mut agent = agent::<P>(|cfg| {
        cfg.eta = eta;
        cfg.critic_lr = 1e-12;
    });
    let (q1, q2) = ((&q1.0[..], q1.1), (&q2.0[..], q2.1));
    set_linear_critics(&agent.critic_vs, q1, q2);
    set_linear_critics(&agent.target_vs, q1, q2);
    scale_policy_output(&agent.policy_vs, 0.0);
    if workers > 1 {
        agent.workers = Workers::serial(workers);
    }
    let batch = actor_rows_of(states);
    let b = agent.tensors(&batch);
    let vars = agent.actor_opt.variables();
    let a_pi = agent
        .policy
        .sample(&b.obs, &mut NoiseSource::silent(Device::Cpu));
    assert_eq!(a_pi.abs().max().double_value(&[]), 0.0, "a_pi = 0");
    let rows = states.len() as i64;
    let (q1_pi, _) = agent
        .critic
        .forward(&b.obs, &a_pi, &full_mask(rows, 2, Device::Cpu));
    let dq1 = packed_gradient(&q1_pi.mean(Kind::Float), &vars);
    let metrics = agent.update(&batch);
    let grads: Vec<Tensor> = vars.iter().map(|v| v.grad().view([-1])).collect();
    (metrics, Tensor::cat(&grads, 0), dq1)
}

fn norm(t: &Tensor) -> f64 {
    t.norm().double_value(&[])
}

// By hand, a_pi = 0: Q1(s, 0) = s = [1, 2, -1], mean 2/3;
// Q2(s, 0) = k (2 s + 1) = k [3, 5, -1], mean |Q2| = 9k / 3 = 3k
// (mean Q2 without the absolute value would be 7k/3).
//   q_loss = -(2/3) / (3k) = -2 / (9k)
//   d actor_loss / d theta of the Q term = -eta / (3k) * d mean Q1(s, pi(s)) / d theta
fn actor_q_term<P: ChunkPolicy>(name: &str) {
    let eta = 2.0;
    let (base, bc_grad, _) = actor_update::<P>(0.0, 1.0);
    assert_eq!(
        (base.q_loss, base.actor_loss),
        (0.0, base.bc_loss),
        "{name}"
    );
    let mut q_grads = vec![];
    for k in [1.0f32, 2.0] {
        let (m, grad, dq1) = actor_update::<P>(eta, k);
        let k = f64::from(k);
        close(
            m.q_loss,
            -2.0 / (9.0 * k),
            &format!("{name} q_loss, k = {k}"),
        );
        close(m.bc_loss, base.bc_loss, &format!("{name} bc_loss"));
        close(
            m.actor_loss,
            m.bc_loss + eta * -2.0 / (9.0 * k),
            &format!("{name} actor_loss, k = {k}"),
        );
        // The Q part of the gradient: this update's minus the eta = 0 one
        // (same weights, same silent noise, so the same BC gradient).
        let q_grad = grad - &bc_grad;
        let expected = &dq1 * (-eta / (3.0 * k));
        assert!(norm(&expected) > 1e-3, "{name}: a_pi depends on theta");
        let error = norm(&(&q_grad - &expected)) / norm(&expected);
        assert!(error < 1e-4, "{name}, k = {k}: Q gradient off by {error}");
        // Descending it raises Q1: <g_Q, d Q1 / d theta> < 0.
        let ascent = q_grad.dot(&dq1).double_value(&[]);
        assert!(
            ascent < 0.0,
            "{name}: the actor must be pushed to higher Q1"
        );
        q_grads.push(q_grad);
    }
    // Scaling Q2 by 2 doubles the (constant) normaliser and halves the Q part.
    let halved = norm(&(&q_grads[1] * 2.0 - &q_grads[0])) / norm(&q_grads[0]);
    assert!(
        halved < 1e-4,
        "{name}: Q2 x 2 must halve the Q gradient ({halved})"
    );
}

#[test]
fn diffusion_ql_actor_q_term_is_q1_over_the_detached_mean_abs_q2() {
    actor_q_term::<DiffusionPolicy>("Diffusion-QL");
}

#[test]
fn cpql_actor_q_term_is_q1_over_the_detached_mean_abs_q2() {
    actor_q_term::<ConsistencyPolicy>("CPQL");
}

// ---------------------------------------------------------------- schedules

fn fill(vs: &nn::VarStore, value: f64) {
    crate::nn::no_grad(|| {
        for (_, var) in vs.variables() {
            let _ = var.shallow_clone().fill_(value);
        }
    });
}

/// The one value every scalar of `vs` holds (panics if they differ).
fn the_value(vs: &nn::VarStore) -> f64 {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, var) in vs.variables() {
        lo = lo.min(var.min().double_value(&[]));
        hi = hi.max(var.max().double_value(&[]));
    }
    assert_eq!(lo, hi, "every scalar of the store should be equal");
    lo
}

/// tau 0.5, EMA decay 0.75 (an EMA step is lerp with weight 0.25),
/// ema_every 2, ema_start 3. Update k (k = 0..5) runs `update_targets` with
/// `step()` = k, the updates done before it; before it the policy and the
/// critic are set to the scalar k + 1, the EMA and target start at 0.
///
/// | k | source | target: t + 0.5 (c - t)        | EMA                      |
/// |---|--------|--------------------------------|--------------------------|
/// | 0 | 1      | 0 + 0.5 * 1 = 0.5              | 0 % 2 = 0, 0 < 3: copy 1 |
/// | 1 | 2      | 0.5 + 0.5 * 1.5 = 1.25         | odd: stays 1             |
/// | 2 | 3      | 1.25 + 0.5 * 1.75 = 2.125      | 2 < 3: copy 3            |
/// | 3 | 4      | 2.125 + 0.5 * 1.875 = 3.0625   | odd: stays 3             |
/// | 4 | 5      | 3.0625 + 0.5 * 1.9375 = 4.03125| 4 >= 3: 3 + 0.25 * 2 = 3.5 |
#[test]
fn targets_soft_update_every_step_and_the_ema_copies_then_steps_on_its_schedule() {
    let mut agent = agent::<DiffusionPolicy>(|cfg| {
        cfg.tau = 0.5;
        cfg.ema_decay = 0.75;
        cfg.ema_every = 2;
        cfg.ema_start = 3;
    });
    fill(&agent.ema_vs, 0.0);
    fill(&agent.target_vs, 0.0);
    let expected_target = [0.5, 1.25, 2.125, 3.0625, 4.03125];
    let expected_ema = [1.0, 1.0, 3.0, 3.0, 3.5];
    for k in 0..5 {
        fill(&agent.policy_vs, (k + 1) as f64);
        fill(&agent.critic_vs, (k + 1) as f64);
        agent.step = k;
        agent.update_targets();
        let k = k as usize;
        assert_eq!(
            the_value(&agent.target_vs),
            expected_target[k],
            "target, k = {k}"
        );
        assert_eq!(the_value(&agent.ema_vs), expected_ema[k], "EMA, k = {k}");
        // The sources are only read.
        assert_eq!(the_value(&agent.policy_vs), (k + 1) as f64);
        assert_eq!(the_value(&agent.critic_vs), (k + 1) as f64);
    }
}

// ---------------------------------------------------------- learning rate

/// lr_min + (lr - lr_min) (1 + cos(pi k / T)) / 2 with T = 4:
/// (1 + cos(pi/4)) / 2 = (1 + sqrt(2)/2) / 2 = (2 + sqrt 2) / 4 = 0.853553...,
/// (1 + cos(pi/2)) / 2 = 1/2, (1 + cos(3 pi/4)) / 2 = (2 - sqrt 2) / 4 = 0.146447...,
/// (1 + cos(pi)) / 2 = 0.
#[test]
fn cosine_lr_by_hand() {
    use std::f64::consts::SQRT_2;
    let fractions = [1.0, (2.0 + SQRT_2) / 4.0, 0.5, (2.0 - SQRT_2) / 4.0, 0.0];
    for (k, f) in fractions.iter().enumerate() {
        let k = k as u64;
        close(
            cosine_lr(3e-4, 0.0, k, 4),
            3e-4 * f,
            &format!("lr_min 0, k = {k}"),
        );
        // lr 2, lr_min 0.5: 0.5 + 1.5 f.
        close(
            cosine_lr(2.0, 0.5, k, 4),
            0.5 + 1.5 * f,
            &format!("k = {k}"),
        );
    }
    assert_eq!(cosine_lr(3e-4, 0.0, 0, 4), 3e-4, "exactly lr at the start");
    // Held at lr_min from T on; constant when T = 0.
    for k in [4, 5, 100] {
        assert_eq!(cosine_lr(2.0, 0.5, k, 4), 0.5);
    }
    for k in [0, 1, 1000] {
        assert_eq!(cosine_lr(2.0, 0.5, k, 0), 2.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Starts at lr, never increases, stays within [lr_min, lr] (up to one
    /// rounding of lr_min + (lr - lr_min)), and reaches lr_min at T.
    #[test]
    fn cosine_lr_decays_monotonically_from_lr_to_lr_min(
        lr in 1e-6f64..1.0,
        min_fraction in 0.0f64..=1.0,
        decay_steps in 1u64..300,
    ) {
        let lr_min = lr * min_fraction;
        let slack = 1e-12 * lr;
        let rates: Vec<f64> =
            (0..decay_steps + 5).map(|k| cosine_lr(lr, lr_min, k, decay_steps)).collect();
        prop_assert!((rates[0] - lr).abs() <= slack, "{} vs {lr}", rates[0]);
        for (k, pair) in rates.windows(2).enumerate() {
            prop_assert!(pair[1] <= pair[0], "increases at step {}: {:?}", k + 1, pair);
        }
        for (k, r) in rates.iter().enumerate() {
            prop_assert!(*r >= lr_min - slack && *r <= lr + slack, "step {k}: {r}");
        }
        for r in &rates[decay_steps as usize..] {
            prop_assert!((r - lr_min).abs() <= slack, "after T: {r} vs {lr_min}");
        }
    }

    /// The critic loss summed over any split of the batch into slices (as
    /// the workers compute it) is mean (Q1 - y)^2 + mean (Q2 - y)^2 over the
    /// whole batch, computed naively in f64.
    #[test]
    fn critic_loss_over_any_slices_is_the_whole_batch_loss(
        rows in proptest::collection::vec((-3.0f32..3.0, -3.0f32..3.0, -3.0f32..3.0), 1..40),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
    ) {
        let n = rows.len();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(n + 1)).collect();
        bounds.extend([0, n]);
        bounds.sort_unstable();
        bounds.dedup();
        let column = |pick: fn(&(f32, f32, f32)) -> f32| {
            Tensor::from_slice(&rows.iter().map(pick).collect::<Vec<_>>())
        };
        let (q1, q2, y) = (column(|r| r.0), column(|r| r.1), column(|r| r.2));
        let sliced: f64 = bounds
            .windows(2)
            .map(|w| {
                let (a, len) = (w[0] as i64, (w[1] - w[0]) as i64);
                let part = |t: &Tensor| t.narrow(0, a, len);
                step::critic_loss(&part(&q1), &part(&q2), &part(&y), n as i64).double_value(&[])
            })
            .sum();
        let mse = |pick: fn(&(f32, f32, f32)) -> f32| {
            rows.iter()
                .map(|r| (f64::from(pick(r)) - f64::from(r.2)).powi(2))
                .sum::<f64>()
                / n as f64
        };
        let naive = mse(|r| r.0) + mse(|r| r.1);
        prop_assert!((sliced - naive).abs() <= 1e-5 * (1.0 + naive), "{sliced} vs {naive}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Diffusion-QL's actor Q term over random states, linear critics and
    /// slice counts, with a_pi = 0 (zero policy output, silent noise):
    /// q_loss = -mean Q1(s, 0) / mean |Q2(s, 0)|, computed naively, and the
    /// Q part of the actor's gradient -eta / mean |Q2(s, 0)| times
    /// d mean Q1(s, pi(s)) / d theta (the normaliser held constant).
    #[test]
    fn actor_q_term_over_random_states_critics_and_slices(
        states in proptest::collection::vec(-2.0f32..2.0, 1..10),
        q1 in (proptest::array::uniform3(-1.0f32..1.0), -1.0f32..1.0),
        q2 in (proptest::array::uniform3(-1.0f32..1.0), -1.0f32..1.0),
        workers in 1usize..=3,
        eta in 0.1f64..3.0,
    ) {
        let at_zero = |q: &Linear, s: f32| f64::from(q.0[0] * s + q.1);
        let n = states.len() as f64;
        let mean_abs_q2 = states.iter().map(|&s| at_zero(&q2, s).abs()).sum::<f64>() / n;
        // Near 0 the normaliser amplifies float32 rounding without bound.
        prop_assume!(mean_abs_q2 > 0.05);
        let mean_q1 = states.iter().map(|&s| at_zero(&q1, s)).sum::<f64>() / n;
        let workers = workers.min(states.len());
        let (base, bc_grad, _) =
            actor_update_with::<DiffusionPolicy>(0.0, q1, q2, &states, workers);
        let (m, grad, dq1) = actor_update_with::<DiffusionPolicy>(eta, q1, q2, &states, workers);
        let q_loss = -mean_q1 / mean_abs_q2;
        prop_assert!(
            (m.q_loss - q_loss).abs() <= 1e-4 * (1.0 + q_loss.abs()),
            "q_loss {} vs {}", m.q_loss, q_loss
        );
        prop_assert!((m.bc_loss - base.bc_loss).abs() <= 1e-6 * (1.0 + base.bc_loss));
        let q_grad = grad - &bc_grad;
        let expected = &dq1 * (-eta / mean_abs_q2);
        let error = norm(&(&q_grad - &expected));
        prop_assert!(
            error <= 1e-4 * norm(&expected) + 1e-6,
            "Q gradient off by {} (|expected| {})", error, norm(&expected)
        );
    }
}
