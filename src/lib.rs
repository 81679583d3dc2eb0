//! chunkql: offline reinforcement learning with action chunks.
//!
//! Step data ([`data::StepDataset`]) becomes chunk transitions
//! ([`chunk::ChunkIndex`] -> [`chunk::ChunkBatch`]) whose critic target is the
//! semi-Markov one of `DESIGN.md`.

pub mod chunk;
pub mod data;
pub mod fsutil;
