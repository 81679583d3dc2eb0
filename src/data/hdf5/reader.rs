//! Typed, validated reads of single datasets and groups: the part of the
//! HDF5 readers that is the same for both layouts.

use ::hdf5::types::{FloatSize, TypeDescriptor};
use ::hdf5::{Dataset, Group, LocationType};
use ndarray::ArrayD;

use super::{EpisodeData, FLAG_DTYPES, FLOAT_DTYPES, FORMAT, Observations};
use crate::data::dataset::{check_finite, flags_from_numbers, into_vec};
use crate::data::error::DataError;
use crate::data::npz::narrow_to_f32;

pub(super) fn format_error(file: &str, key: &str, e: ::hdf5::Error) -> DataError {
    DataError::Format {
        file: file.to_string(),
        format: FORMAT,
        message: format!("`{key}`: {e}"),
    }
}

/// Reads typed columns from one file; `expected` lists the keys of its layout.
pub(super) struct Reader<'a> {
    pub(super) file: &'a str,
    pub(super) expected: &'static str,
}

impl Reader<'_> {
    /// The dataset `name` of `group`; `key` is its full name for errors.
    pub(super) fn dataset(
        &self,
        group: &Group,
        name: &str,
        key: &str,
    ) -> Result<Dataset, DataError> {
        if !group.link_exists(name) {
            return Err(DataError::MissingKey {
                file: self.file.to_string(),
                key: key.to_string(),
                expected: self.expected,
            });
        }
        let kind = group
            .loc_type_by_name(name)
            .map_err(|e| format_error(self.file, key, e))?;
        if kind != LocationType::Dataset {
            return Err(DataError::Format {
                file: self.file.to_string(),
                format: FORMAT,
                message: format!("`{key}` is a {kind:?}, expected a dataset"),
            });
        }
        group
            .dataset(name)
            .map_err(|e| format_error(self.file, key, e))
    }

    /// The element type of `dataset`, or a `WrongDtype` error for types that
    /// hdf5-metno cannot describe.
    fn dtype(
        &self,
        dataset: &Dataset,
        key: &str,
        expected: &'static str,
    ) -> Result<TypeDescriptor, DataError> {
        let dtype = dataset
            .dtype()
            .map_err(|e| format_error(self.file, key, e))?;
        dtype.to_descriptor().map_err(|e| {
            // The one case worth naming: a float of another width (float16).
            let found = match e.to_string().contains("size of float") {
                true => format!("float{}", 8 * dtype.size()),
                false => format!("unsupported ({e})"),
            };
            self.wrong_dtype(key, found, expected)
        })
    }

    fn wrong_dtype(&self, key: &str, found: String, expected: &'static str) -> DataError {
        DataError::WrongDtype {
            file: self.file.to_string(),
            key: key.to_string(),
            found,
            expected,
        }
    }

    pub(super) fn array<T>(
        &self,
        key: &str,
        shape: Vec<usize>,
        values: Vec<T>,
    ) -> Result<ArrayD<T>, DataError> {
        ArrayD::from_shape_vec(shape, values).map_err(|e| DataError::Format {
            file: self.file.to_string(),
            format: FORMAT,
            message: format!("`{key}`: {e}"),
        })
    }

    /// A float column, f32 or f64 narrowed to f32 (a finite f64 beyond
    /// float32's range is an error naming its row); any shape.
    pub(super) fn floats(&self, dataset: &Dataset, key: &str) -> Result<ArrayD<f32>, DataError> {
        let read_err = |e| format_error(self.file, key, e);
        match self.dtype(dataset, key, FLOAT_DTYPES)? {
            TypeDescriptor::Float(FloatSize::U4) => dataset.read_dyn::<f32>().map_err(read_err),
            TypeDescriptor::Float(FloatSize::U8) => {
                let wide = dataset.read_dyn::<f64>().map_err(read_err)?;
                narrow_to_f32(self.file, key, wide)
            }
            other => Err(self.wrong_dtype(key, other.to_string(), FLOAT_DTYPES)),
        }
    }

    /// A flag column: bool, or integers/floats holding exactly 0 or 1; any shape.
    pub(super) fn flags(&self, dataset: &Dataset, key: &str) -> Result<ArrayD<bool>, DataError> {
        let read_err = |e| format_error(self.file, key, e);
        let shape = dataset.shape();
        let values: Vec<f64> = match self.dtype(dataset, key, FLAG_DTYPES)? {
            // h5py's FALSE/TRUE enum, read as its 1-byte integer values and
            // not as Rust `bool`: a stored 2 must become a `BadFlag` error,
            // never an invalid `bool`.
            TypeDescriptor::Boolean => dataset
                .read_raw::<u8>()
                .map_err(read_err)?
                .into_iter()
                .map(f64::from)
                .collect(),
            TypeDescriptor::Integer(_) => dataset
                .read_raw::<i64>()
                .map_err(read_err)?
                .into_iter()
                .map(|v| v as f64)
                .collect(),
            TypeDescriptor::Unsigned(_) => dataset
                .read_raw::<u64>()
                .map_err(read_err)?
                .into_iter()
                .map(|v| v as f64)
                .collect(),
            TypeDescriptor::Float(FloatSize::U4 | FloatSize::U8) => {
                dataset.read_raw::<f64>().map_err(read_err)?
            }
            other => return Err(self.wrong_dtype(key, other.to_string(), FLAG_DTYPES)),
        };
        let flags = flags_from_numbers(self.file, key, &shape, &values)?;
        self.array(key, shape, flags)
    }

    /// Reads one Minari episode group and checks its shapes against
    /// T = rows of `actions`.
    pub(super) fn episode(&self, group: &Group, name: &str) -> Result<EpisodeData, DataError> {
        let key = |member: &str| format!("{name}/{member}");

        let actions_key = key("actions");
        let actions = self.floats(&self.dataset(group, "actions", &actions_key)?, &actions_key)?;
        if actions.ndim() != 2 {
            return Err(self.wrong_shape(&actions_key, actions.shape(), "[T, A]".into()));
        }
        let (steps, act_dim) = (actions.shape()[0], actions.shape()[1]);
        if act_dim == 0 {
            return Err(self.wrong_shape(
                &actions_key,
                actions.shape(),
                "[T, A] with A >= 1".into(),
            ));
        }
        if steps == 0 {
            return Err(DataError::EmptyEpisode {
                file: self.file.to_string(),
                episode: name.to_string(),
            });
        }
        let t_is = format!("T = {steps} rows of `{actions_key}`");

        let obs_key = key("observations");
        let is_dict = group.link_exists("observations")
            && group
                .loc_type_by_name("observations")
                .map_err(|e| format_error(self.file, &obs_key, e))?
                == LocationType::Group;
        let observations = if is_dict {
            let obs_group = group
                .group("observations")
                .map_err(|e| format_error(self.file, &obs_key, e))?;
            self.dict_observations(&obs_group, &obs_key, steps + 1, &t_is)?
        } else {
            let obs = self.floats(&self.dataset(group, "observations", &obs_key)?, &obs_key)?;
            if obs.ndim() != 2 || obs.shape()[0] != steps + 1 {
                return Err(self.wrong_shape(
                    &obs_key,
                    obs.shape(),
                    format!("[T+1, O] = [{}, O] ({t_is})", steps + 1),
                ));
            }
            let width = obs.shape()[1];
            if width == 0 {
                return Err(self.wrong_shape(&obs_key, obs.shape(), "[T+1, O] with O >= 1".into()));
            }
            Observations {
                values: self.finite(&obs_key, width, into_vec(obs))?,
                width,
                keys: None,
            }
        };

        let rewards_key = key("rewards");
        let rewards = self.floats(&self.dataset(group, "rewards", &rewards_key)?, &rewards_key)?;
        self.check_steps(&rewards_key, rewards.shape(), steps, &t_is)?;
        let flags = |member: &str| -> Result<Vec<bool>, DataError> {
            let flag_key = key(member);
            let flags = self.flags(&self.dataset(group, member, &flag_key)?, &flag_key)?;
            self.check_steps(&flag_key, flags.shape(), steps, &t_is)?;
            Ok(into_vec(flags))
        };
        let terminations = flags("terminations")?;
        let truncations = flags("truncations")?;
        // A group is one episode: a flag before its last step would split
        // it in two, joined by a transition that never happened.
        for (member, column) in [
            ("terminations", &terminations),
            ("truncations", &truncations),
        ] {
            if let Some(row) = column[..steps - 1].iter().position(|&f| f) {
                return Err(DataError::EarlyEpisodeEnd {
                    file: self.file.to_string(),
                    key: key(member),
                    row,
                    last: steps - 1,
                });
            }
        }

        Ok(EpisodeData {
            observations,
            actions: self.finite(&actions_key, act_dim, into_vec(actions))?,
            act_dim,
            rewards: self.finite(&rewards_key, 1, into_vec(rewards))?,
            terminations,
            truncations,
        })
    }

    /// Dict observations: every dataset under `group` (nested groups
    /// included, keys `a/b`), `[rows]` or `[rows, k]`, concatenated along the
    /// feature axis in sorted key order (Gymnasium's `Dict` order) into
    /// `[rows, O]`.
    fn dict_observations(
        &self,
        group: &Group,
        group_key: &str,
        rows: usize,
        t_is: &str,
    ) -> Result<Observations, DataError> {
        let mut members = Vec::new();
        self.collect_members(group, group_key, "", &mut members)?;
        if members.is_empty() {
            return Err(DataError::Format {
                file: self.file.to_string(),
                format: FORMAT,
                message: format!("`{group_key}` is a group without datasets"),
            });
        }
        let mut columns = Vec::with_capacity(members.len());
        for (sub_key, dataset) in &members {
            let full_key = format!("{group_key}/{sub_key}");
            let values = self.floats(dataset, &full_key)?;
            let width = match values.shape() {
                [r] if *r == rows => 1,
                [r, k] if *r == rows => *k,
                shape => {
                    return Err(self.wrong_shape(
                        &full_key,
                        shape,
                        format!("[T+1] or [T+1, k] with T+1 = {rows} ({t_is})"),
                    ));
                }
            };
            columns.push((
                sub_key.clone(),
                width,
                self.finite(&full_key, width, into_vec(values))?,
            ));
        }
        let obs_dim: usize = columns.iter().map(|(_, width, _)| width).sum();
        if obs_dim == 0 {
            return Err(DataError::Format {
                file: self.file.to_string(),
                format: FORMAT,
                message: format!("`{group_key}`: every member has width 0 (O >= 1 needed)"),
            });
        }
        let mut values = Vec::with_capacity(rows * obs_dim);
        for row in 0..rows {
            for (_, width, column) in &columns {
                values.extend_from_slice(&column[row * width..(row + 1) * width]);
            }
        }
        let keys = columns
            .into_iter()
            .map(|(key, width, _)| (key, width))
            .collect();
        Ok(Observations {
            values,
            width: obs_dim,
            keys: Some(keys),
        })
    }

    /// Appends the datasets under `group` to `out` as (`prefix` + name, dataset),
    /// recursing into subgroups, in sorted name order (a Dict space's keys,
    /// as Gymnasium flattens them), except that a Tuple space's members
    /// `_index_<n>` come in the order of n.
    fn collect_members(
        &self,
        group: &Group,
        group_key: &str,
        prefix: &str,
        out: &mut Vec<(String, Dataset)>,
    ) -> Result<(), DataError> {
        let mut names = group
            .member_names()
            .map_err(|e| format_error(self.file, group_key, e))?;
        names.sort_by_key(|name| {
            let index = name
                .strip_prefix("_index_")
                .and_then(|i| i.parse::<u64>().ok());
            (index, name.clone())
        });
        for name in names {
            let key = format!("{group_key}/{name}");
            let kind = group
                .loc_type_by_name(&name)
                .map_err(|e| format_error(self.file, &key, e))?;
            match kind {
                LocationType::Group => {
                    let sub = group
                        .group(&name)
                        .map_err(|e| format_error(self.file, &key, e))?;
                    self.collect_members(&sub, &key, &format!("{prefix}{name}/"), out)?;
                }
                LocationType::Dataset => {
                    out.push((format!("{prefix}{name}"), self.dataset(group, &name, &key)?));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A per-step column must be `[T]`.
    fn check_steps(
        &self,
        key: &str,
        shape: &[usize],
        steps: usize,
        t_is: &str,
    ) -> Result<(), DataError> {
        if shape != [steps] {
            return Err(self.wrong_shape(key, shape, format!("[T] = [{steps}] ({t_is})")));
        }
        Ok(())
    }

    fn wrong_shape(&self, key: &str, shape: &[usize], expected: String) -> DataError {
        DataError::WrongShape {
            file: self.file.to_string(),
            key: key.to_string(),
            shape: shape.to_vec(),
            expected,
        }
    }

    /// Rejects NaN/inf, naming the episode's key and the row inside it.
    fn finite(&self, key: &str, width: usize, values: Vec<f32>) -> Result<Vec<f32>, DataError> {
        check_finite(self.file, key, width, values)
    }
}
