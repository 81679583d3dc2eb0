//! Step data: the validated `StepDataset`, its readers and writers, and the
//! summary printed by `chunkql dataset info`.

mod dataset;
mod error;
#[cfg(feature = "hdf5")]
mod hdf5;
mod normalize;
mod npz;
mod summary;
mod synthetic;

use std::path::Path;

pub use dataset::{
    Episode, EpisodeEnd, STEP_KEYS, StepColumns, StepDataset, StepRows, find_episodes,
};
pub use error::DataError;
#[cfg(feature = "hdf5")]
pub use hdf5::read_hdf5;
pub use normalize::{MIN_STD, Normalizer};
pub use npz::{NpzArray, read_npz, write_npz, write_npz_arrays};
pub use summary::{DatasetSummary, Stats};
pub use synthetic::{LineWalk, RandomSteps};

/// Loads step data, choosing the reader by extension: `.npz`, or `.h5` /
/// `.hdf5` (D4RL flat keys or Minari episode groups; `hdf5` feature).
pub fn load(path: &Path) -> Result<StepDataset, DataError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "npz" => read_npz(path),
        #[cfg(feature = "hdf5")]
        "h5" | "hdf5" => read_hdf5(path),
        _ => Err(DataError::UnknownFormat {
            file: path.display().to_string(),
        }),
    }
}
