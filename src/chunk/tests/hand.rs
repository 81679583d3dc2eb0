//! Hand-worked tables: every field of every start of small toys, worked out
//! from DESIGN.md 1 in the comments.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

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

/// O = A = 2, so a gather that strides rows by 1 instead of by the width
/// reads a neighbour's columns: s[r] = (r, 100 + r), a[r] = (10 + r, 20 + r)
/// and, when given, s'[r] = (r + 0.5, 100.5 + r). Rows 0-2 end in a
/// termination, rows 3-4 in a timeout; r = 1, 2, 4, 8, 16.
fn wide_toy(with_next: bool) -> Arc<StepDataset> {
    let rows = |values: Vec<f32>| Array2::from_shape_vec((5, 2), values).unwrap().into_dyn();
    let columns = StepColumns {
        observations: rows(vec![0., 100., 1., 101., 2., 102., 3., 103., 4., 104.]),
        actions: rows(vec![10., 20., 11., 21., 12., 22., 13., 23., 14., 24.]),
        rewards: Array1::from_vec(vec![1., 2., 4., 8., 16.]).into_dyn(),
        terminals: Array1::from_vec(vec![false, false, true, false, false]).into_dyn(),
        timeouts: Array1::from_vec(vec![false, false, false, false, true]).into_dyn(),
        next_observations: with_next.then(|| {
            rows(vec![
                0.5, 100.5, 1.5, 101.5, 2.5, 102.5, 3.5, 103.5, 4.5, 104.5,
            ])
        }),
    };
    Arc::new(StepDataset::new("<wide toy>", columns).unwrap())
}

#[test]
fn wide_rows_are_gathered_whole_at_the_row_stride() {
    // H = 3, gamma = 0.5, To = 2.
    let spec = ChunkSpec::new(3, 0.5, 2).unwrap();
    let index = ChunkIndex::new(wide_toy(true), spec).unwrap();
    let expected: Vec<Row> = vec![
        // Episode 0, rows 0-2, terminal at e = 2.
        // t=0: tau = min(3, 2 - 0 + 1) = 3: a[0] a[1] a[2], no padding.
        //   history s[-1] s[0], s[-1] before the episode -> s[0].
        //   R = 1 + .5 * 2 + .25 * 4 = 3; done = terminals[2] = 1; .5^3 = .125.
        //   next history ends at virtual row t + tau = 3: s[2], then s'[2].
        (
            0,
            vec![0., 100., 0., 100.],
            vec![10., 20., 11., 21., 12., 22.],
            vec![1., 1., 1.],
            3.0,
            1.,
            0.125,
            3,
            vec![2., 102., 2.5, 102.5],
        ),
        // t=1: tau = min(3, 2 - 1 + 1) = 2: a[1] a[2], padded with a[2]
        //   again, mask 1 1 0. History s[0] s[1], in row order.
        //   R = 2 + .5 * 4 = 4; done = terminals[1 + 2 - 1] = 1; .5^2 = .25.
        //   next history ends at virtual row 3: s[2], s'[2].
        (
            1,
            vec![0., 100., 1., 101.],
            vec![11., 21., 12., 22., 12., 22.],
            vec![1., 1., 0.],
            4.0,
            1.,
            0.25,
            2,
            vec![2., 102., 2.5, 102.5],
        ),
        // t=2: tau = 1: a[2] three times, mask 1 0 0; history s[1] s[2];
        //   R = 4; done 1; .5^1 = .5; next history s[2], s'[2].
        (
            2,
            vec![1., 101., 2., 102.],
            vec![12., 22., 12., 22., 12., 22.],
            vec![1., 0., 0.],
            4.0,
            1.,
            0.5,
            1,
            vec![2., 102., 2.5, 102.5],
        ),
        // Episode 1, rows 3-4, timeout at e = 4.
        // t=3: tau = min(3, 4 - 3 + 1) = 2: a[3] a[4] a[4], mask 1 1 0;
        //   history s[2] s[3] with s[2] in the previous episode -> s[3].
        //   R = 8 + .5 * 16 = 16; done = terminals[4] = 0 (a timeout is
        //   bootstrapped); .25; next history ends at virtual row 5: s[4], s'[4].
        (
            3,
            vec![3., 103., 3., 103.],
            vec![13., 23., 14., 24., 14., 24.],
            vec![1., 1., 0.],
            16.0,
            0.,
            0.25,
            2,
            vec![4., 104., 4.5, 104.5],
        ),
        // t=4: tau = 1: a[4] three times; history s[3] s[4]; R = 16; done 0;
        //   .5; next history s[4], s'[4].
        (
            4,
            vec![3., 103., 4., 104.],
            vec![14., 24., 14., 24., 14., 24.],
            vec![1., 0., 0.],
            16.0,
            0.,
            0.5,
            1,
            vec![4., 104., 4.5, 104.5],
        ),
    ];
    assert_eq!(rows_of(&index.all()), expected);
    // The sampler copies the same rows: each one is the table's row of its start.
    let sampled = index.sample(70, &mut ChaCha8Rng::seed_from_u64(5));
    for row in rows_of(&sampled) {
        assert_eq!(row, expected[row.0 as usize]);
    }

    // Without next_observations the terminal episode's next state repeats
    // s[2] = (2, 102) (never used: done = 1), and t = 3, 4 end on the timeout
    // row with nothing to bootstrap from: dropped.
    let index = ChunkIndex::new(wide_toy(false), spec).unwrap();
    let mut without = expected[..3].to_vec();
    for row in &mut without {
        row.8 = vec![2., 102., 2., 102.];
    }
    assert_eq!(rows_of(&index.all()), without);
    assert_eq!(index.summary().dropped_timeout, 2);
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
fn a_horizon_longer_than_every_episode_is_noted() {
    // One episode of 2 steps ending in a termination, H = 4: both starts
    // are cut short.
    let data = toy(&[1.0, 1.0], &[false, true], &[false, false], false);
    let summary = ChunkIndex::new(data, ChunkSpec::new(4, 0.9, 1).unwrap())
        .unwrap()
        .summary();
    assert_eq!((summary.starts, summary.short_starts), (2, 2));
    let note = summary.all_cut_short_note().unwrap();
    assert!(note.contains("no episode is longer than H = 4"), "{note}");
    assert!(summary.to_string().ends_with(&note));
    // An episode of exactly H = 3 rows ending on a timeout without
    // next_observations keeps none of its starts; the terminated one of 2
    // rows keeps both, cut short: the note holds (no episode is longer
    // than H), although one is not shorter.
    let data = toy(
        &[1.0; 5],
        &[false, false, false, false, true],
        &[false, false, true, false, false],
        false,
    );
    let summary = ChunkIndex::new(data, ChunkSpec::new(3, 0.9, 1).unwrap())
        .unwrap()
        .summary();
    assert_eq!((summary.starts, summary.short_starts), (2, 2));
    assert_eq!(summary.dropped_timeout, 3);
    assert!(summary.all_cut_short_note().is_some());
    // H = 3 over the three-episode toy: some chunks are whole.
    let index = ChunkIndex::new(three_episodes(true), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    assert_eq!(index.summary().all_cut_short_note(), None);
}

#[test]
fn finite_rewards_whose_discounted_sum_overflows_float32_are_refused() {
    // Rewards 3e38 (float32 holds up to 3.4028e38), a terminal on row 2,
    // gamma 0.5. H = 2: row 0 sums 3e38 + 0.5 x 3e38 = 4.5e38, beyond
    // float32: refused, naming its row. H = 1 (each chunk one reward) stays
    // inside, and so do alternating signs with gamma 0.2, although their
    // bound 3e38 x 1.2 does not (row 0: 3e38 - 0.2 x 3e38 = 2.4e38, row 1:
    // -2.4e38, row 2: 3e38).
    let spec = |h, gamma| ChunkSpec::new(h, gamma, 1).unwrap();
    let big = toy(
        &[3e38, 3e38, 3e38],
        &[false, false, true],
        &[false; 3],
        false,
    );
    let err = ChunkIndex::new(big.clone(), spec(2, 0.5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<toy>: key `rewards` row 0: the discounted reward of the chunk starting there is \
         4.500e38, beyond float32's range"
    );
    assert!(ChunkIndex::new(big, spec(1, 0.5)).is_ok());
    let mixed = toy(
        &[3e38, -3e38, 3e38],
        &[false, false, true],
        &[false; 3],
        false,
    );
    let index = ChunkIndex::new(mixed, spec(2, 0.2)).unwrap();
    let batch = index.gather(&[0, 1, 2]);
    for (got, want) in batch
        .cumulative_reward
        .iter()
        .zip([2.4e38f32, -2.4e38, 3e38])
    {
        assert!((got / want - 1.0).abs() < 1e-6, "{got} vs {want}");
    }
}
