//! `ChunkBatch`: B chunk transitions in flat row-major buffers, ready to be
//! copied into tensors. Field meanings are DESIGN.md 1's table.

use serde::{Deserialize, Serialize};

use super::spec::ChunkSpec;

/// Widths of a chunk transition: O, A, H and To.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDims {
    /// O: observation width.
    pub obs_dim: usize,
    /// A: action width.
    pub act_dim: usize,
    /// H: actions per chunk.
    pub horizon: usize,
    /// To: observations per history.
    pub obs_horizon: usize,
}

impl ChunkDims {
    /// To * O: width of a flattened observation history.
    pub fn cond_dim(&self) -> usize {
        self.obs_horizon * self.obs_dim
    }
    /// H * A: width of a flattened chunk.
    pub fn chunk_dim(&self) -> usize {
        self.horizon * self.act_dim
    }

    /// Bytes of `count` transitions in a [`ChunkBatch`] (the one-step
    /// columns aside): float32 histories `2 To O`, chunk `H A`, mask `H` and
    /// three scalars, and two int64s. In u128, saturating at its largest
    /// value (for any widths a ChunkIndex allows, it is exact).
    pub fn bytes(&self, count: usize) -> u128 {
        let (to, o, h, a) = (
            self.obs_horizon as u128,
            self.obs_dim as u128,
            self.horizon as u128,
            self.act_dim as u128,
        );
        let floats = (2 * to)
            .saturating_mul(o)
            .saturating_add(h.saturating_mul(a + 1) + 3);
        (count as u128).saturating_mul(floats.saturating_mul(4).saturating_add(16))
    }
}

/// `bytes` in GiB, one decimal, for messages.
pub fn gib(bytes: u128) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// B chunk transitions. Shapes use B = batch size, To = obs horizon,
/// O = observation width, H = chunk horizon, A = action width.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkBatch {
    pub spec: ChunkSpec,
    pub obs_dim: usize,
    pub act_dim: usize,
    /// `[B, To, O]` history ending at the start row t.
    pub observations: Vec<f32>,
    /// `[B, H, A]` a[t..t+tau), padded by repeating the last real action.
    pub actions: Vec<f32>,
    /// `[B, H]` 1 for real actions, 0 for padding.
    pub action_mask: Vec<f32>,
    /// `[B]` sum_{i<tau} gamma^i r[t+i].
    pub cumulative_reward: Vec<f32>,
    /// `[B]` 1 when the episode terminated inside the chunk, else 0.
    pub chunk_done: Vec<f32>,
    /// `[B]` gamma^tau.
    pub discount_factor: Vec<f32>,
    /// `[B]` tau, the number of real actions.
    pub effective_length: Vec<i64>,
    /// `[B, To, O]` history ending at the chunk's next state.
    pub next_observations: Vec<f32>,
    /// `[B]` the start row t in the step data.
    pub start_index: Vec<i64>,
    /// The one-step transition at t, for the naive-target ablation only;
    /// filled when present (see [`ChunkBatch::with_one_step`]).
    pub one_step: Option<OneStep>,
}

/// The one-step transition (s_t, a_t, r_t, s_{t+1}) of each chunk's first
/// step: what a naive implementation would bootstrap from.
#[derive(Debug, Clone, PartialEq)]
pub struct OneStep {
    /// `[B]` `r[t]`.
    pub reward: Vec<f32>,
    /// `[B]` `terminals[t]`.
    pub done: Vec<f32>,
    /// `[B, To, O]` history ending at s_{t+1}.
    pub next_observations: Vec<f32>,
}

impl ChunkBatch {
    /// A batch of `batch_size` zeroed transitions.
    pub fn zeros(batch_size: usize, spec: ChunkSpec, obs_dim: usize, act_dim: usize) -> Self {
        let (h, to) = (spec.horizon, spec.obs_horizon);
        ChunkBatch {
            spec,
            obs_dim,
            act_dim,
            observations: vec![0.0; batch_size * to * obs_dim],
            actions: vec![0.0; batch_size * h * act_dim],
            action_mask: vec![0.0; batch_size * h],
            cumulative_reward: vec![0.0; batch_size],
            chunk_done: vec![0.0; batch_size],
            discount_factor: vec![0.0; batch_size],
            effective_length: vec![0; batch_size],
            next_observations: vec![0.0; batch_size * to * obs_dim],
            start_index: vec![0; batch_size],
            one_step: None,
        }
    }

    /// Also gather the one-step transition of each chunk's first step.
    pub fn with_one_step(mut self) -> Self {
        let b = self.len();
        self.one_step = Some(OneStep {
            reward: vec![0.0; b],
            done: vec![0.0; b],
            next_observations: vec![0.0; b * self.spec.obs_horizon * self.obs_dim],
        });
        self
    }

    /// Shapes of this batch's transitions.
    pub fn dims(&self) -> ChunkDims {
        ChunkDims {
            obs_dim: self.obs_dim,
            act_dim: self.act_dim,
            horizon: self.spec.horizon,
            obs_horizon: self.spec.obs_horizon,
        }
    }

    /// Batch size B.
    pub fn len(&self) -> usize {
        self.cumulative_reward.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cumulative_reward.is_empty()
    }

    /// `[To, O]` observation history of transition `i`.
    pub fn observation_history(&self, i: usize) -> &[f32] {
        let w = self.spec.obs_horizon * self.obs_dim;
        &self.observations[i * w..(i + 1) * w]
    }

    /// `[To, O]` next-observation history of transition `i`.
    pub fn next_observation_history(&self, i: usize) -> &[f32] {
        let w = self.spec.obs_horizon * self.obs_dim;
        &self.next_observations[i * w..(i + 1) * w]
    }

    /// `[H, A]` action chunk of transition `i`.
    pub fn action_chunk(&self, i: usize) -> &[f32] {
        let w = self.spec.horizon * self.act_dim;
        &self.actions[i * w..(i + 1) * w]
    }

    /// `[H]` action mask of transition `i`.
    pub fn mask(&self, i: usize) -> &[f32] {
        let h = self.spec.horizon;
        &self.action_mask[i * h..(i + 1) * h]
    }
}
