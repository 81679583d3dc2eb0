//! Policy evaluation converges to the exact answer. A deterministic chain
//! MDP, a fixed behaviour policy; only the critic is trained, with targets
//! from the dataset's own next chunks (no max), and its Q(s, chunk) is
//! compared with the SMDP value solved exactly. Timeouts are frequent, so
//! bootstrapping through them matters; the naive one-step target must miss.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::agent::{DiffusionQl, TargetKind};
use crate::chunk::ChunkBatch;
use crate::data::Normalizer;

const CELLS: usize = 5; // positions 0..=4; entering 4 ends the episode with reward 1
const P_RIGHT: f64 = 0.7;
const TIME_LIMIT: usize = 6;
const GAMMA: f64 = 0.9;
const H: usize = 2;
const UPDATES: u64 = 2500;

fn step(s: usize, a: f32) -> (usize, f64, bool) {
    let next = if a > 0.0 {
        (s + 1).min(CELLS - 1)
    } else {
        s.saturating_sub(1)
    };
    let goal = next == CELLS - 1;
    (next, if goal { 1.0 } else { 0.0 }, goal)
}

fn one_hot(s: usize) -> Vec<f32> {
    (0..CELLS).map(|k| if k == s { 1.0 } else { 0.0 }).collect()
}

fn behaviour(rng: &mut ChaCha8Rng) -> f32 {
    if rng.random_bool(P_RIGHT) { 1.0 } else { -1.0 }
}

fn generate(episodes: usize, seed: u64) -> Vec<Recorded> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..episodes)
        .map(|_| {
            let mut s = rng.random_range(0..CELLS - 1);
            let mut e = Recorded {
                observations: vec![],
                actions: vec![],
                rewards: vec![],
                next_observations: vec![],
                terminated: false,
            };
            for _ in 0..TIME_LIMIT {
                let a = behaviour(&mut rng);
                let (next, r, done) = step(s, a);
                e.observations.push(one_hot(s));
                e.actions.push(vec![a]);
                e.rewards.push(r as f32);
                e.next_observations.push(one_hot(next));
                s = next;
                if done {
                    e.terminated = true;
                    break;
                }
            }
            e
        })
        .collect()
}

/// V^pi(s) for s < 4 by iterating the Bellman equation to convergence.
fn state_values() -> [f64; CELLS] {
    let mut v = [0.0; CELLS];
    for _ in 0..2000 {
        let mut next_v = [0.0; CELLS];
        #[allow(clippy::needless_range_loop)] // s is the state, not only an index
        for s in 0..CELLS - 1 {
            for (a, p) in [(1.0, P_RIGHT), (-1.0, 1.0 - P_RIGHT)] {
                let (s2, r, done) = step(s, a);
                next_v[s] += p * (r + if done { 0.0 } else { GAMMA * v[s2] });
            }
        }
        v = next_v;
    }
    v
}

/// Q^pi(s, chunk) of the SMDP: the chunk's discounted rewards, then
/// gamma^tau V(s_tau) unless it terminated.
fn chunk_value(s: usize, chunk: &[f32], v: &[f64; CELLS]) -> f64 {
    let (mut state, mut total, mut discount) = (s, 0.0, 1.0);
    for &a in chunk {
        let (next, r, done) = step(state, a);
        total += discount * r;
        discount *= GAMMA;
        state = next;
        if done {
            return total;
        }
    }
    total + discount * v[state]
}

/// Chunks to bootstrap from. SMDP: the chunk the data starts at t + tau
/// (every row is a start, at position t) or a fresh behaviour-policy chunk
/// past the end of an episode. A chunk cut short by the time limit has its
/// padding (a repeat of its last action, which the behaviour policy would
/// not do) replaced by fresh behaviour actions; one cut by the goal keeps
/// it, since its value does not depend on actions after the goal (the
/// critic is fitted on such chunks whole, padding included). One-step: what
/// a naive agent does, a fresh
/// chunk a' ~ pi(s_{t+1}) (the data's chunk at t+1 would still carry the
/// first chunk's commitment to a_{t+1}, which no agent's policy sample does).
fn next_chunks(
    index: &ChunkIndex,
    ends: &[usize],
    batch: &ChunkBatch,
    one_step: bool,
    rng: &mut ChaCha8Rng,
) -> Tensor {
    let mut out = Vec::with_capacity(batch.len() * H);
    for i in 0..batch.len() {
        let t = batch.start_index[i] as usize;
        let next = t + batch.effective_length[i] as usize;
        if !one_step && next <= ends[t] {
            let chunk = index.gather(&[next]);
            let real = match chunk.chunk_done[0] > 0.0 {
                true => H,
                false => chunk.effective_length[0] as usize,
            };
            out.extend(&chunk.actions[..real]);
            out.extend((real..H).map(|_| behaviour(rng)));
        } else {
            out.extend((0..H).map(|_| behaviour(rng)));
        }
    }
    Tensor::from_slice(&out).view([batch.len() as i64, H as i64, 1])
}

/// One of the dataset's chunks after training: the critic's min(Q1, Q2), the
/// start state and the chunk's real actions.
struct Scored {
    q: f64,
    state: usize,
    actions: Vec<f32>,
}

/// Trains a critic by policy evaluation and scores every chunk the data
/// holds (each as often as the data holds it).
fn evaluate(target: TargetKind) -> Vec<Scored> {
    one_thread();
    let data = dataset(&generate(600, 0));
    let mut ends = vec![0; data.len()];
    for ep in data.episodes() {
        ends[ep.start..=ep.end].fill(ep.end);
    }
    let index = index(data, H, GAMMA, 1);
    let mut cfg = small_config(64);
    cfg.critic_lr = 1e-3;
    cfg.tau = 0.02;
    cfg.lr_decay_steps = UPDATES;
    cfg.target = target;
    // The plain MLP critic fits these values most precisely; with the default
    // LayerNorm the SMDP error is mean 0.017 / max 0.089 (one-step: 0.100 /
    // 0.203), the same contrast but a looser fit. The target machinery under
    // test is the same either way.
    cfg.critic.layer_norm = false;
    let dims = index.dims();
    let mut agent =
        DiffusionQl::new(cfg, dims, Normalizer::identity(CELLS, 1), Device::Cpu, 0).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut batch = index.empty_batch(256).with_one_step();
    for _ in 0..UPDATES {
        index.sample_into(&mut batch, &mut rng);
        let next = next_chunks(
            &index,
            &ends,
            &batch,
            target == TargetKind::OneStep,
            &mut rng,
        );
        let b = agent.tensors(&batch);
        agent.critic_step(&b, &next);
        agent.update_targets();
        agent.step += 1;
        agent.set_learning_rates();
    }

    // Every distinct (state, real actions) the data holds, scored as the
    // critic is fitted on it (a chunk cut by the goal whole, one cut by the
    // time limit with its action mask).
    let all = index.all();
    let b = agent.tensors(&all);
    let q = crate::nn::no_grad(|| agent.critic.min(&b.obs, &b.actions, &b.critic_mask));
    let q: Vec<f32> = Vec::try_from(q.to_kind(Kind::Float)).unwrap();
    q.iter()
        .enumerate()
        .map(|(i, q)| Scored {
            q: f64::from(*q),
            state: all
                .observation_history(i)
                .iter()
                .position(|&x| x == 1.0)
                .unwrap(),
            actions: all.action_chunk(i)[..all.effective_length[i] as usize].to_vec(),
        })
        .collect()
}

/// The mean and the largest |Q - reference(state, real actions)| over the
/// scored chunks.
fn errors(scored: &[Scored], reference: impl Fn(usize, &[f32]) -> f64) -> (f64, f64) {
    let errors: Vec<f64> = scored
        .iter()
        .map(|c| (c.q - reference(c.state, &c.actions)).abs())
        .collect();
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    (mean, errors.iter().copied().fold(0.0, f64::max))
}

/// The fixed point of the naive one-step target with next chunks from the
/// behaviour policy: y = r(s, c_0) + gamma (1 - d) E_{c' ~ pi} Q(s_1, c'),
/// and since the fixed point's Q(s, c) depends on c_0 only, E_{c' ~ pi}
/// Q(s_1, c') = E_{a ~ pi}[r(s_1, a) + gamma (1 - d) ...] = V^pi(s_1): the
/// chunk's first step, then the behaviour policy's value. The rest of the
/// chunk is ignored, which is the naive target's bias.
fn one_step_fixed_point(s: usize, chunk: &[f32], v: &[f64; CELLS]) -> f64 {
    let (next, r, done) = step(s, chunk[0]);
    r + if done { 0.0 } else { GAMMA * v[next] }
}

#[test]
fn smdp_policy_evaluation_converges_to_the_exact_chunk_values() {
    // Sanity of the analytic side: from cell 3, moving right ends the
    // episode at once; from 2, [+1, +1] takes 2 steps: gamma.
    let v = state_values();
    assert_eq!(chunk_value(3, &[1.0, -1.0], &v), 1.0);
    assert!((chunk_value(2, &[1.0, 1.0], &v) - GAMMA).abs() < 1e-12);
    let (mean, max) = errors(&evaluate(TargetKind::Smdp), |s, c| chunk_value(s, c, &v));
    eprintln!("SMDP policy evaluation: |Q - Q^pi| mean {mean:.4}, max {max:.4}");
    // Measured: mean 0.0099, max 0.0504 (several CPUs). The bounds sit
    // between that and the naive target's 0.067 and 0.215 (next test), with
    // room on the max, a single chunk, for other matrix-product kernels.
    assert!(
        mean < 0.015 && max < 0.1,
        "|Q - Q^pi| mean {mean}, max {max}"
    );
}

/// The naive target converges, but to its own fixed point (the first step's
/// reward, then V^pi: the rest of the chunk ignored), which is far from the
/// chunk values. Measured: |Q - fixed point| mean 0.0028, max 0.0121;
/// |Q - Q^pi| mean 0.067, max 0.215.
#[test]
fn naive_one_step_target_converges_to_its_own_fixed_point_not_the_chunk_values() {
    let v = state_values();
    // By hand: from 2, [+1, +1] reaches the goal in 2 steps (Q^pi = gamma),
    // but the fixed point after the first step follows the behaviour policy:
    // gamma V(3) = gamma (0.7 + 0.3 gamma V(2)) = 0.806 < gamma.
    assert_eq!(one_step_fixed_point(3, &[1.0, -1.0], &v), 1.0);
    assert!((one_step_fixed_point(2, &[1.0, 1.0], &v) - GAMMA * v[3]).abs() < 1e-12);
    assert!(GAMMA - GAMMA * v[3] > 0.09, "V(3) = {}", v[3]);

    let scored = evaluate(TargetKind::OneStep);
    // Precondition, analytic: on the data's chunks the two references are
    // far apart, so the fixed point is not merely the chunk values again.
    let (gap_mean, gap_max) = errors(
        &scored
            .iter()
            .map(|c| Scored {
                q: one_step_fixed_point(c.state, &c.actions, &v),
                state: c.state,
                actions: c.actions.clone(),
            })
            .collect::<Vec<_>>(),
        |s, c| chunk_value(s, c, &v),
    );
    assert!(
        gap_mean > 0.04 && gap_max > 0.15,
        "fixed point vs Q^pi: mean {gap_mean}, max {gap_max}"
    );

    let (mean, max) = errors(&scored, |s, c| chunk_value(s, c, &v));
    let (fp_mean, fp_max) = errors(&scored, |s, c| one_step_fixed_point(s, c, &v));
    eprintln!(
        "one-step policy evaluation: |Q - Q^pi| mean {mean:.4}, max {max:.4}; \
         |Q - fixed point| mean {fp_mean:.4}, max {fp_max:.4}"
    );
    // Fails for a critic that does not learn (critic_lr 1e-5: mean 0.22,
    // max 0.44, which the bias assertion below alone lets through), for the
    // SMDP target in place of the one-step one (it converges to Q^pi: mean
    // 0.067 from here), for bootstrapping with gamma^tau or
    // the chunk's done flag or cumulative reward instead of the first
    // step's.
    assert!(
        fp_mean < 0.01 && fp_max < 0.05,
        "the one-step target should converge to its fixed point; \
         |Q - fixed point| mean {fp_mean}, max {fp_max}"
    );
    assert!(
        mean > 0.04 && max > 0.15,
        "the naive target should be biased; |Q - Q^pi| mean {mean}, max {max}"
    );
}
