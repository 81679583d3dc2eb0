//! The chunk table of DESIGN.md 1, pinned down by hand-worked numbers and by
//! property tests against a naive per-start loop. Shared here: the toy step
//! data and the expected-row type.

mod export;
mod hand;
mod properties;
mod sampling;

use std::sync::Arc;

use ndarray::{Array1, Array2};

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
