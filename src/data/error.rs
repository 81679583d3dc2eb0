//! Errors of the `data` module. Every variant names the file (or `<memory>`),
//! and where it applies the key and the row, so a user can find the problem.

use thiserror::Error;

/// What went wrong reading or validating step data.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{file}: cannot read: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}: not a valid {format} file: {message}")]
    Format {
        file: String,
        format: &'static str,
        message: String,
    },
    #[error("{file}: missing key `{key}` (expected {expected})")]
    MissingKey {
        file: String,
        key: String,
        expected: &'static str,
    },
    #[error("{file}: key `{key}` has dtype {found}, expected {expected}")]
    WrongDtype {
        file: String,
        key: String,
        found: String,
        expected: &'static str,
    },
    #[error("{file}: key `{key}` has shape {shape:?}, expected {expected}")]
    WrongShape {
        file: String,
        key: String,
        shape: Vec<usize>,
        expected: String,
    },
    #[error("{file}: key `{key}` has {found} rows but `observations` has {expected}")]
    LengthMismatch {
        file: String,
        key: String,
        found: usize,
        expected: usize,
    },
    #[error("{file}: key `{key}` row {row}: non-finite value {value}")]
    NonFinite {
        file: String,
        key: String,
        row: usize,
        value: f64,
    },
    #[error("{file}: key `{key}` row {row}: value {value:e} does not fit in float32")]
    BeyondF32 {
        file: String,
        key: String,
        row: usize,
        value: f64,
    },
    #[error("{file}: key `{key}` row {row}: flag value {value} is neither 0 nor 1")]
    BadFlag {
        file: String,
        key: String,
        row: usize,
        value: f64,
    },
    #[error("{file}: the dataset has no rows")]
    Empty { file: String },
    #[error("{file}: episode `{episode}` is empty (0 steps)")]
    EmptyEpisode { file: String, episode: String },
    #[error("{file}: cannot write: {message}")]
    Write { file: String, message: String },
    #[error("{file}: unknown file type (expected .npz{hdf5})", hdf5 = if cfg!(feature = "hdf5") { ", .h5 or .hdf5" } else { "; HDF5 needs the `hdf5` cargo feature" })]
    UnknownFormat { file: String },
    #[error(
        "{file}: this chunkql was built without HDF5 support; build it with `make setup-hdf5` \
         (installs libhdf5-dev) and `cargo build --release --features hdf5`, or convert the \
         file to .npz"
    )]
    Hdf5NotBuilt { file: String },
}

impl DataError {
    pub(crate) fn io(file: &str, error: std::io::Error) -> Self {
        DataError::Io {
            file: file.to_string(),
            error,
        }
    }
}
