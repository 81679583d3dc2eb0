//! The critic target equals a hand computation for fixed, hand-set target
//! critics (single linear layers) on a batch with terminations, short chunks
//! and a timeout.

use tch::{Device, Tensor};

use super::*;
use crate::agent::{DiffusionQl, TargetKind};
use crate::chunk::ChunkDims;
use crate::data::Normalizer;

/// Rows 0-2 end in a termination, rows 3-6 in a timeout, rows 7-8 in a
/// timeout too; s[r] = r, a[r] = 0, r = [1, 2, 4, 1, 1, 1, 1, 8, 16],
/// s'[r] = r + 0.5. (The chunk table of this data is pinned in chunk/tests.)
fn toy() -> Arc<StepDataset> {
    let ep = |rows: std::ops::Range<usize>, rewards: &[f32], terminated| Recorded {
        observations: rows.clone().map(|r| vec![r as f32]).collect(),
        actions: rows.clone().map(|_| vec![0.0]).collect(),
        rewards: rewards.to_vec(),
        next_observations: rows.map(|r| vec![r as f32 + 0.5]).collect(),
        terminated,
    };
    dataset(&[
        ep(0..3, &[1.0, 2.0, 4.0], true),
        ep(3..7, &[1.0; 4], false),
        ep(7..9, &[8.0, 16.0], false),
    ])
}

/// A DQL agent (H 3, A 1, To 1) whose target critics are linear:
/// Q1'(s, c) = s + 2 sum(c), Q2'(s, c) = s + 1, so min = s + min(2 sum c, 1).
fn agent(target: TargetKind, max_q_samples: usize) -> DiffusionQl {
    let mut cfg = small_config(8);
    cfg.critic.hidden = vec![];
    cfg.critic.use_mask = false;
    cfg.target = target;
    cfg.max_q_backup = max_q_samples > 1;
    cfg.max_q_samples = max_q_samples;
    let dims = ChunkDims {
        obs_dim: 1,
        act_dim: 1,
        horizon: 3,
        obs_horizon: 1,
    };
    let agent = DiffusionQl::new(cfg, dims, Normalizer::identity(1, 1), Device::Cpu, 0).unwrap();
    let vars = agent.target_vs.variables();
    tch::no_grad(|| {
        // Input layout: [obs (1), chunk (3)]; the twin heads are stacked:
        // weight [2, 4, 1] (Q1 then Q2), bias [2, 1, 1].
        let weights =
            Tensor::from_slice(&[1.0f32, 2.0, 2.0, 2.0, 1.0, 0.0, 0.0, 0.0]).view([2, 4, 1]);
        vars["heads.out.stacked_weight"]
            .shallow_clone()
            .copy_(&weights);
        let biases = Tensor::from_slice(&[0.0f32, 1.0]).view([2, 1, 1]);
        vars["heads.out.stacked_bias"]
            .shallow_clone()
            .copy_(&biases);
    });
    agent
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f32>::try_from(t)
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn assert_close(got: &[f64], expected: &[f64]) {
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-5, "got {got:?}\nexpected {expected:?}");
    }
}

#[test]
fn smdp_target_matches_hand_computation() {
    let index = index(toy(), 3, 0.5, 1);
    let batch = index.all();
    let agent = agent(TargetKind::Smdp, 1);
    let b = agent.tensors(&batch);
    // Every next chunk is [0.25, 0.25, 0.25]: 2 sum = 1.5, so min = s' + 1.
    let next = Tensor::full([9, 3, 1], 0.25, (tch::Kind::Float, Device::Cpu));
    let y = values(&agent.critic_target(&b, &next));
    // By hand, y = R + (1 - done) gamma^tau (s'_{t+tau} + 1):
    //   t=0..2 end in the termination: y = R = 3, 4, 4
    //   t=3 (tau 3): 1.75 + 0.125 (5.5 + 1) = 2.5625
    //   t=4 (tau 3, ends on the timeout row, bootstrapped): 1.75 + 0.125 (6.5 + 1) = 2.6875
    //   t=5 (tau 2): 1.5 + 0.25 * 7.5 = 3.375;  t=6 (tau 1): 1 + 0.5 * 7.5 = 4.75
    //   t=7 (tau 2): 16 + 0.25 * 9.5 = 18.375;  t=8 (tau 1): 16 + 0.5 * 9.5 = 20.75
    assert_close(
        &y,
        &[3.0, 4.0, 4.0, 2.5625, 2.6875, 3.375, 4.75, 18.375, 20.75],
    );
}

#[test]
fn max_q_backup_takes_the_max_over_samples_of_the_min_over_critics() {
    let index = index(toy(), 3, 0.5, 1);
    let batch = index.all();
    let agent = agent(TargetKind::Smdp, 2);
    let b = agent.tensors(&batch);
    // Two samples per state: [0.1]*3 (2 sum = 0.6 -> min = s' + 0.6) and
    // [-0.5]*3 (2 sum = -3 -> min = s' - 3). Max over the two: s' + 0.6.
    let first = Tensor::full([9, 1, 3, 1], 0.1, (tch::Kind::Float, Device::Cpu));
    let second = Tensor::full([9, 1, 3, 1], -0.5, (tch::Kind::Float, Device::Cpu));
    let next = Tensor::cat(&[first, second], 1).view([18, 3, 1]);
    let y = values(&agent.critic_target(&b, &next));
    let (r, d, g) = (
        &batch.cumulative_reward,
        &batch.chunk_done,
        &batch.discount_factor,
    );
    let expected: Vec<f64> = (0..9)
        .map(|i| {
            let s_next = batch.next_observations[i] as f64;
            r[i] as f64 + (1.0 - d[i] as f64) * g[i] as f64 * (s_next + 0.6)
        })
        .collect();
    assert_close(&y, &expected);
    // One row by hand: t=3: 1.75 + 0.125 (5.5 + 0.6) = 2.5125.
    assert!((y[3] - 2.5125).abs() < 1e-5);
}

#[test]
fn one_step_ablation_bootstraps_from_the_next_step_only() {
    let index = index(toy(), 3, 0.5, 1);
    let mut batch = index.all().with_one_step();
    index.gather_into(&(0..9).collect::<Vec<_>>(), &mut batch);
    let agent = agent(TargetKind::OneStep, 1);
    let b = agent.tensors(&batch);
    let next = Tensor::full([9, 3, 1], 0.25, (tch::Kind::Float, Device::Cpu));
    let y = values(&agent.critic_target(&b, &next));
    // y = r_t + (1 - terminal_t) 0.5 (s'_t + 1) with s'_t = t + 0.5:
    //   t=0: 1 + 0.5 * 1.5 = 1.75;  t=1: 2 + 0.5 * 2.5 = 3.25;  t=2 terminal: 4
    //   t=3..6: 1 + 0.5 (t + 1.5) (t=6 is the timeout row: still bootstrapped)
    //   t=7: 8 + 0.5 (7.5 + 1) = 12.25;  t=8: 16 + 0.5 (8.5 + 1) = 20.75
    assert_close(&y, &[1.75, 3.25, 4.0, 3.25, 3.75, 4.25, 4.75, 12.25, 20.75]);
}
