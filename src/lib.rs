//! chunkql: offline reinforcement learning with action chunks.
//!
//! Step data ([`data::StepDataset`]) becomes chunk transitions
//! ([`chunk::ChunkIndex`] -> [`chunk::ChunkBatch`]) whose critic target is the
//! semi-Markov one of `DESIGN.md`; the agents ([`agent::DiffusionQl`],
//! [`agent::Cpql`]) train a chunk policy ([`policy`]) and twin chunk critics
//! ([`critic`]) built from the blocks in [`nn`].
//!
//! Cargo features: `cli` (default) builds the `chunkql` command line (its
//! argument parser and Ctrl-C handler; a crate that uses only the library
//! turns it off with `default-features = false`); `hdf5` reads D4RL and
//! Minari HDF5 files ([`data`], needs the system's libhdf5).

pub mod agent;
pub mod chunk;
pub mod critic;
pub mod data;
pub mod device;
pub mod env;
pub mod eval;
pub mod fsutil;
pub mod nn;
pub mod noise;
pub mod policy;
pub mod train;

// The crates whose types chunkql's API takes and returns, at the versions it
// was built with (a `ChaCha8Rng` of another rand is another type).
pub use {ndarray, rand, rand_chacha, tch};
