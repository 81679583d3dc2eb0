//! Chunk transitions (DESIGN.md 1): the `ChunkSpec` (H, gamma, To), the
//! `ChunkIndex` of sampleable starts, and `ChunkBatch`es gathered from the
//! step columns without materialising windows.

mod batch;
mod index;
mod prefetch;
mod spec;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use batch::{ChunkBatch, ChunkDims, OneStep, gib};
pub use index::{ChunkIndex, ChunkSummary, PREFETCH_BLOCK};
pub use spec::{ChunkError, ChunkSpec, MAX_LENGTH};

use crate::data::{DataError, NpzArray, write_npz_arrays};

/// Key names of an exported chunk table, in file order.
pub const CHUNK_KEYS: [&str; 9] = [
    "observations",
    "next_observations",
    "actions",
    "action_mask",
    "cumulative_reward",
    "chunk_done",
    "effective_length",
    "discount_factor",
    "start_index",
];

/// Writes `batch` to an `.npz` with the keys of [`CHUNK_KEYS`]: float
/// fields as f32 (mask and done as 0/1), `effective_length` and
/// `start_index` as int64.
pub fn write_chunks_npz(path: &Path, batch: &ChunkBatch) -> Result<(), DataError> {
    let (b, h, to) = (batch.len(), batch.spec.horizon, batch.spec.obs_horizon);
    let (o, a) = (batch.obs_dim, batch.act_dim);
    let arrays = [
        (
            CHUNK_KEYS[0],
            NpzArray::f32(&[b, to, o], &batch.observations),
        ),
        (
            CHUNK_KEYS[1],
            NpzArray::f32(&[b, to, o], &batch.next_observations),
        ),
        (CHUNK_KEYS[2], NpzArray::f32(&[b, h, a], &batch.actions)),
        (CHUNK_KEYS[3], NpzArray::f32(&[b, h], &batch.action_mask)),
        (CHUNK_KEYS[4], NpzArray::f32(&[b], &batch.cumulative_reward)),
        (CHUNK_KEYS[5], NpzArray::f32(&[b], &batch.chunk_done)),
        (CHUNK_KEYS[6], NpzArray::i64(&[b], &batch.effective_length)),
        (CHUNK_KEYS[7], NpzArray::f32(&[b], &batch.discount_factor)),
        (CHUNK_KEYS[8], NpzArray::i64(&[b], &batch.start_index)),
    ];
    write_npz_arrays(path, &arrays)
}
