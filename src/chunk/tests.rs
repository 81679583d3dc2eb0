//! The chunk table of DESIGN.md 1, pinned down by hand-worked numbers and by a
//! property test against a naive per-start loop.

use std::sync::Arc;

use ndarray::{Array1, Array2};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::data::{StepColumns, StepDataset};

/// A dataset with O = A = 1: s[r] = r, a[r] = 10 + r, so every copied value
/// names its row. next_observations, when given, are s[r] + 0.5.
fn toy(
    rewards: &[f32],
    terminals: &[bool],
    timeouts: &[bool],
    with_next: bool,
) -> Arc<StepDataset> {
    let n = rewards.len();
    let obs: Vec<f32> = (0..n).map(|r| r as f32).collect();
    let columns = StepColumns {
        observations: Array2::from_shape_vec((n, 1), obs.clone())
            .unwrap()
            .into_dyn(),
        actions: Array2::from_shape_fn((n, 1), |(r, _)| 10.0 + r as f32).into_dyn(),
        rewards: Array1::from_vec(rewards.to_vec()).into_dyn(),
        terminals: Array1::from_vec(terminals.to_vec()).into_dyn(),
        timeouts: Array1::from_vec(timeouts.to_vec()).into_dyn(),
        next_observations: with_next
            .then(|| Array2::from_shape_fn((n, 1), |(r, _)| r as f32 + 0.5).into_dyn()),
    };
    Arc::new(StepDataset::new("<toy>", columns).unwrap())
}

/// Three episodes: rows 0-2 end in a termination, rows 3-6 in a timeout,
/// rows 7-8 at the end of the file.
fn three_episodes(with_next: bool) -> Arc<StepDataset> {
    let rewards = [1.0, 2.0, 4.0, 1.0, 1.0, 1.0, 1.0, 8.0, 16.0];
    let mut terminals = [false; 9];
    let mut timeouts = [false; 9];
    terminals[2] = true;
    timeouts[6] = true;
    toy(&rewards, &terminals, &timeouts, with_next)
}

/// One expected row of the table: (t, obs history, actions, mask, reward,
/// done, discount, tau, next history).
type Row = (
    i64,
    Vec<f32>,
    Vec<f32>,
    Vec<f32>,
    f32,
    f32,
    f32,
    i64,
    Vec<f32>,
);

fn rows_of(batch: &ChunkBatch) -> Vec<Row> {
    (0..batch.len())
        .map(|i| {
            (
                batch.start_index[i],
                batch.observation_history(i).to_vec(),
                batch.action_chunk(i).to_vec(),
                batch.mask(i).to_vec(),
                batch.cumulative_reward[i],
                batch.chunk_done[i],
                batch.discount_factor[i],
                batch.effective_length[i],
                batch.next_observation_history(i).to_vec(),
            )
        })
        .collect()
}

#[test]
fn three_episode_toy_without_next_observations_matches_hand_computation() {
    // H = 3, gamma = 0.5, To = 2.
    let index = ChunkIndex::new(three_episodes(false), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    let expected: Vec<Row> = vec![
        // Episode 0 (terminal at row 2): next state repeats s[2], never used.
        // t=0: tau 3, R = 1 + .5*2 + .25*4 = 3
        (
            0,
            vec![0., 0.],
            vec![10., 11., 12.],
            vec![1., 1., 1.],
            3.0,
            1.,
            0.125,
            3,
            vec![2., 2.],
        ),
        // t=1: tau 2 (cut by the termination), R = 2 + .5*4 = 4
        (
            1,
            vec![0., 1.],
            vec![11., 12., 12.],
            vec![1., 1., 0.],
            4.0,
            1.,
            0.25,
            2,
            vec![2., 2.],
        ),
        // t=2: tau 1, R = 4
        (
            2,
            vec![1., 2.],
            vec![12., 12., 12.],
            vec![1., 0., 0.],
            4.0,
            1.,
            0.5,
            1,
            vec![2., 2.],
        ),
        // Episode 1 (timeout at row 6): t=3 ends at row 5, next state s[6].
        (
            3,
            vec![3., 3.],
            vec![13., 14., 15.],
            vec![1., 1., 1.],
            1.75,
            0.,
            0.125,
            3,
            vec![5., 6.],
        ),
        // t=4,5,6 end on the timeout row with no next_observations: dropped.
        // Episode 2 (rows 7-8, end of file): both starts end on row 8: dropped.
    ];
    assert_eq!(rows_of(&index.all()), expected);
    let summary = index.summary();
    assert_eq!(
        (
            summary.starts,
            summary.dropped_timeout,
            summary.dropped_end_of_data
        ),
        (4, 3, 2)
    );
    assert_eq!((summary.done_starts, summary.short_starts), (3, 2));
    assert_eq!(
        summary.dropped_reason(),
        "5 chunk starts dropped: 3 end on a timeout row and 2 end on the data's last row, \
         and the file has no next_observations to bootstrap from"
    );
}

#[test]
fn three_episode_toy_with_next_observations_samples_every_start() {
    let index = ChunkIndex::new(three_episodes(true), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    let expected: Vec<Row> = vec![
        (
            0,
            vec![0., 0.],
            vec![10., 11., 12.],
            vec![1., 1., 1.],
            3.0,
            1.,
            0.125,
            3,
            vec![2., 2.5],
        ),
        (
            1,
            vec![0., 1.],
            vec![11., 12., 12.],
            vec![1., 1., 0.],
            4.0,
            1.,
            0.25,
            2,
            vec![2., 2.5],
        ),
        (
            2,
            vec![1., 2.],
            vec![12., 12., 12.],
            vec![1., 0., 0.],
            4.0,
            1.,
            0.5,
            1,
            vec![2., 2.5],
        ),
        (
            3,
            vec![3., 3.],
            vec![13., 14., 15.],
            vec![1., 1., 1.],
            1.75,
            0.,
            0.125,
            3,
            vec![5., 5.5],
        ),
        // A timeout is not a termination: done = 0, bootstrapped from s'[6].
        (
            4,
            vec![3., 4.],
            vec![14., 15., 16.],
            vec![1., 1., 1.],
            1.75,
            0.,
            0.125,
            3,
            vec![6., 6.5],
        ),
        (
            5,
            vec![4., 5.],
            vec![15., 16., 16.],
            vec![1., 1., 0.],
            1.5,
            0.,
            0.25,
            2,
            vec![6., 6.5],
        ),
        (
            6,
            vec![5., 6.],
            vec![16., 16., 16.],
            vec![1., 0., 0.],
            1.0,
            0.,
            0.5,
            1,
            vec![6., 6.5],
        ),
        // End of file: bootstrapped from s'[8]; R(t=7) = 8 + .5*16 = 16.
        (
            7,
            vec![7., 7.],
            vec![17., 18., 18.],
            vec![1., 1., 0.],
            16.0,
            0.,
            0.25,
            2,
            vec![8., 8.5],
        ),
        (
            8,
            vec![7., 8.],
            vec![18., 18., 18.],
            vec![1., 0., 0.],
            16.0,
            0.,
            0.5,
            1,
            vec![8., 8.5],
        ),
    ];
    assert_eq!(rows_of(&index.all()), expected);
    assert_eq!(index.summary().dropped(), 0);
    assert_eq!(index.summary().dropped_reason(), "none dropped");
}

#[test]
fn horizon_one_is_the_one_step_transition() {
    let data = three_episodes(false);
    let gamma = 0.9;
    let index = ChunkIndex::new(data.clone(), ChunkSpec::new(1, gamma, 1).unwrap()).unwrap();
    let batch = index.all();
    // Every start except the timeout row 6 and the file's last row 8.
    let starts: Vec<i64> = batch.start_index.clone();
    assert_eq!(starts, vec![0, 1, 2, 3, 4, 5, 7]);
    for i in 0..batch.len() {
        let t = batch.start_index[i] as usize;
        assert_eq!(batch.action_chunk(i), data.action(t));
        assert_eq!(batch.mask(i), &[1.0]);
        assert_eq!(batch.cumulative_reward[i], data.rewards()[t]);
        assert_eq!(
            batch.chunk_done[i],
            if data.terminals()[t] { 1.0 } else { 0.0 }
        );
        assert_eq!(batch.discount_factor[i], gamma as f32);
        assert_eq!(batch.effective_length[i], 1);
        assert_eq!(batch.observation_history(i), data.observation(t));
        let next = if data.terminals()[t] { t } else { t + 1 };
        assert_eq!(batch.next_observation_history(i), data.observation(next));
    }
}

#[test]
fn nothing_to_sample_is_an_error_that_says_why() {
    // One episode of 2 steps ending in a timeout, H = 4, no next_observations.
    let data = toy(&[1.0, 1.0], &[false, false], &[false, true], false);
    let err = ChunkIndex::new(data, ChunkSpec::new(4, 0.9, 1).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<toy>: no chunk start can be sampled: 2 chunk starts dropped: 2 end on a timeout row, \
         and the file has no next_observations to bootstrap from"
    );
}

#[test]
fn sampling_is_reproducible_for_a_seed_and_reuses_the_batch() {
    let index = ChunkIndex::new(three_episodes(true), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    let a = index.sample(70, &mut ChaCha8Rng::seed_from_u64(7));
    let b = index.sample(70, &mut ChaCha8Rng::seed_from_u64(7));
    let c = index.sample(70, &mut ChaCha8Rng::seed_from_u64(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let mut reused = index.empty_batch(70);
    index.sample_into(&mut reused, &mut ChaCha8Rng::seed_from_u64(7));
    assert_eq!(reused, a);
    // Every sampled row is the row the table gives for its start.
    let table = rows_of(&index.all());
    for row in rows_of(&a) {
        assert_eq!(row, table[row.0 as usize]);
    }
}

#[test]
fn batch_bytes_count_every_column_of_a_batch() {
    // O 3, A 2, H 4, To 2: 4 (2 * 2 * 3 + 4 * 2 + 4 + 3) + 16 = 4 * 27 + 16 = 124.
    let spec = ChunkSpec::new(4, 0.9, 2).unwrap();
    let batch = ChunkBatch::zeros(5, spec, 3, 2);
    assert_eq!(batch.dims().bytes(1), 124);
    assert_eq!(batch.dims().bytes(5), 620);
    let held = 4
        * (batch.observations.len()
            + batch.next_observations.len()
            + batch.actions.len()
            + batch.action_mask.len()
            + batch.cumulative_reward.len()
            + batch.chunk_done.len()
            + batch.discount_factor.len())
        + 8 * (batch.effective_length.len() + batch.start_index.len());
    assert_eq!(batch.dims().bytes(5), held as u128);
    // The largest widths do not overflow: u128 holds them.
    let huge = ChunkDims {
        obs_dim: usize::MAX,
        act_dim: usize::MAX,
        horizon: MAX_LENGTH,
        obs_horizon: MAX_LENGTH,
    };
    assert!(huge.bytes(65_536) > 1 << 64);
    assert_eq!(gib(3 << 29), "1.5 GiB");
}

#[test]
fn exported_chunks_read_back_with_the_documented_keys() {
    let index = ChunkIndex::new(three_episodes(false), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chunks.npz");
    write_chunks_npz(&path, &index.all()).unwrap();
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut names = npz.names().unwrap();
    names.sort();
    let mut keys: Vec<String> = CHUNK_KEYS.iter().map(|k| k.to_string()).collect();
    keys.sort();
    assert_eq!(names, keys);
    let actions: ndarray::Array3<f32> = npz.by_name("actions").unwrap();
    assert_eq!(actions.shape(), &[4, 3, 1]);
    assert_eq!(actions[[1, 2, 0]], 12.0);
    let start: ndarray::Array1<i64> = npz.by_name("start_index").unwrap();
    assert_eq!(start.to_vec(), vec![0, 1, 2, 3]);
    // Every key holds the field of its name, in its documented shape (a key
    // written under another's name, or [B, O, To] for [B, To, O], fails
    // here); the fields themselves are the hand-worked table above.
    let all = index.all();
    let mut f32_key = |key: &str, shape: &[usize], field: &[f32]| {
        let array: ndarray::ArrayD<f32> = npz.by_name(key).unwrap();
        assert_eq!(array.shape(), shape, "{key}");
        assert_eq!(array.iter().copied().collect::<Vec<_>>(), field, "{key}");
    };
    f32_key("observations", &[4, 2, 1], &all.observations);
    f32_key("next_observations", &[4, 2, 1], &all.next_observations);
    f32_key("actions", &[4, 3, 1], &all.actions);
    f32_key("action_mask", &[4, 3], &all.action_mask);
    f32_key("cumulative_reward", &[4], &all.cumulative_reward);
    f32_key("chunk_done", &[4], &all.chunk_done);
    f32_key("discount_factor", &[4], &all.discount_factor);
    let tau: ndarray::Array1<i64> = npz.by_name("effective_length").unwrap();
    assert_eq!(tau.to_vec(), all.effective_length);
    assert_ne!(all.observations, all.next_observations);
    assert_ne!(all.cumulative_reward, all.discount_factor);
}

/// Starts are drawn uniformly: 9000 draws over the 9 starts of the toy
/// with next_observations land within 5 standard deviations of 1000 each
/// (a draw from `0..n - 1`, which never reaches the last start, fails).
#[test]
fn sampling_draws_every_start_uniformly() {
    let index = ChunkIndex::new(three_episodes(true), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    let n = index.len();
    let draws = 1000 * n;
    let batch = index.sample(draws, &mut ChaCha8Rng::seed_from_u64(3));
    let mut counts = vec![0usize; n];
    for &t in &batch.start_index {
        counts[t as usize] += 1;
    }
    let (mean, p) = (1000.0, 1.0 / n as f64);
    let sd = (draws as f64 * p * (1.0 - p)).sqrt();
    for (start, &count) in counts.iter().enumerate() {
        assert!(
            (count as f64 - mean).abs() < 5.0 * sd,
            "start {start} drawn {count} times of {draws} ({counts:?})"
        );
    }
}

// ---------------------------------------------------------------------------
// Property test: the index against a naive loop over every row.

/// The table of DESIGN.md 1 for start t, computed the slow, obvious way.
/// `None` when the start has no next state.
fn naive_row(data: &StepDataset, spec: ChunkSpec, t: usize) -> Option<Row> {
    let n = data.len();
    let (h, to, gamma) = (spec.horizon, spec.obs_horizon, spec.gamma);
    let ends = |r: usize| data.terminals()[r] || data.timeouts()[r];
    let mut e = t;
    while e < n - 1 && !ends(e) {
        e += 1;
    }
    let mut b = t;
    while b > 0 && !ends(b - 1) {
        b -= 1;
    }
    let tau = h.min(e - t + 1);
    let last = t + tau - 1;
    let obs = |r: usize| data.observation(r).to_vec();
    let next_state = match data.next_observations() {
        Some(_) => data.next_observation(last).unwrap().to_vec(),
        None if last < e => obs(last + 1),
        None if data.terminals()[last] => obs(last),
        None => return None,
    };
    let history = |end: i64, last_row: Option<Vec<f32>>| {
        let mut out = Vec::new();
        for k in (end - to as i64 + 1)..=end {
            if k == end
                && let Some(row) = &last_row
            {
                out.extend(row);
                continue;
            }
            out.extend(obs((k.max(b as i64)) as usize));
        }
        out
    };
    let mut actions = Vec::new();
    let mut mask = Vec::new();
    for i in 0..h {
        actions.extend(data.action(t + i.min(tau - 1)));
        mask.push(if i < tau { 1.0 } else { 0.0 });
    }
    let reward: f64 = (0..tau)
        .map(|i| gamma.powi(i as i32) * data.rewards()[t + i] as f64)
        .sum();
    Some((
        t as i64,
        history(t as i64, None),
        actions,
        mask,
        reward as f32,
        if data.terminals()[last] { 1.0 } else { 0.0 },
        gamma.powi(tau as i32) as f32,
        tau as i64,
        history((t + tau) as i64, Some(next_state)),
    ))
}

/// Random step data: N rows in episodes ended by random flags, O = 2, A = 1.
fn random_dataset() -> impl Strategy<Value = Arc<StepDataset>> {
    (1usize..60, any::<bool>()).prop_flat_map(|(n, with_next)| {
        (
            proptest::collection::vec((0u8..10, -5.0f32..5.0), n),
            proptest::collection::vec(-1.0f32..1.0, n * 3),
            Just(with_next),
        )
            .prop_map(move |(flags, values, with_next)| {
                // flag 0: terminal, 1: timeout, 2: both, else none.
                let terminals: Vec<bool> = flags.iter().map(|(f, _)| *f == 0 || *f == 2).collect();
                let timeouts: Vec<bool> = flags.iter().map(|(f, _)| *f == 1 || *f == 2).collect();
                let rewards: Vec<f32> = flags.iter().map(|(_, r)| *r).collect();
                let columns = StepColumns {
                    observations: Array2::from_shape_vec((n, 2), values[..2 * n].to_vec())
                        .unwrap()
                        .into_dyn(),
                    actions: Array2::from_shape_vec((n, 1), values[2 * n..].to_vec())
                        .unwrap()
                        .into_dyn(),
                    rewards: Array1::from_vec(rewards).into_dyn(),
                    terminals: Array1::from_vec(terminals).into_dyn(),
                    timeouts: Array1::from_vec(timeouts).into_dyn(),
                    next_observations: with_next.then(|| {
                        Array2::from_shape_fn((n, 2), |(r, c)| 100.0 + r as f32 + c as f32 / 10.0)
                            .into_dyn()
                    }),
                };
                Arc::new(StepDataset::new("<random>", columns).unwrap())
            })
    })
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn index_matches_a_naive_loop_over_every_start(
        data in random_dataset(),
        h in 1usize..7,
        to in 1usize..4,
        gamma in 0.05f64..=1.0,
    ) {
        let spec = ChunkSpec::new(h, gamma, to).unwrap();
        let expected: Vec<Row> = (0..data.len()).filter_map(|t| naive_row(&data, spec, t)).collect();
        let dropped = data.len() - expected.len();
        match ChunkIndex::new(data.clone(), spec) {
            Err(ChunkError::NothingToSample { .. }) => prop_assert!(expected.is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
            Ok(index) => {
                let summary = index.summary();
                prop_assert_eq!(summary.starts, expected.len());
                prop_assert_eq!(summary.dropped(), dropped);
                let positions: Vec<usize> = (0..index.len()).collect();
                let mut batch = index.empty_batch(index.len()).with_one_step();
                index.gather_into(&positions, &mut batch);
                let got = rows_of(&batch);
                prop_assert_eq!(got.len(), expected.len());
                // The one-step fields are the H = 1 transition of the same start.
                let one = batch.one_step.as_ref().unwrap();
                let one_spec = ChunkSpec::new(1, gamma, to).unwrap();
                let w = to * data.obs_dim();
                for (i, row) in got.iter().enumerate() {
                    let naive = naive_row(&data, one_spec, row.0 as usize).expect("one-step exists");
                    prop_assert_eq!(one.reward[i], naive.4);
                    prop_assert_eq!(one.done[i], naive.5);
                    prop_assert_eq!(&one.next_observations[i * w..(i + 1) * w], &naive.8[..]);
                }
                for (g, e) in got.iter().zip(&expected) {
                    prop_assert!(close(g.4, e.4), "reward {} vs {} at t={}", g.4, e.4, e.0);
                    let (mut g, mut e) = (g.clone(), e.clone());
                    g.4 = 0.0;
                    e.4 = 0.0;
                    prop_assert_eq!(g, e);
                }
            }
        }
    }

    #[test]
    fn every_row_is_in_exactly_one_episode(data in random_dataset()) {
        let mut covered = 0;
        for (k, ep) in data.episodes().iter().enumerate() {
            prop_assert_eq!(ep.start, covered);
            prop_assert!(ep.end >= ep.start);
            for r in ep.start..ep.end {
                prop_assert!(!data.terminals()[r] && !data.timeouts()[r]);
            }
            let flagged = data.terminals()[ep.end] || data.timeouts()[ep.end];
            prop_assert!(flagged || (k + 1 == data.episodes().len() && ep.end + 1 == data.len()));
            covered = ep.end + 1;
        }
        prop_assert_eq!(covered, data.len());
    }
}

#[test]
fn a_horizon_longer_than_every_episode_is_noted() {
    // One episode of 2 steps ending in a termination, H = 4: both starts
    // are cut short.
    let data = toy(&[1.0, 1.0], &[false, true], &[false, false], false);
    let summary = ChunkIndex::new(data, ChunkSpec::new(4, 0.9, 1).unwrap())
        .unwrap()
        .summary();
    assert_eq!((summary.starts, summary.short_starts), (2, 2));
    let note = summary.all_cut_short_note().unwrap();
    assert!(
        note.contains("H = 4 is longer than every episode"),
        "{note}"
    );
    assert!(summary.to_string().ends_with(&note));
    // H = 3 over the three-episode toy: some chunks are whole.
    let index = ChunkIndex::new(three_episodes(true), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    assert_eq!(index.summary().all_cut_short_note(), None);
}
