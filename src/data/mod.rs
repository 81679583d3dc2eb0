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
/// A directory is refused by name, whatever its extension (`runs.npz/`).
pub fn load(path: &Path) -> Result<StepDataset, DataError> {
    if path.is_dir() {
        return Err(DataError::io(
            &path.display().to_string(),
            std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory, not a step-data file",
            ),
        ));
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "npz" => read_npz(path),
        #[cfg(feature = "hdf5")]
        "h5" | "hdf5" => read_hdf5(path),
        #[cfg(not(feature = "hdf5"))]
        "h5" | "hdf5" => Err(DataError::Hdf5NotBuilt {
            file: path.display().to_string(),
        }),
        _ => Err(DataError::UnknownFormat {
            file: path.display().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_refused_by_name_whatever_its_extension() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["some_dir.npz", "some_dir.h5", "some_dir"] {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            let message = load(&path).unwrap_err().to_string();
            assert_eq!(
                message,
                format!(
                    "{}: cannot read: is a directory, not a step-data file",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.npz");
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: cannot read: ", path.display())),
            "{message}"
        );
        assert!(message.contains("No such file or directory"), "{message}");
    }

    /// Without the `hdf5` feature an HDF5 file is named as such, with how
    /// to build a chunkql that reads it.
    #[cfg(not(feature = "hdf5"))]
    #[test]
    fn an_hdf5_file_without_the_feature_says_how_to_build_it() {
        let message = load(Path::new("hopper.hdf5")).unwrap_err().to_string();
        assert!(
            message.starts_with("hopper.hdf5: this chunkql was built without HDF5"),
            "{message}"
        );
        assert!(message.contains("--features hdf5"), "{message}");
    }

    #[test]
    fn an_unknown_extension_is_refused() {
        let message = load(Path::new("data.csv")).unwrap_err().to_string();
        assert!(
            message.starts_with("data.csv: unknown file type (expected .npz"),
            "{message}"
        );
    }
}
