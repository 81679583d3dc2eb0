//! Property tests: the index, its gather and its sampler against a naive
//! per-start loop, over random episode layouts and widths O, A in 1..=3.

use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// Step data as the test drew it, beside the dataset built from it. The
/// naive loop reads whole rows from these arrays, never through the
/// dataset's own row accessors, so a stride mix-up on either side shows.
#[derive(Debug, Clone)]
struct Drawn {
    /// `[N, O]`.
    observations: Array2<f32>,
    /// `[N, A]`.
    actions: Array2<f32>,
    /// `[N, O]`, in about half the cases.
    next_observations: Option<Array2<f32>>,
    rewards: Vec<f32>,
    terminals: Vec<bool>,
    timeouts: Vec<bool>,
    data: Arc<StepDataset>,
}

/// Random step data: N in 1..60 rows in episodes ended by random flags,
/// widths O and A each in 1..=3, every value drawn from -1..1 (so a copied
/// value names its row and column).
fn random_steps() -> impl Strategy<Value = Drawn> {
    (1usize..60, 1usize..=3, 1usize..=3, any::<bool>()).prop_flat_map(|(n, o, a, with_next)| {
        (
            proptest::collection::vec((0u8..10, -5.0f32..5.0), n),
            proptest::collection::vec(-1.0f32..1.0, n * (2 * o + a)),
        )
            .prop_map(move |(flags, values)| {
                // flag 0: terminal, 1: timeout, 2: both, else none.
                let terminals: Vec<bool> = flags.iter().map(|(f, _)| *f == 0 || *f == 2).collect();
                let timeouts: Vec<bool> = flags.iter().map(|(f, _)| *f == 1 || *f == 2).collect();
                let rewards: Vec<f32> = flags.iter().map(|(_, r)| *r).collect();
                let (obs, rest) = values.split_at(n * o);
                let (next, actions) = rest.split_at(n * o);
                let matrix = |width: usize, values: &[f32]| {
                    Array2::from_shape_vec((n, width), values.to_vec()).unwrap()
                };
                let (observations, actions) = (matrix(o, obs), matrix(a, actions));
                let next_observations = with_next.then(|| matrix(o, next));
                let columns = StepColumns {
                    observations: observations.clone().into_dyn(),
                    actions: actions.clone().into_dyn(),
                    rewards: Array1::from_vec(rewards.clone()).into_dyn(),
                    terminals: Array1::from_vec(terminals.clone()).into_dyn(),
                    timeouts: Array1::from_vec(timeouts.clone()).into_dyn(),
                    next_observations: next_observations.clone().map(|m| m.into_dyn()),
                };
                Drawn {
                    observations,
                    actions,
                    next_observations,
                    rewards,
                    terminals,
                    timeouts,
                    data: Arc::new(StepDataset::new("<random>", columns).unwrap()),
                }
            })
    })
}

/// The table of DESIGN.md 1 for start t, computed the slow, obvious way.
/// `None` when the start has no next state.
fn naive_row(steps: &Drawn, spec: ChunkSpec, t: usize) -> Option<Row> {
    let n = steps.rewards.len();
    let (h, to, gamma) = (spec.horizon, spec.obs_horizon, spec.gamma);
    let ends = |r: usize| steps.terminals[r] || steps.timeouts[r];
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
    let obs = |r: usize| steps.observations.row(r).to_vec();
    let next_state = match &steps.next_observations {
        Some(next) => next.row(last).to_vec(),
        None if last < e => obs(last + 1),
        None if steps.terminals[last] => obs(last),
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
        actions.extend(steps.actions.row(t + i.min(tau - 1)));
        mask.push(if i < tau { 1.0 } else { 0.0 });
    }
    let reward: f64 = (0..tau)
        .map(|i| gamma.powi(i as i32) * steps.rewards[t + i] as f64)
        .sum();
    Some((
        t as i64,
        history(t as i64, None),
        actions,
        mask,
        reward as f32,
        if steps.terminals[last] { 1.0 } else { 0.0 },
        gamma.powi(tau as i32) as f32,
        tau as i64,
        history((t + tau) as i64, Some(next_state)),
    ))
}

/// The index summary's counts, the slow way: starts whose chunk ends in a
/// termination (a row flagged both terminal and timeout terminates) or is
/// cut short (tau < H), and the starts without a next state by why: their
/// chunk ends on a timeout row, or on the data's last row with no flag.
struct NaiveCounts {
    done: usize,
    short: usize,
    dropped_timeout: usize,
    dropped_end_of_data: usize,
}

fn naive_counts(steps: &Drawn, spec: ChunkSpec) -> NaiveCounts {
    let n = steps.rewards.len();
    let mut counts = NaiveCounts {
        done: 0,
        short: 0,
        dropped_timeout: 0,
        dropped_end_of_data: 0,
    };
    for t in 0..n {
        match naive_row(steps, spec, t) {
            Some(row) => {
                counts.done += usize::from(row.5 == 1.0);
                counts.short += usize::from((row.7 as usize) < spec.horizon);
            }
            None => {
                // No next state: the chunk runs to its episode's last row.
                let mut last = t;
                while last < n - 1 && !steps.terminals[last] && !steps.timeouts[last] {
                    last += 1;
                }
                if steps.timeouts[last] {
                    counts.dropped_timeout += 1;
                } else {
                    counts.dropped_end_of_data += 1;
                }
            }
        }
    }
    counts
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()))
}

/// Every row of `batch` is the naive row of its start (the reward to
/// rounding, every other field exactly), and its one-step fields are the
/// naive H = 1 row of the same start.
fn rows_match_naive(batch: &ChunkBatch, steps: &Drawn) -> Result<(), TestCaseError> {
    let spec = batch.spec;
    let one_spec = ChunkSpec::new(1, spec.gamma, spec.obs_horizon).unwrap();
    let one = batch
        .one_step
        .as_ref()
        .expect("a batch with one-step fields");
    let w = spec.obs_horizon * steps.observations.ncols();
    for (i, got) in rows_of(batch).into_iter().enumerate() {
        let t = got.0 as usize;
        let expected = naive_row(steps, spec, t).expect("a gathered start has a next state");
        prop_assert!(
            close(got.4, expected.4),
            "reward {} vs {} at t={t}",
            got.4,
            expected.4
        );
        prop_assert_eq!(
            (&got.1, &got.2, &got.3),
            (&expected.1, &expected.2, &expected.3)
        );
        prop_assert_eq!((got.5, got.6, got.7), (expected.5, expected.6, expected.7));
        prop_assert_eq!(&got.8, &expected.8, "next history at t={}", t);
        let naive = naive_row(steps, one_spec, t).expect("one-step exists");
        prop_assert_eq!(one.reward[i], naive.4);
        prop_assert_eq!(one.done[i], naive.5);
        prop_assert_eq!(&one.next_observations[i * w..(i + 1) * w], &naive.8[..]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn index_matches_a_naive_loop_over_every_start(
        steps in random_steps(),
        h in 1usize..7,
        to in 1usize..4,
        gamma in 0.05f64..=1.0,
    ) {
        let spec = ChunkSpec::new(h, gamma, to).unwrap();
        let n = steps.rewards.len();
        let starts: Vec<i64> =
            (0..n).filter(|&t| naive_row(&steps, spec, t).is_some()).map(|t| t as i64).collect();
        match ChunkIndex::new(steps.data.clone(), spec) {
            Err(ChunkError::NothingToSample { .. }) => prop_assert!(starts.is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
            Ok(index) => {
                let summary = index.summary();
                prop_assert_eq!(summary.starts, starts.len());
                prop_assert_eq!(summary.dropped(), n - starts.len());
                let naive = naive_counts(&steps, spec);
                prop_assert_eq!(
                    (summary.done_starts, summary.short_starts),
                    (naive.done, naive.short)
                );
                prop_assert_eq!(
                    (summary.dropped_timeout, summary.dropped_end_of_data),
                    (naive.dropped_timeout, naive.dropped_end_of_data)
                );
                let positions: Vec<usize> = (0..index.len()).collect();
                let mut batch = index.empty_batch(index.len()).with_one_step();
                index.gather_into(&positions, &mut batch);
                prop_assert_eq!(&batch.start_index, &starts);
                rows_match_naive(&batch, &steps)?;
            }
        }
    }

    /// The prefetching sampler, at batch sizes that leave a partial block of
    /// `PREFETCH_BLOCK`, copies for every slot the naive row of the start it
    /// drew, and draws one `random_range(0..len)` per slot in slot order (so
    /// it equals the gather of the positions an identical rng gives).
    #[test]
    fn the_sampler_copies_the_naive_row_of_every_start_it_draws(
        steps in random_steps(),
        h in 1usize..7,
        to in 1usize..4,
        gamma in 0.05f64..=1.0,
        batch_size in prop::sample::select(vec![1usize, 31, 33, 70]),
        seed in any::<u64>(),
    ) {
        let index = ChunkIndex::new(steps.data.clone(), ChunkSpec::new(h, gamma, to).unwrap());
        // Nothing to sample is the test above's business.
        prop_assume!(index.is_ok());
        let index = index.unwrap();
        // Refill a batch that holds another draw, so a field the sampler
        // leaves unwritten shows.
        let mut sampled = index.empty_batch(batch_size).with_one_step();
        index.sample_into(&mut sampled, &mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed));
        index.sample_into(&mut sampled, &mut ChaCha8Rng::seed_from_u64(seed));
        rows_match_naive(&sampled, &steps)?;

        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let positions: Vec<usize> =
            (0..batch_size).map(|_| rng.random_range(0..index.len())).collect();
        let drawn: Vec<i64> = positions.iter().map(|&p| index.start_row(p) as i64).collect();
        prop_assert_eq!(&sampled.start_index, &drawn);
        let mut gathered = index.empty_batch(batch_size).with_one_step();
        index.gather_into(&positions, &mut gathered);
        prop_assert_eq!(&sampled, &gathered);
    }

    #[test]
    fn every_row_is_in_exactly_one_episode(steps in random_steps()) {
        let data = &steps.data;
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
