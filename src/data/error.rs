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
    #[error("{file}: missing key `{key}` (expected {expected}){}", missing_key_hint(.key))]
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
    /// A Minari episode group flagged as ended before its last step.
    #[error(
        "{file}: key `{key}` row {row}: the episode ends before its last step (row {last}); \
         an episode group holds one episode"
    )]
    EarlyEpisodeEnd {
        file: String,
        key: String,
        row: usize,
        last: usize,
    },
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

/// What a user can do about a missing key, where there is more to say than
/// its name: files of older D4RL versions have no `timeouts`.
fn missing_key_hint(key: &str) -> &'static str {
    if key == "timeouts" {
        "; files of older D4RL versions have none, and without them a time-limit \
         cut cannot be told from a continuing episode: add a bool `timeouts` column \
         that is true on the last row of each episode cut by a time limit (all false \
         if none was)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::DataError;

    #[test]
    fn a_missing_timeouts_column_says_how_to_add_one() {
        let missing = |key: &str| DataError::MissingKey {
            file: "old.hdf5".into(),
            key: key.into(),
            expected: "D4RL names",
        };
        let timeouts = missing("timeouts").to_string();
        assert!(
            timeouts.starts_with("old.hdf5: missing key `timeouts` (expected D4RL names); ")
                && timeouts.contains("add a bool `timeouts` column"),
            "{timeouts}"
        );
        assert_eq!(
            missing("rewards").to_string(),
            "old.hdf5: missing key `rewards` (expected D4RL names)"
        );
    }
}
