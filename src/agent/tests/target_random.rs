//! The critic target over random episode layouts, against a naive sum
//! written from the episodes themselves: which chunk fields feed the target
//! (return, done, gamma^tau, the state to bootstrap from), for the SMDP
//! target and the one-step ablation, with random linear target critics and
//! k next chunks per state (max-Q backup: the max over them of the min over
//! critics).

use proptest::prelude::*;
use tch::{Device, Tensor};

use super::*;
use crate::agent::{DiffusionQl, TargetKind};
use crate::chunk::ChunkDims;
use crate::data::Normalizer;

/// One drawn episode: per step (observation, reward, next observation), and
/// whether its last step terminated (else it timed out).
type Episode = (Vec<(f32, f32, f32)>, bool);

fn episodes() -> impl Strategy<Value = Vec<Episode>> {
    let step = (-1.0f32..1.0, -2.0f32..2.0, -1.0f32..1.0);
    proptest::collection::vec((proptest::collection::vec(step, 1..8), any::<bool>()), 1..6)
}

/// Target critic weights: (on s, on each of the H chunk entries, bias).
fn critic(h: usize) -> impl Strategy<Value = (f32, Vec<f32>, f32)> {
    (
        -1.0f32..1.0,
        proptest::collection::vec(-1.0f32..1.0, h),
        -1.0f32..1.0,
    )
}

fn recorded(episodes: &[Episode]) -> Vec<Recorded> {
    episodes
        .iter()
        .map(|(steps, terminated)| Recorded {
            observations: steps.iter().map(|s| vec![s.0]).collect(),
            actions: steps.iter().map(|_| vec![0.0]).collect(),
            rewards: steps.iter().map(|s| s.1).collect(),
            next_observations: steps.iter().map(|s| vec![s.2]).collect(),
            terminated: *terminated,
        })
        .collect()
}

/// y for the chunk starting at step `k` of `episode`, the slow way:
/// SMDP: sum_{i<tau} gamma^i r_{k+i} + (1 - d) gamma^tau V(s'_{k+tau-1})
/// with tau = min(H, steps left) and d = 1 only if the chunk reaches a
/// terminating last step; one-step: r_k + (1 - terminal_k) gamma V(s'_k);
/// V(s) = max over the next chunks c of min_j Q'_j(s, c).
fn naive_target(
    (steps, terminated): &Episode,
    k: usize,
    h: usize,
    gamma: f64,
    one_step: bool,
    value: impl Fn(f64) -> f64,
) -> f64 {
    let n = steps.len();
    let tau = if one_step { 1 } else { h.min(n - k) };
    let reward: f64 = (0..tau)
        .map(|i| gamma.powi(i as i32) * f64::from(steps[k + i].1))
        .sum();
    let last = k + tau - 1;
    let done = *terminated && last == n - 1;
    let bootstrap = if done { 0.0 } else { 1.0 };
    reward + bootstrap * gamma.powi(tau as i32) * value(f64::from(steps[last].2))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn critic_target_matches_a_naive_sum_over_random_episodes(
        (h, episodes, q1, q2, chunk_values) in (1usize..=4).prop_flat_map(|h| (
            Just(h),
            episodes(),
            critic(h),
            critic(h),
            // Up to 3 next chunks per start, more than enough rows.
            proptest::collection::vec(-1.0f32..1.0, 3 * 48 * h),
        )),
        gamma in 0.3f64..0.99,
        one_step in any::<bool>(),
        samples in 1usize..=3,
    ) {
        one_thread();
        let data = dataset(&recorded(&episodes));
        let index = index(data, h, gamma, 1);
        let mut cfg = small_config(8);
        linear_critics(&mut cfg);
        cfg.target = if one_step { TargetKind::OneStep } else { TargetKind::Smdp };
        cfg.max_q_backup = samples > 1;
        cfg.max_q_samples = samples;
        let dims = ChunkDims { obs_dim: 1, act_dim: 1, horizon: h, obs_horizon: 1 };
        let agent = DiffusionQl::new(cfg, dims, Normalizer::identity(1, 1), Device::Cpu, 0).unwrap();
        let weights = |q: &(f32, Vec<f32>, f32)| [vec![q.0], q.1.clone()].concat();
        set_linear_critics(&agent.target_vs, (&weights(&q1), q1.2), (&weights(&q2), q2.2));

        let mut batch = index.all();
        if one_step {
            batch = batch.with_one_step();
            index.gather_into(&(0..index.len()).collect::<Vec<_>>(), &mut batch);
        }
        let rows = batch.start_index.len();
        // Row r's k next chunks in rows r k .. r k + k (the layout of
        // `max_over_samples`).
        let next = Tensor::from_slice(&chunk_values[..rows * samples * h])
            .view([(rows * samples) as i64, h as i64, 1]);
        let y: Vec<f32> = Vec::try_from(&agent.critic_target(&agent.tensors(&batch), &next)).unwrap();

        // Every step starts a chunk (next observations are recorded), in
        // data order.
        let starts: Vec<(usize, usize)> = episodes
            .iter()
            .enumerate()
            .flat_map(|(e, (steps, _))| (0..steps.len()).map(move |k| (e, k)))
            .collect();
        prop_assert_eq!(rows, starts.len());
        for (row, &(e, k)) in starts.iter().enumerate() {
            prop_assert_eq!(batch.start_index[row] as usize, row);
            let q = |w: &(f32, Vec<f32>, f32), s: f64, chunk: &[f32]| {
                f64::from(w.0) * s
                    + w.1.iter().zip(chunk).map(|(a, c)| f64::from(a * c)).sum::<f64>()
                    + f64::from(w.2)
            };
            let value = |s: f64| {
                (0..samples)
                    .map(|i| {
                        let at = (row * samples + i) * h;
                        let chunk = &chunk_values[at..at + h];
                        q(&q1, s, chunk).min(q(&q2, s, chunk))
                    })
                    .fold(f64::NEG_INFINITY, f64::max)
            };
            let expected = naive_target(&episodes[e], k, h, gamma, one_step, value);
            prop_assert!(
                (f64::from(y[row]) - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                "row {} (episode {}, step {}): got {}, expected {}", row, e, k, y[row], expected
            );
        }
    }
}
