//! `.npz` step data with D4RL key names (numpy's `np.savez` layout), read and
//! written in pure Rust.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use ndarray::{ArrayD, ArrayViewD};
use ndarray_npy::{NpzReader, NpzWriter, ReadDataError, ReadNpyError, ReadNpzError};

use super::dataset::{STEP_COLUMNS, STEP_KEYS, StepColumns, StepDataset, flags_from_numbers};
use super::error::DataError;
use crate::fsutil::atomic_write;

/// One array to write into an `.npz` file: a view, so that writing copies
/// nothing.
pub enum NpzArray<'a> {
    F32(ArrayViewD<'a, f32>),
    I64(ArrayViewD<'a, i64>),
    Bool(ArrayViewD<'a, bool>),
}

impl<'a> NpzArray<'a> {
    /// `values` seen as float32 of `shape` (their product is `values.len()`).
    pub fn f32(shape: &[usize], values: &'a [f32]) -> Self {
        NpzArray::F32(ArrayViewD::from_shape(shape, values).expect("shape of the values"))
    }

    /// `values` seen as int64 of `shape`.
    pub fn i64(shape: &[usize], values: &'a [i64]) -> Self {
        NpzArray::I64(ArrayViewD::from_shape(shape, values).expect("shape of the values"))
    }

    /// `values` seen as bool of `shape`.
    pub fn bool(shape: &[usize], values: &'a [bool]) -> Self {
        NpzArray::Bool(ArrayViewD::from_shape(shape, values).expect("shape of the values"))
    }
}

/// Reads step data from `path` (keys: observations, actions, rewards,
/// terminals, timeouts, optional next_observations). Floats may be stored as
/// f32 or f64; flags as bool, integers or floats holding exactly 0 or 1.
pub fn read_npz(path: &Path) -> Result<StepDataset, DataError> {
    let file = path.display().to_string();
    let handle = File::open(path).map_err(|e| DataError::io(&file, e))?;
    let mut npz = NpzFile {
        file: file.clone(),
        reader: NpzReader::new(handle).map_err(|e| DataError::Format {
            file: file.clone(),
            format: "npz",
            message: e.to_string(),
        })?,
    };
    let columns = StepColumns {
        observations: npz.required_float("observations")?,
        actions: npz.required_float("actions")?,
        rewards: npz.required_float("rewards")?,
        terminals: npz.required_flag("terminals")?,
        timeouts: npz.required_flag("timeouts")?,
        next_observations: npz.float("next_observations")?,
    };
    let data = StepDataset::new(&file, columns)?;
    // Other keys are allowed (D4RL files carry infos/...), but named.
    let names = npz.reader.names().map_err(|e| DataError::Format {
        file: file.clone(),
        format: "npz",
        message: e.to_string(),
    })?;
    let unread: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| !STEP_COLUMNS.contains(name))
        .collect();
    Ok(data.with_unread("keys", &unread, ""))
}

/// Writes `data` to `path` with D4RL key names (f32 columns, bool flags),
/// atomically.
pub fn write_npz(path: &Path, data: &StepDataset) -> Result<(), DataError> {
    let (n, o, a) = (data.len(), data.obs_dim(), data.act_dim());
    let mut arrays = vec![
        ("observations", NpzArray::f32(&[n, o], data.observations())),
        ("actions", NpzArray::f32(&[n, a], data.actions())),
        ("rewards", NpzArray::f32(&[n], data.rewards())),
        ("terminals", NpzArray::bool(&[n], data.terminals())),
        ("timeouts", NpzArray::bool(&[n], data.timeouts())),
    ];
    if let Some(next) = data.next_observations() {
        arrays.push(("next_observations", NpzArray::f32(&[n, o], next)));
    }
    write_npz_arrays(path, &arrays)
}

/// Writes named arrays to an uncompressed `.npz` (readable by `numpy.load`),
/// atomically.
pub fn write_npz_arrays(path: &Path, arrays: &[(&str, NpzArray)]) -> Result<(), DataError> {
    let file = path.display().to_string();
    atomic_write(path, |out| {
        let mut npz = NpzWriter::new(out);
        for (name, array) in arrays {
            let added = match array {
                NpzArray::F32(a) => npz.add_array(*name, a),
                NpzArray::I64(a) => npz.add_array(*name, a),
                NpzArray::Bool(a) => npz.add_array(*name, a),
            };
            added.map_err(std::io::Error::other)?;
        }
        npz.finish().map_err(std::io::Error::other)?;
        Ok(())
    })
    .map_err(|e| DataError::Write {
        file,
        message: e.to_string(),
    })
}

/// f64 values narrowed to f32 (the nearest), rejecting finite values beyond
/// float32's range, which would silently become inf; NaN and inf pass
/// through to the non-finite check of `StepDataset`. The error names the key
/// and the row (first axis) of the first such value.
pub(super) fn narrow_to_f32(
    file: &str,
    key: &str,
    array: ArrayD<f64>,
) -> Result<ArrayD<f32>, DataError> {
    let width: usize = array.shape().iter().skip(1).product();
    let too_large = array
        .iter()
        .enumerate()
        .find(|(_, v)| v.is_finite() && (**v as f32).is_infinite());
    if let Some((index, &value)) = too_large {
        return Err(DataError::BeyondF32 {
            file: file.to_string(),
            key: key.to_string(),
            row: index / width.max(1),
            value,
        });
    }
    Ok(array.mapv(|v| v as f32))
}

/// One element of a numpy bool array (`|b1`) as its raw byte.
#[derive(Debug, Clone, Copy)]
struct BoolByte(u8);

impl ndarray_npy::ReadableElement for BoolByte {
    fn read_to_end_exact_vec<R: Read>(
        mut reader: R,
        type_desc: &py_literal::Value,
        len: usize,
    ) -> Result<Vec<Self>, ReadDataError> {
        if !matches!(type_desc, py_literal::Value::String(s) if s == "|b1") {
            return Err(ReadDataError::WrongDescriptor(type_desc.clone()));
        }
        let mut bytes = vec![0u8; len];
        reader.read_exact(&mut bytes).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ReadDataError::MissingData,
            _ => ReadDataError::Io(e),
        })?;
        let extra = std::io::copy(&mut reader, &mut std::io::sink()).map_err(ReadDataError::Io)?;
        if extra > 0 {
            return Err(ReadDataError::ExtraBytes(extra as usize));
        }
        Ok(bytes.into_iter().map(BoolByte).collect())
    }
}

struct NpzFile<R: Read + Seek> {
    file: String,
    reader: NpzReader<R>,
}

/// Outcome of reading a key as one element type.
enum Attempt<T> {
    Found(T),
    Missing,
    OtherDtype(String),
}

impl<R: Read + Seek> NpzFile<R> {
    fn attempt<T: ndarray_npy::ReadableElement>(
        &mut self,
        key: &str,
    ) -> Result<Attempt<ArrayD<T>>, DataError> {
        match self.reader.by_name::<_, ndarray::IxDyn>(key) {
            Ok(array) => Ok(Attempt::Found(array)),
            Err(ReadNpzError::Zip(zip::result::ZipError::FileNotFound)) => Ok(Attempt::Missing),
            Err(ReadNpzError::Npy(ReadNpyError::WrongDescriptor(found))) => {
                Ok(Attempt::OtherDtype(found.to_string()))
            }
            Err(e) => Err(DataError::Format {
                file: self.file.clone(),
                format: "npz",
                message: format!("key `{key}`: {e}"),
            }),
        }
    }

    fn missing(&self, key: &str) -> DataError {
        DataError::MissingKey {
            file: self.file.clone(),
            key: key.to_string(),
            expected: STEP_KEYS,
        }
    }

    fn wrong_dtype(&self, key: &str, found: String, expected: &'static str) -> DataError {
        DataError::WrongDtype {
            file: self.file.clone(),
            key: key.to_string(),
            found,
            expected,
        }
    }

    /// A float column (f32, or f64 narrowed to f32); `None` when absent.
    fn float(&mut self, key: &str) -> Result<Option<ArrayD<f32>>, DataError> {
        const EXPECTED: &str = "float32 or float64";
        match self.attempt::<f32>(key)? {
            Attempt::Found(a) => return Ok(Some(a)),
            Attempt::Missing => return Ok(None),
            Attempt::OtherDtype(_) => {}
        }
        match self.attempt::<f64>(key)? {
            Attempt::Found(a) => narrow_to_f32(&self.file, key, a).map(Some),
            Attempt::Missing => Ok(None),
            Attempt::OtherDtype(found) => Err(self.wrong_dtype(key, found, EXPECTED)),
        }
    }

    fn required_float(&mut self, key: &str) -> Result<ArrayD<f32>, DataError> {
        self.float(key)?.ok_or_else(|| self.missing(key))
    }

    /// A flag column: bool, or integers/floats holding exactly 0 or 1.
    fn required_flag(&mut self, key: &str) -> Result<ArrayD<bool>, DataError> {
        const EXPECTED: &str = "bool, an integer type, float32 or float64 holding 0/1";
        macro_rules! try_numeric {
            ($($t:ty),*) => {$(
                match self.attempt::<$t>(key)? {
                    Attempt::Found(a) => {
                        let shape = a.shape().to_vec();
                        let values: Vec<f64> = a.iter().map(|&v| v as f64).collect();
                        let flags = flags_from_numbers(&self.file, key, &shape, &values)?;
                        return Ok(ArrayD::from_shape_vec(shape, flags).expect("shape"));
                    }
                    Attempt::Missing => return Err(self.missing(key)),
                    Attempt::OtherDtype(_) => {}
                }
            )*};
        }
        // numpy's bool as its bytes: one other than 0 or 1 (which numpy
        // reads as True) is named with its row, not a parse error.
        let found = match self.attempt::<BoolByte>(key)? {
            Attempt::Found(a) => {
                let values: Vec<u8> = a.iter().map(|b| b.0).collect();
                let flags = flags_from_numbers(&self.file, key, a.shape(), &values)?;
                return Ok(ArrayD::from_shape_vec(a.shape(), flags).expect("shape"));
            }
            Attempt::Missing => return Err(self.missing(key)),
            Attempt::OtherDtype(found) => found,
        };
        try_numeric!(u8, i8, i16, i32, i64, u16, u32, u64, f32, f64);
        Err(self.wrong_dtype(key, found, EXPECTED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LineWalk;
    use std::path::PathBuf;

    /// Runs `script` with the project venv's Python (numpy installed by
    /// scripts/setup.sh) in `dir`.
    fn python(dir: &Path, script: &str) {
        let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
        let status = std::process::Command::new(python)
            .arg("-c")
            .arg(format!("import numpy as np\n{script}"))
            .current_dir(dir)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {python} ({e}); run scripts/setup.sh first"));
        assert!(status.success(), "python script failed: {script}");
    }

    /// Writes `keys` (python expressions) with np.savez into `name`.
    fn numpy_file(dir: &Path, name: &str, keys: &[(&str, &str)]) -> PathBuf {
        let args: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
        python(dir, &format!("np.savez('{name}', {})", args.join(", ")));
        dir.join(name)
    }

    const GOOD: [(&str, &str); 5] = [
        (
            "observations",
            "np.arange(8, dtype=np.float32).reshape(4, 2)",
        ),
        ("actions", "np.ones((4, 1), dtype=np.float32)"),
        ("rewards", "np.array([0, 1, 2, 3], dtype=np.float32)"),
        ("terminals", "np.array([0, 1, 0, 0], dtype=bool)"),
        ("timeouts", "np.array([0, 0, 0, 1], dtype=bool)"),
    ];

    fn with(replace: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut keys: Vec<_> = GOOD
            .iter()
            .copied()
            .filter(|(k, _)| !replace.iter().any(|(r, _)| r == k))
            .collect();
        keys.extend(replace.iter().copied().filter(|(_, v)| !v.is_empty()));
        keys
    }

    #[test]
    fn keys_that_are_not_read_are_named_in_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let keys = with(&[("next_obs", "np.zeros((4, 2), dtype=np.float32)")]);
        let data = read_npz(&numpy_file(dir.path(), "extra.npz", &keys)).unwrap();
        assert!(data.next_observations().is_none());
        assert_eq!(data.notes().len(), 1);
        assert!(
            data.notes()[0].starts_with("keys not read: next_obs (the step data is observations,"),
            "{:?}",
            data.notes()
        );
        let plain = read_npz(&numpy_file(dir.path(), "plain.npz", &GOOD)).unwrap();
        assert!(plain.notes().is_empty());
    }

    #[test]
    fn round_trip_keeps_every_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("line.npz");
        let data = LineWalk {
            episodes: 5,
            ..LineWalk::default()
        }
        .generate();
        write_npz(&path, &data).unwrap();
        let back = read_npz(&path).unwrap();
        assert_eq!(back.observations(), data.observations());
        assert_eq!(back.actions(), data.actions());
        assert_eq!(back.rewards(), data.rewards());
        assert_eq!(back.terminals(), data.terminals());
        assert_eq!(back.timeouts(), data.timeouts());
        assert_eq!(back.next_observations(), data.next_observations());
    }

    #[test]
    fn numpy_files_read_with_exact_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = numpy_file(dir.path(), "good.npz", &GOOD);
        let data = read_npz(&path).unwrap();
        assert_eq!(data.observations(), &[0., 1., 2., 3., 4., 5., 6., 7.]);
        assert_eq!(data.terminals(), &[false, true, false, false]);
        assert_eq!(data.timeouts(), &[false, false, false, true]);
        assert!(data.next_observations().is_none());
        assert_eq!(data.episodes().len(), 2);
    }

    #[test]
    fn float64_columns_and_numeric_flags_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let keys = with(&[
            (
                "observations",
                "np.arange(8, dtype=np.float64).reshape(4, 2) / 4",
            ),
            ("terminals", "np.array([0, 1, 0, 0], dtype=np.float32)"),
            ("timeouts", "np.array([0, 0, 0, 1], dtype=np.int64)"),
            ("next_observations", "np.zeros((4, 2))"),
        ]);
        let path = numpy_file(dir.path(), "f64.npz", &keys);
        let data = read_npz(&path).unwrap();
        assert_eq!(data.observation(3), &[1.5, 1.75]);
        assert_eq!(data.terminals(), &[false, true, false, false]);
        assert_eq!(data.timeouts(), &[false, false, false, true]);
        assert_eq!(data.next_observation(0), Some(&[0.0f32, 0.0][..]));
    }

    #[test]
    fn compressed_npz_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = GOOD.iter().map(|(k, v)| format!("{k}={v}")).collect();
        python(
            dir.path(),
            &format!("np.savez_compressed('c.npz', {})", args.join(", ")),
        );
        let compressed = read_npz(&dir.path().join("c.npz")).unwrap();
        let plain = read_npz(&numpy_file(dir.path(), "plain.npz", &GOOD)).unwrap();
        // The same columns as the same arrays stored plain, which
        // `numpy_files_read_with_exact_values` checks value by value.
        assert_eq!(compressed.len(), 4);
        assert_eq!(compressed.observations(), plain.observations());
        assert_eq!(compressed.actions(), &[1.0; 4]);
        assert_eq!(compressed.rewards(), &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(compressed.terminals(), plain.terminals());
        assert_eq!(compressed.timeouts(), plain.timeouts());
    }

    fn error_of(replace: &[(&'static str, &'static str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = numpy_file(dir.path(), "bad.npz", &with(replace));
        let err = read_npz(&path).unwrap_err().to_string();
        err.replace(&dir.path().display().to_string(), "DIR")
    }

    #[test]
    fn missing_key_is_named() {
        assert_eq!(
            error_of(&[("rewards", "")]),
            "DIR/bad.npz: missing key `rewards` (expected D4RL names: observations, \
             actions, rewards, terminals, timeouts, optional next_observations)"
        );
    }

    #[test]
    fn wrong_dtype_is_named() {
        assert_eq!(
            error_of(&[("observations", "np.zeros((4, 2), dtype=np.int64)")]),
            "DIR/bad.npz: key `observations` has dtype '<i8', expected float32 or float64"
        );
        assert!(
            error_of(&[("terminals", "np.array(['a', 'b', 'c', 'd'])")])
                .starts_with("DIR/bad.npz: key `terminals` has dtype '<U1', expected bool"),
        );
    }

    #[test]
    fn wrong_rank_and_length_are_named() {
        assert_eq!(
            error_of(&[("rewards", "np.zeros((4, 3), dtype=np.float32)")]),
            "DIR/bad.npz: key `rewards` has shape [4, 3], expected [N] (or [N, 1])"
        );
        assert_eq!(
            error_of(&[("actions", "np.zeros((3, 1), dtype=np.float32)")]),
            "DIR/bad.npz: key `actions` has 3 rows but `observations` has 4"
        );
    }

    #[test]
    fn non_finite_values_and_bad_flags_name_the_row() {
        assert_eq!(
            error_of(&[(
                "actions",
                "np.array([[0], [1], [2], [np.inf]], dtype=np.float32)"
            )]),
            "DIR/bad.npz: key `actions` row 3: non-finite value inf"
        );
        assert_eq!(
            error_of(&[("terminals", "np.array([0, 0, 3, 0], dtype=np.uint8)")]),
            "DIR/bad.npz: key `terminals` row 2: flag value 3 is neither 0 nor 1"
        );
        // A numpy bool stored as a byte other than 0 or 1 (numpy reads it as
        // True), and a bad flag in a column of the wrong shape: both name
        // the row it is on.
        assert_eq!(
            error_of(&[(
                "terminals",
                "np.array([0, 2, 0, 0], dtype=np.uint8).view(bool)"
            )]),
            "DIR/bad.npz: key `terminals` row 1: flag value 2 is neither 0 nor 1"
        );
        assert_eq!(
            error_of(&[(
                "timeouts",
                "np.array([[0, 0, 0], [0, 0, 5], [0, 0, 0], [0, 0, 0]], dtype=np.uint8)"
            )]),
            "DIR/bad.npz: key `timeouts` row 1: flag value 5 is neither 0 nor 1"
        );
        // Flag values only of float32 or float64 (as the floats columns).
        assert_eq!(
            error_of(&[("terminals", "np.zeros(4, dtype=np.float16)")]),
            "DIR/bad.npz: key `terminals` has dtype '<f2', expected bool, an integer type, \
             float32 or float64 holding 0/1"
        );
    }

    #[test]
    fn float64_values_beyond_float32_are_named_not_called_infinite() {
        assert_eq!(
            error_of(&[("rewards", "np.array([0, 1, 1e39, 3], dtype=np.float64)")]),
            "DIR/bad.npz: key `rewards` row 2: value 1e39 does not fit in float32"
        );
        assert_eq!(
            error_of(&[(
                "next_observations",
                "np.array([[0, 0], [0, 0], [0, 0], [0, -2.5e300]])"
            )]),
            "DIR/bad.npz: key `next_observations` row 3: value -2.5e300 does not fit in \
             float32"
        );
        // Real NaN/inf keep their own message; float32's largest value fits.
        assert_eq!(
            error_of(&[("rewards", "np.array([0, 1, 2, -np.inf])")]),
            "DIR/bad.npz: key `rewards` row 3: non-finite value -inf"
        );
        let dir = tempfile::tempdir().unwrap();
        let keys = with(&[(
            "rewards",
            "np.array([0, 1, 2, np.finfo(np.float32).max], dtype=np.float64)",
        )]);
        let data = read_npz(&numpy_file(dir.path(), "max.npz", &keys)).unwrap();
        assert_eq!(data.rewards()[3], f32::MAX);
    }

    #[test]
    fn empty_and_foreign_files_are_rejected() {
        assert_eq!(
            error_of(&[
                ("observations", "np.zeros((0, 2), dtype=np.float32)"),
                ("actions", "np.zeros((0, 1), dtype=np.float32)"),
                ("rewards", "np.zeros(0, dtype=np.float32)"),
                ("terminals", "np.zeros(0, dtype=bool)"),
                ("timeouts", "np.zeros(0, dtype=bool)"),
            ]),
            "DIR/bad.npz: the dataset has no rows"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.npz");
        std::fs::write(&path, "not a zip").unwrap();
        let err = read_npz(&path).unwrap_err().to_string();
        assert!(err.contains("text.npz: not a valid npz file"), "{err}");
    }
}
