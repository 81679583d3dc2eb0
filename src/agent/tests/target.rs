//! The critic target equals a hand computation for fixed, hand-set target
//! critics (single linear layers) on a batch with terminations, short chunks
//! and a timeout; its next chunks come from the EMA policy, k per next state
//! in consecutive rows; `bellman_target` and `max_over_samples` against
//! naive loops.

use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::agent::{DiffusionQl, TargetKind, bellman_target, max_over_samples};
use crate::chunk::ChunkDims;
use crate::data::Normalizer;
use crate::noise::NoiseSource;

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
    agent_with_q2(target, max_q_samples, (&[1.0, 0.0, 0.0, 0.0], 1.0))
}

/// A DQL agent on O = A = 1 with horizon `h` and history `to`, its critics
/// linear ([`linear_critics`]), after `change` set the rest of its config.
fn linear_dql(h: usize, to: usize, change: impl FnOnce(&mut AgentConfig)) -> DiffusionQl {
    let mut cfg = small_config(8);
    linear_critics(&mut cfg);
    change(&mut cfg);
    let dims = ChunkDims {
        obs_dim: 1,
        act_dim: 1,
        horizon: h,
        obs_horizon: to,
    };
    DiffusionQl::new(cfg, dims, Normalizer::identity(1, 1), Device::Cpu, 0).unwrap()
}

/// As [`agent`], with Q2' given as (weights on [s, c_0, c_1, c_2], bias).
fn agent_with_q2(target: TargetKind, max_q_samples: usize, q2: (&[f32], f32)) -> DiffusionQl {
    let agent = linear_dql(3, 1, |cfg| {
        cfg.target = target;
        cfg.max_q_backup = max_q_samples > 1;
        cfg.max_q_samples = max_q_samples;
    });
    // Input layout: [obs (1), chunk (3)].
    set_linear_critics(&agent.target_vs, (&[1.0, 2.0, 2.0, 2.0], 0.0), q2);
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

/// With Q2' depending on the chunk, the max over samples of the min over
/// critics differs from the min over critics of the max over samples (and
/// from either critic alone, the max of both, or the min of everything).
#[test]
fn max_q_backup_is_max_of_min_not_min_of_max() {
    let index = index(toy(), 3, 0.5, 1);
    let batch = index.all();
    // Q1'(s, c) = s + 2 sum(c), Q2'(s, c) = s - 2 sum(c) + 1.
    let agent = agent_with_q2(TargetKind::Smdp, 3, (&[1.0, -2.0, -2.0, -2.0], 1.0));
    let b = agent.tensors(&batch);
    // Three samples per next state s', in rows 3i, 3i+1, 3i+2 (in a
    // different order for each state, so that the max is not always at the
    // same place), c = [x]*3, sum(c) = 3x:
    //   x = 0.1:   Q1' = s' + 0.6, Q2' = s' + 0.4  -> min s' + 0.4
    //   x = -0.5:  Q1' = s' - 3,   Q2' = s' + 4    -> min s' - 3
    //   x = 0.25:  Q1' = s' + 1.5, Q2' = s' - 0.5  -> min s' - 0.5
    // max_k min_j = s' + 0.4 (x = 0.1). Wrong orders give other values:
    //   min_j max_k = min(s' + 1.5, s' + 4) = s' + 1.5
    //   max_k Q1' = s' + 1.5; max_k Q2' = s' + 4; max_k max_j = s' + 4
    //   min_k min_j = s' - 3; no max (first sample): s' + 0.4, - 3 or - 0.5.
    let orders = [[0.1, -0.5, 0.25], [-0.5, 0.25, 0.1], [0.25, 0.1, -0.5]];
    let xs: Vec<f32> = (0..9).flat_map(|i| orders[i % 3]).collect();
    let next = Tensor::from_slice(&xs)
        .view([27, 1, 1])
        .expand([27, 3, 1], false)
        .contiguous();
    let y = values(&agent.critic_target(&b, &next));
    // y = R + (1 - done) gamma^tau (s' + 0.4), with the chunk table of
    // `smdp_target_matches_hand_computation`:
    //   t=0..2 end in the termination: y = R = 3, 4, 4
    //   t=3 (tau 3, s' 5.5): 1.75 + 0.125 * 5.9 = 2.4875
    //   t=4 (tau 3, s' 6.5): 1.75 + 0.125 * 6.9 = 2.6125
    //   t=5 (tau 2, s' 6.5): 1.5 + 0.25 * 6.9 = 3.225
    //   t=6 (tau 1, s' 6.5): 1 + 0.5 * 6.9 = 4.45
    //   t=7 (tau 2, s' 8.5): 16 + 0.25 * 8.9 = 18.225
    //   t=8 (tau 1, s' 8.5): 16 + 0.5 * 8.9 = 20.45
    // (min of max, s' + 1.5: t=3 gives 1.75 + 0.125 * 7 = 2.625, and so on.)
    assert_close(
        &y,
        &[3.0, 4.0, 4.0, 2.4875, 2.6125, 3.225, 4.45, 18.225, 20.45],
    );
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

/// Rows `[i; k]` for i in 0..n: each of n states k times in consecutive rows,
/// the layout `max_over_samples` reduces (`[s0 s0 s0 s1 s1 s1 ...]`).
fn grouped_rows(x: &Tensor, k: i64) -> Tensor {
    let n = x.size()[0];
    let rows: Vec<i64> = (0..n)
        .flat_map(|i| std::iter::repeat_n(i, k as usize))
        .collect();
    x.index_select(0, &Tensor::from_slice(&rows))
}

fn max_abs_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The toy agent with k samples per next state, whose online policy samples
/// the zero chunk under silent noise (zero output layer) while its EMA copy
/// keeps the initial weights (output scaled down so that its chunks stay
/// inside [-1, 1] and depend on the state).
fn agent_with_distinct_ema(target: TargetKind, k: usize) -> DiffusionQl {
    one_thread();
    let agent = agent(target, k);
    scale_policy_output(&agent.policy_vs, 0.0);
    scale_policy_output(&agent.ema_vs, 0.1);
    agent
}

#[test]
fn next_chunks_are_ema_samples_k_per_next_state_in_consecutive_rows() {
    let index = index(toy(), 3, 0.5, 1);
    let batch = index.all();
    let mut agent = agent_with_distinct_ema(TargetKind::Smdp, 3);
    let b = agent.tensors(&batch);
    let silent = || NoiseSource::silent(Device::Cpu);

    // Silent noise: every sample of a state is that state's EMA chunk.
    let ema = agent.ema.sample(&b.next_obs, &mut silent());
    let online = agent.policy.sample(&b.next_obs, &mut silent());
    assert_eq!(online.abs().max().double_value(&[]), 0.0);
    // Preconditions: the EMA's chunks are not the online ones and differ
    // between next states (s' = 2.5 in row 0, 8.5 in row 8).
    assert!(ema.abs().min().double_value(&[]) > 1e-3, "{ema}");
    assert!(max_abs_difference(&ema.get(0), &ema.get(8)) > 1e-3, "{ema}");
    assert!(
        ema.abs().max().double_value(&[]) < 0.99,
        "not clamped: {ema}"
    );

    agent.noise = silent();
    let next = agent.next_chunks(&b);
    assert_eq!(next.size(), vec![27, 3, 1]);
    let diff = max_abs_difference(&next, &grouped_rows(&ema, 3));
    assert!(
        diff < 1e-6,
        "rows 3i..3i+3 must be the EMA chunk of s'_i ({diff})"
    );

    // Seeded noise: the same draws as the EMA policy sampling the grouped
    // next states; the online policy with the same draws gives other chunks.
    agent.noise = NoiseSource::new(7, Device::Cpu);
    let next = agent.next_chunks(&b);
    let states = grouped_rows(&b.next_obs, 3);
    let ema = agent
        .ema
        .sample(&states, &mut NoiseSource::new(7, Device::Cpu));
    let online = agent
        .policy
        .sample(&states, &mut NoiseSource::new(7, Device::Cpu));
    assert!(max_abs_difference(&next, &ema) < 1e-6);
    assert!(max_abs_difference(&next, &online) > 1e-3);
}

#[test]
fn one_step_ablation_samples_next_chunks_at_the_next_step() {
    let index = index(toy(), 3, 0.5, 1);
    let mut batch = index.all().with_one_step();
    index.gather_into(&(0..9).collect::<Vec<_>>(), &mut batch);
    let mut agent = agent_with_distinct_ema(TargetKind::OneStep, 1);
    agent.noise = NoiseSource::silent(Device::Cpu);
    let b = agent.tensors(&batch);
    let next = agent.next_chunks(&b);
    let one = b.one_step.as_ref().unwrap();
    // s_{t+1} = t + 0.5 differs from s_{t+tau} in most rows (t = 0: 0.5 vs 2.5).
    assert!(max_abs_difference(&one.next_obs, &b.next_obs) > 1.0);
    let at_next_step = agent
        .ema
        .sample(&one.next_obs, &mut NoiseSource::silent(Device::Cpu));
    let at_chunk_end = agent
        .ema
        .sample(&b.next_obs, &mut NoiseSource::silent(Device::Cpu));
    assert!(max_abs_difference(&next, &at_next_step) < 1e-6);
    assert!(max_abs_difference(&next, &at_chunk_end) > 1e-3);
}

/// Through `update`: with silent noise the EMA chunk c_i of s'_i gives
/// min(Q1', Q2') = s'_i + min(2 sum c_i, 1), so
/// y_i = R_i + (1 - d_i) gamma^tau_i (s'_i + min(2 sum c_i, 1)), computed
/// here in f64 from the EMA's chunks. The online policy's zero chunks would
/// give s'_i + 0 instead.
#[test]
fn the_update_bootstraps_from_the_ema_policy() {
    let index = index(toy(), 3, 0.5, 1);
    let batch = index.all();
    let mut agent = agent_with_distinct_ema(TargetKind::Smdp, 2);
    agent.noise = NoiseSource::silent(Device::Cpu);
    let b = agent.tensors(&batch);
    let chunk_sums = values(
        &agent
            .ema
            .sample(&b.next_obs, &mut NoiseSource::silent(Device::Cpu))
            .sum_dim_intlist(&[1i64, 2][..], false, Kind::Float),
    );
    let y = |bonus: &dyn Fn(usize) -> f64| -> f64 {
        (0..9)
            .map(|i| {
                let s_next = f64::from(batch.next_observations[i]);
                let (r, d, g) = (
                    f64::from(batch.cumulative_reward[i]),
                    f64::from(batch.chunk_done[i]),
                    f64::from(batch.discount_factor[i]),
                );
                r + (1.0 - d) * g * (s_next + bonus(i))
            })
            .sum::<f64>()
            / 9.0
    };
    let with_ema = y(&|i| (2.0 * chunk_sums[i]).min(1.0));
    let with_online = y(&|_| 0.0);
    assert!(
        (with_ema - with_online).abs() > 1e-3,
        "the fixture can tell"
    );
    let metrics = agent.update(&batch);
    assert!(
        (metrics.target_mean - with_ema).abs() < 1e-5,
        "target mean {} vs {with_ema} (online policy: {with_online})",
        metrics.target_mean
    );
}

// ------------------------------ To = 2, no next_observations column

/// Two episodes, O = A = 1, actions 0, and no next_observations column:
///
/// | row | 0 | 1 | 2  | 3    | 4 | 5  | 6 | 7 | 8       |
/// |-----|---|---|----|------|---|----|---|---|---------|
/// | s   | 1 | 3 | -2 | 4    | 2 | -1 | 5 | 0 | 3       |
/// | r   | 1 | 2 | 4  | 8    | 1 | -1 | 2 | 1 | 3       |
/// | end |   |   |    | term |   |    |   |   | timeout |
fn two_episodes_without_next() -> Arc<StepDataset> {
    let s = [1.0, 3.0, -2.0, 4.0, 2.0, -1.0, 5.0, 0.0, 3.0];
    let r = [1.0, 2.0, 4.0, 8.0, 1.0, -1.0, 2.0, 1.0, 3.0];
    let flag = |row: usize| Array1::from_shape_fn(9, move |i| i == row).into_dyn();
    let columns = StepColumns {
        observations: Array2::from_shape_vec((9, 1), s.to_vec())
            .unwrap()
            .into_dyn(),
        actions: Array2::<f32>::zeros((9, 1)).into_dyn(),
        rewards: Array1::from_vec(r.to_vec()).into_dyn(),
        terminals: flag(3),
        timeouts: flag(8),
        next_observations: None,
    };
    Arc::new(StepDataset::new("<no next>", columns).unwrap())
}

/// A DQL agent (H 2, A 1, To 2; critic input [h_old, h_new, c_0, c_1])
/// whose online and target critics are Q1 = h_old + 3 h_new and
/// Q2 = h_old + 3 h_new + 1 (so min = Q1), blind to the chunk: the value
/// depends on the order of the two history rows.
fn history_agent() -> DiffusionQl {
    one_thread();
    let agent = linear_dql(2, 2, |_| {});
    let (q1, q2) = (
        (&[1.0f32, 3.0, 0.0, 0.0][..], 0.0),
        (&[1.0f32, 3.0, 0.0, 0.0][..], 1.0),
    );
    set_linear_critics(&agent.critic_vs, q1, q2);
    set_linear_critics(&agent.target_vs, q1, q2);
    agent
}

// H = 2, gamma = 0.5, To = 2. Without next_observations the next state of a
// chunk ending on row e is s[e + 1] and the next history is [s[e], s[e + 1]];
// starts 7 and 8 end on the timeout row (no next state): not sampled. A
// terminal chunk's next history repeats s[3] (unused). Q1'(h) = h_old + 3 h_new.
//
// d = done. Last column: 3 h_old + h_new and y, the history read the wrong way round.
//
// | t | rows | R             | d | g^tau | next hist | Q1'        | y                 | swapped  |
// |---|------|---------------|---|-------|-----------|------------|-------------------|----------|
// | 0 | 0,1  | 1 + .5*2 = 2  | 0 | .25   | [3, -2]   | 3-6 = -3   | 2 - .75 = 1.25    | 7:  3.75 |
// | 1 | 1,2  | 2 + .5*4 = 4  | 0 | .25   | [-2, 4]   | -2+12 = 10 | 4 + 2.5 = 6.5     | -2: 3.5  |
// | 2 | 2,3  | 4 + .5*8 = 8  | 1 | .25   | [4, 4]    | 16         | 8                 | 8        |
// | 3 | 3    | 8 (tau 1)     | 1 | .5    | [4, 4]    | 16         | 8                 | 8        |
// | 4 | 4,5  | 1 - .5 = .5   | 0 | .25   | [-1, 5]   | -1+15 = 14 | .5 + 3.5 = 4      | 2:  1    |
// | 5 | 5,6  | -1 + .5*2 = 0 | 0 | .25   | [5, 0]    | 5          | 0 + 1.25 = 1.25   | 15: 3.75 |
// | 6 | 6,7  | 2 + .5 = 2.5  | 0 | .25   | [0, 3]    | 9          | 2.5 + 2.25 = 4.75 | 3:  3.25 |
//
// t = 6 bootstraps from s[8], the timeout row's observation. Ignoring done
// would give y = 8 + .25*16 = 12 (t = 2) and 8 + .5*16 = 16 (t = 3).
// Sum of y = 33.75, mean 33.75 / 7.
//
// The online Q1 on the dataset histories [s[t-1], s[t]], padded with the
// episode's first row:
//   t=0 [1, 1] 4; t=1 [1, 3] 10; t=2 [3, -2] -3; t=3 [-2, 4] 10;
//   t=4 [2, 2] 8 (not [4, 2] from the previous episode: 10);
//   t=5 [2, -1] -1; t=6 [-1, 5] 14.  Sum 42, mean 6.
const NO_NEXT_Y: [f64; 7] = [1.25, 6.5, 8.0, 8.0, 4.0, 1.25, 4.75];

#[test]
fn smdp_target_with_a_two_row_history_and_no_next_observations_by_hand() {
    let index = index(two_episodes_without_next(), 2, 0.5, 2);
    let batch = index.all();
    assert_eq!(
        batch.start_index,
        vec![0, 1, 2, 3, 4, 5, 6],
        "7 and 8 dropped"
    );
    assert_eq!(batch.chunk_done, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    let mut agent = history_agent();
    let b = agent.tensors(&batch);
    // The target critics ignore the chunk: any next chunks give the same y.
    let next = Tensor::full([7, 2, 1], 0.5, (Kind::Float, Device::Cpu));
    assert_close(&values(&agent.critic_target(&b, &next)), &NO_NEXT_Y);

    // Through `update`: y's mean and the online Q1's mean on the dataset.
    agent.noise = NoiseSource::silent(Device::Cpu);
    let metrics = agent.update(&batch);
    assert_close(&[metrics.target_mean], &[33.75 / 7.0]);
    assert_close(&[metrics.q_mean], &[6.0]);
}

/// (cumulative reward, done, discount factor, next Q) of one row.
type TargetRow = (f32, bool, f32, f32);

fn row_strategy() -> impl Strategy<Value = TargetRow> {
    (
        -10f32..10.0,
        any::<bool>(),
        prop_oneof![0.01f32..=1.0, Just(1.0f32)],
        -100f32..100.0,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// y_i = R_i + (1 - d_i) disc_i next_q_i, row by row in f64; a done row's
    /// target is its reward exactly.
    #[test]
    fn bellman_target_matches_a_naive_loop(
        rows in prop::collection::vec(row_strategy(), 1..40),
    ) {
        let column = |f: &dyn Fn(&TargetRow) -> f32| {
            Tensor::from_slice(&rows.iter().map(f).collect::<Vec<f32>>())
        };
        let y = bellman_target(
            &column(&|r| r.0),
            &column(&|r| if r.1 { 1.0 } else { 0.0 }),
            &column(&|r| r.2),
            &column(&|r| r.3),
        );
        let y = Vec::<f32>::try_from(y).unwrap();
        prop_assert_eq!(y.len(), rows.len());
        for (got, &(reward, done, discount, next_q)) in y.iter().zip(&rows) {
            let not_done = if done { 0.0 } else { 1.0 };
            let expected =
                f64::from(reward) + not_done * f64::from(discount) * f64::from(next_q);
            prop_assert!(
                (f64::from(*got) - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                "{} vs {}", got, expected
            );
            if done {
                prop_assert_eq!(*got, reward);
            }
        }
    }

    /// State i's value is the max of rows i*k .. (i+1)*k.
    #[test]
    fn max_over_samples_is_the_max_of_each_states_consecutive_rows(
        (batch, k, q) in (1usize..8, 1usize..6).prop_flat_map(|(batch, k)| {
            (Just(batch), Just(k), prop::collection::vec(-100f32..100.0, batch * k))
        }),
    ) {
        let got = Vec::<f32>::try_from(
            max_over_samples(&Tensor::from_slice(&q), batch as i64),
        ).unwrap();
        let expected: Vec<f32> = (0..batch)
            .map(|i| q[i * k..(i + 1) * k].iter().copied().fold(f32::NEG_INFINITY, f32::max))
            .collect();
        prop_assert_eq!(got, expected);
    }
}
