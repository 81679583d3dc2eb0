//! `.npz` step data with D4RL key names (numpy's `np.savez` layout), read and
//! written in pure Rust.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{NpzReader, NpzWriter, ReadNpyError, ReadNpzError};

use super::dataset::{StepColumns, StepDataset, STEP_KEYS, flags_from_numbers};
use super::error::DataError;
use crate::fsutil::atomic_write;

/// One array to write into an `.npz` file.
pub enum NpzArray {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
    Bool(ArrayD<bool>),
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
    StepDataset::new(&file, columns)
}

/// Writes `data` to `path` with D4RL key names (f32 columns, bool flags),
/// atomically.
pub fn write_npz(path: &Path, data: &StepDataset) -> Result<(), DataError> {
    let (n, o, a) = (data.len(), data.obs_dim(), data.act_dim());
    let f32_array = |shape: &[usize], values: &[f32]| {
        NpzArray::F32(ArrayD::from_shape_vec(shape.to_vec(), values.to_vec()).expect("shape"))
    };
    let bool_array =
        |values: &[bool]| NpzArray::Bool(ArrayD::from_shape_vec(vec![n], values.to_vec()).expect("shape"));
    let mut arrays = vec![
        ("observations", f32_array(&[n, o], data.observations())),
        ("actions", f32_array(&[n, a], data.actions())),
        ("rewards", f32_array(&[n], data.rewards())),
        ("terminals", bool_array(data.terminals())),
        ("timeouts", bool_array(data.timeouts())),
    ];
    if let Some(next) = data.next_observations() {
        arrays.push(("next_observations", f32_array(&[n, o], next)));
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
            Attempt::Found(a) => Ok(Some(a.mapv(|v| v as f32))),
            Attempt::Missing => Ok(None),
            Attempt::OtherDtype(found) => Err(self.wrong_dtype(key, found, EXPECTED)),
        }
    }

    fn required_float(&mut self, key: &str) -> Result<ArrayD<f32>, DataError> {
        self.float(key)?.ok_or_else(|| self.missing(key))
    }

    /// A flag column: bool, or integers/floats holding exactly 0 or 1.
    fn required_flag(&mut self, key: &str) -> Result<ArrayD<bool>, DataError> {
        const EXPECTED: &str = "bool, an integer type or a float type holding 0/1";
        macro_rules! try_numeric {
            ($($t:ty),*) => {$(
                match self.attempt::<$t>(key)? {
                    Attempt::Found(a) => {
                        let shape = a.shape().to_vec();
                        let values: Vec<f64> = a.iter().map(|&v| v as f64).collect();
                        let flags = flags_from_numbers(&self.file, key, &values)?;
                        return Ok(ArrayD::from_shape_vec(shape, flags).expect("shape"));
                    }
                    Attempt::Missing => return Err(self.missing(key)),
                    Attempt::OtherDtype(_) => {}
                }
            )*};
        }
        let found = match self.attempt::<bool>(key)? {
            Attempt::Found(a) => return Ok(a),
            Attempt::Missing => return Err(self.missing(key)),
            Attempt::OtherDtype(found) => found,
        };
        try_numeric!(u8, i8, i16, i32, i64, u16, u32, u64, f32, f64);
        Err(self.wrong_dtype(key, found, EXPECTED))
    }
}
