//! `ChunkIndex`: every sampleable chunk start of a `StepDataset`, built once in
//! one pass, and the gather that turns start positions into a `ChunkBatch`
//! straight from the step columns (DESIGN.md 1; no window is ever stored).

use std::fmt;
use std::sync::Arc;

use rand::{Rng, RngExt};

use super::batch::{ChunkBatch, ChunkDims};
use super::prefetch::prefetch;
use super::spec::{ChunkError, ChunkSpec};
use crate::data::{EpisodeEnd, StepDataset};

/// Chunks whose reads are prefetched together when sampling.
pub const PREFETCH_BLOCK: usize = 32;

/// One sampleable start. 16 bytes, so 1M starts take 16 MB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Start {
    /// Row t where the chunk starts.
    t: u32,
    /// First row of t's episode (histories are padded with it).
    episode_start: u32,
    /// tau = min(H, e - t + 1): real actions in the chunk.
    tau: u32,
    /// Row of the chunk's next state: in `next_observations` when the dataset
    /// has that column, else in `observations`.
    next_row: u32,
}

/// Sampleable chunk starts of a dataset for one `ChunkSpec`.
#[derive(Debug, Clone)]
pub struct ChunkIndex {
    data: Arc<StepDataset>,
    spec: ChunkSpec,
    /// gamma^0 .. gamma^H.
    gamma_powers: Vec<f64>,
    starts: Vec<Start>,
    /// Starts whose chunk ends on a timeout row with no next state in the file.
    dropped_timeout: usize,
    /// Starts whose chunk ends on the data's last row (no flag) with no next
    /// state in the file.
    dropped_end_of_data: usize,
}

/// Refuses data whose finite rewards sum, over a chunk, beyond float32's
/// range (a batch would hold an infinite `cumulative_reward`). Only data
/// with rewards near 1e38 can: the bound max|r| sum_i gamma^i decides
/// whether the starts are summed at all.
fn check_discounted_rewards(
    data: &StepDataset,
    starts: &[Start],
    gamma_powers: &[f64],
) -> Result<(), ChunkError> {
    let largest = data
        .rewards()
        .iter()
        .fold(0f64, |m, &r| m.max(f64::from(r.abs())));
    let horizon = gamma_powers.len() - 1;
    if largest * gamma_powers[..horizon].iter().sum::<f64>() <= f64::from(f32::MAX) {
        return Ok(());
    }
    for s in starts {
        let (t, tau) = (s.t as usize, s.tau as usize);
        let sum: f64 = data.rewards()[t..t + tau]
            .iter()
            .zip(gamma_powers)
            .map(|(&r, &g)| g * f64::from(r))
            .sum();
        if (sum as f32).is_infinite() {
            return Err(ChunkError::RewardOverflow {
                file: data.source().to_string(),
                row: t,
                sum,
            });
        }
    }
    Ok(())
}

impl ChunkIndex {
    /// Indexes every start of `data` whose chunk has a next state (or ends on
    /// a terminal row). O(N) time; 16 bytes per start.
    pub fn new(data: Arc<StepDataset>, spec: ChunkSpec) -> Result<Self, ChunkError> {
        spec.validate()?;
        if data.len() >= u32::MAX as usize {
            return Err(ChunkError::TooManyRows {
                file: data.source().to_string(),
                rows: data.len(),
            });
        }
        let has_next = data.next_observations().is_some();
        let h = spec.horizon;
        let mut starts = Vec::with_capacity(data.len());
        let (mut dropped_timeout, mut dropped_end_of_data) = (0, 0);
        for episode in data.episodes() {
            for t in episode.start..=episode.end {
                let tau = h.min(episode.end - t + 1);
                let last = t + tau - 1;
                let next_row = if has_next {
                    last
                } else if last < episode.end {
                    last + 1
                } else {
                    match episode.end_kind {
                        // Never used (1 - done = 0); DESIGN.md repeats the last row.
                        EpisodeEnd::Terminal => last,
                        EpisodeEnd::Timeout => {
                            dropped_timeout += 1;
                            continue;
                        }
                        EpisodeEnd::EndOfData => {
                            dropped_end_of_data += 1;
                            continue;
                        }
                    }
                };
                starts.push(Start {
                    t: t as u32,
                    episode_start: episode.start as u32,
                    tau: tau as u32,
                    next_row: next_row as u32,
                });
            }
        }
        let gamma_powers = spec.gamma_powers();
        check_discounted_rewards(&data, &starts, &gamma_powers)?;
        let index = ChunkIndex {
            gamma_powers,
            data,
            spec,
            starts,
            dropped_timeout,
            dropped_end_of_data,
        };
        if index.starts.is_empty() {
            return Err(ChunkError::NothingToSample {
                file: index.data.source().to_string(),
                reason: index.summary().dropped_reason(),
            });
        }
        Ok(index)
    }

    /// The dataset this index points into.
    pub fn data(&self) -> &Arc<StepDataset> {
        &self.data
    }

    pub fn spec(&self) -> ChunkSpec {
        self.spec
    }

    /// Number of sampleable starts.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Always false: construction fails when nothing can be sampled.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Row t of the start at `position` (positions are in increasing t).
    pub fn start_row(&self, position: usize) -> usize {
        self.starts[position].t as usize
    }

    /// Counts of starts and of starts dropped, with the reason.
    pub fn summary(&self) -> ChunkSummary {
        let done = self
            .starts
            .iter()
            .filter(|s| self.data.terminals()[(s.t + s.tau - 1) as usize])
            .count();
        let short = self
            .starts
            .iter()
            .filter(|s| (s.tau as usize) < self.spec.horizon)
            .count();
        ChunkSummary {
            spec: self.spec,
            rows: self.data.len(),
            starts: self.starts.len(),
            done_starts: done,
            short_starts: short,
            dropped_timeout: self.dropped_timeout,
            dropped_end_of_data: self.dropped_end_of_data,
        }
    }

    /// A new batch of `batch_size` chunks drawn uniformly with replacement.
    pub fn sample<R: Rng + ?Sized>(&self, batch_size: usize, rng: &mut R) -> ChunkBatch {
        let mut batch = self.empty_batch(batch_size);
        self.sample_into(&mut batch, rng);
        batch
    }

    /// Refills `batch` (its size is kept) with chunks drawn uniformly with
    /// replacement; reuses its buffers, so the training loop allocates nothing.
    ///
    /// Works in blocks of [`PREFETCH_BLOCK`] chunks: draw the positions,
    /// prefetch their index entries, then every row the chunks read, then copy.
    /// The draws are the same as one `random_range` per slot, in slot order.
    pub fn sample_into<R: Rng + ?Sized>(&self, batch: &mut ChunkBatch, rng: &mut R) {
        let n = self.starts.len();
        let mut positions = [0usize; PREFETCH_BLOCK];
        let mut block_starts = [Start::default(); PREFETCH_BLOCK];
        for first in (0..batch.len()).step_by(PREFETCH_BLOCK) {
            let m = PREFETCH_BLOCK.min(batch.len() - first);
            for position in &mut positions[..m] {
                *position = rng.random_range(0..n);
                prefetch(std::slice::from_ref(&self.starts[*position]));
            }
            for (start, &position) in block_starts[..m].iter_mut().zip(&positions[..m]) {
                *start = self.starts[position];
                self.prefetch_rows(*start);
            }
            for (k, &start) in block_starts[..m].iter().enumerate() {
                self.fill_slot(batch, first + k, start);
            }
        }
    }

    /// The chunks at `positions` (indices into the starts, `0..len()`).
    pub fn gather(&self, positions: &[usize]) -> ChunkBatch {
        let mut batch = self.empty_batch(positions.len());
        self.gather_into(positions, &mut batch);
        batch
    }

    /// Fills the first `positions.len()` rows of `batch` with the chunks at
    /// `positions` (indices into the starts, `0..len()`).
    pub fn gather_into(&self, positions: &[usize], batch: &mut ChunkBatch) {
        assert!(
            positions.len() <= batch.len(),
            "batch too small for the positions"
        );
        for (slot, &position) in positions.iter().enumerate() {
            self.fill_slot(batch, slot, self.starts[position]);
        }
    }

    /// Every sampleable start, in increasing t.
    pub fn all(&self) -> ChunkBatch {
        let positions: Vec<usize> = (0..self.len()).collect();
        self.gather(&positions)
    }

    /// Shapes of this index's transitions.
    pub fn dims(&self) -> ChunkDims {
        ChunkDims {
            obs_dim: self.data.obs_dim(),
            act_dim: self.data.act_dim(),
            horizon: self.spec.horizon,
            obs_horizon: self.spec.obs_horizon,
        }
    }

    /// A zeroed batch shaped for this index.
    pub fn empty_batch(&self, batch_size: usize) -> ChunkBatch {
        ChunkBatch::zeros(
            batch_size,
            self.spec,
            self.data.obs_dim(),
            self.data.act_dim(),
        )
    }

    /// Prefetches every row that [`Self::fill_slot`] will read for `s`.
    #[inline(always)]
    fn prefetch_rows(&self, s: Start) {
        let data = &*self.data;
        let (t, b, tau) = (s.t as usize, s.episode_start as usize, s.tau as usize);
        let (to, o, a) = (self.spec.obs_horizon, data.obs_dim(), data.act_dim());
        let last = t + tau - 1;
        let first_obs = (t + 1).saturating_sub(to).max(b);
        prefetch(&data.observations()[first_obs * o..(t + 1) * o]);
        prefetch(&data.actions()[t * a..(t + tau) * a]);
        prefetch(&data.rewards()[t..t + tau]);
        prefetch(&data.terminals()[last..=last]);
        if to > 1 {
            let first_next = (t + tau + 1).saturating_sub(to).max(b);
            prefetch(&data.observations()[first_next * o..(last + 1) * o]);
        }
        let next = s.next_row as usize;
        match data.next_observations() {
            Some(column) => prefetch(&column[next * o..(next + 1) * o]),
            None => prefetch(&data.observations()[next * o..(next + 1) * o]),
        }
    }

    /// Writes the chunk transition of start `s` into row `slot`.
    fn fill_slot(&self, batch: &mut ChunkBatch, slot: usize, s: Start) {
        let data = &*self.data;
        let (t, b, tau) = (s.t as usize, s.episode_start as usize, s.tau as usize);
        let (h, to) = (self.spec.horizon, self.spec.obs_horizon);
        let (o, a) = (data.obs_dim(), data.act_dim());
        let last = t + tau - 1;

        // observations[To, O]: s[t-To+1 ..= t], rows before b replaced by s[b].
        let obs_out = &mut batch.observations[slot * to * o..(slot + 1) * to * o];
        for (j, row_out) in obs_out.chunks_exact_mut(o).enumerate() {
            let row = (t + j + 1).saturating_sub(to).max(b);
            row_out.copy_from_slice(data.observation(row));
        }

        // actions[H, A]: a[t..t+tau), padded by repeating a[t+tau-1].
        let act_out = &mut batch.actions[slot * h * a..(slot + 1) * h * a];
        act_out[..tau * a].copy_from_slice(&data.actions()[t * a..(t + tau) * a]);
        for pad in act_out[tau * a..].chunks_exact_mut(a) {
            pad.copy_from_slice(data.action(last));
        }
        let mask_out = &mut batch.action_mask[slot * h..(slot + 1) * h];
        mask_out[..tau].fill(1.0);
        mask_out[tau..].fill(0.0);

        let rewards = &data.rewards()[t..t + tau];
        let discounted: f64 = rewards
            .iter()
            .zip(&self.gamma_powers)
            .map(|(&r, &g)| g * r as f64)
            .sum();
        batch.cumulative_reward[slot] = discounted as f32;
        batch.chunk_done[slot] = if data.terminals()[last] { 1.0 } else { 0.0 };
        batch.discount_factor[slot] = self.gamma_powers[tau] as f32;
        batch.effective_length[slot] = tau as i64;
        batch.start_index[slot] = t as i64;

        // next_observations[To, O]: the history ending at the next state
        // (virtual row t+tau); earlier rows are observations, clamped to b.
        let next_out = &mut batch.next_observations[slot * to * o..(slot + 1) * to * o];
        let (history, next_state) = next_out.split_at_mut((to - 1) * o);
        for (j, row_out) in history.chunks_exact_mut(o).enumerate() {
            let row = (t + tau + j + 1).saturating_sub(to).max(b);
            row_out.copy_from_slice(data.observation(row));
        }
        let next_row = s.next_row as usize;
        next_state.copy_from_slice(
            data.next_observation(next_row)
                .unwrap_or_else(|| data.observation(next_row)),
        );

        if let Some(one) = &mut batch.one_step {
            // The first step's next state: for tau = 1 the chunk's own; for
            // tau > 1 row t+1 lies inside the episode.
            let one_next_row = if tau == 1 {
                next_row
            } else if data.next_observations().is_some() {
                t
            } else {
                t + 1
            };
            one.reward[slot] = data.rewards()[t];
            one.done[slot] = if data.terminals()[t] { 1.0 } else { 0.0 };
            let out = &mut one.next_observations[slot * to * o..(slot + 1) * to * o];
            let (history, next_state) = out.split_at_mut((to - 1) * o);
            for (j, row_out) in history.chunks_exact_mut(o).enumerate() {
                let row = (t + 2 + j).saturating_sub(to).max(b);
                row_out.copy_from_slice(data.observation(row));
            }
            next_state.copy_from_slice(
                data.next_observation(one_next_row)
                    .unwrap_or_else(|| data.observation(one_next_row)),
            );
        }
    }
}

/// What an index holds and what it left out, for the dataset summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkSummary {
    pub spec: ChunkSpec,
    pub rows: usize,
    pub starts: usize,
    /// Starts whose chunk ends in a termination (chunk_done = 1).
    pub done_starts: usize,
    /// Starts whose chunk is cut short by the episode's end (tau < H).
    pub short_starts: usize,
    pub dropped_timeout: usize,
    pub dropped_end_of_data: usize,
}

impl ChunkSummary {
    pub fn dropped(&self) -> usize {
        self.dropped_timeout + self.dropped_end_of_data
    }

    /// Why starts were dropped, in words ("none dropped" when none were).
    pub fn dropped_reason(&self) -> String {
        if self.dropped() == 0 {
            return "none dropped".to_string();
        }
        let mut parts = Vec::new();
        if self.dropped_timeout > 0 {
            parts.push(format!("{} end on a timeout row", self.dropped_timeout));
        }
        if self.dropped_end_of_data > 0 {
            parts.push(format!(
                "{} end on the data's last row",
                self.dropped_end_of_data
            ));
        }
        format!(
            "{} dropped: {}, and the file has no next_observations to bootstrap from",
            match self.dropped() {
                1 => "1 chunk start".to_string(),
                n => format!("{n} chunk starts"),
            },
            parts.join(" and ")
        )
    }

    /// A note when every chunk is cut short by its episode's end, so that
    /// no chunk has H real actions. Then no episode is longer than H (an
    /// episode of exactly H rows ending on a dropped start keeps none of
    /// its starts, so "shorter than H" would be wrong).
    pub fn all_cut_short_note(&self) -> Option<String> {
        (self.starts > 0 && self.short_starts == self.starts).then(|| {
            format!(
                "note: every chunk is cut short by its episode's end: no episode is longer \
                 than H = {}, so no chunk has H real actions",
                self.spec.horizon
            )
        })
    }
}

/// `x` in its shortest exact form: plain decimals for ordinary magnitudes
/// (0.99, 1), an exponent for tiny or huge ones (1e-30, where `{}` of an
/// f64 would print 32 characters).
fn compact(x: f64) -> String {
    if x == 0.0 || (1e-4..1e15).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

impl fmt::Display for ChunkSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chunks             H {}  gamma {}  To {}",
            self.spec.horizon,
            compact(self.spec.gamma),
            self.spec.obs_horizon
        )?;
        writeln!(
            f,
            "sampleable starts  {} of {} rows ({} end in a termination, {} cut short by an episode end)",
            self.starts, self.rows, self.done_starts, self.short_starts
        )?;
        write!(f, "dropped starts     {}", self.dropped_reason())?;
        match self.all_cut_short_note() {
            Some(note) => write!(f, "\n{note}"),
            None => Ok(()),
        }
    }
}
