//! HDF5 step data (`hdf5` feature), in either of two layouts:
//!
//! - **D4RL** (flat): top-level datasets `observations [N, O]`,
//!   `actions [N, A]`, `rewards [N]`, `terminals [N]`, `timeouts [N]`,
//!   optional `next_observations [N, O]`; other members (`infos/`,
//!   `metadata/`, ...) are ignored.
//! - **Minari**: groups `episode_0`, `episode_1`, ... (numeric order), each
//!   with `observations [T+1, O]` (the final observation included; a group of
//!   datasets for dict observation spaces), `actions [T, A]`, `rewards [T]`,
//!   `terminations [T]`, `truncations [T]`. Mapped to step rows as
//!   observations = obs[:-1], next_observations = obs[1:],
//!   terminals = terminations, timeouts = truncations.
//!
//! Floats may be f32 or f64 (narrowed to f32); flags bool (h5py's FALSE/TRUE
//! enum) or integers/floats holding exactly 0 or 1.

use std::path::Path;

use ::hdf5::types::{FloatSize, TypeDescriptor};
use ::hdf5::{Dataset, Group, LocationType};
use ndarray::ArrayD;

use super::dataset::{STEP_KEYS, StepColumns, StepDataset, flags_from_numbers};
use super::error::DataError;

const FORMAT: &str = "HDF5";
/// `expected` of `MissingKey` in a Minari file.
const MINARI_KEYS: &str =
    "a Minari episode group needs observations, actions, rewards, terminations, truncations";
/// D4RL keys whose presence at the top level selects the flat layout.
const D4RL_REQUIRED: [&str; 5] = [
    "observations",
    "actions",
    "rewards",
    "terminals",
    "timeouts",
];
const FLOAT_DTYPES: &str = "float32 or float64";
const FLAG_DTYPES: &str = "bool, an integer type or a float type holding 0/1";

/// Reads step data from a D4RL (flat) or Minari (episode groups) HDF5 file;
/// the layout is detected from the top-level members.
pub fn read_hdf5(path: &Path) -> Result<StepDataset, DataError> {
    let file = path.display().to_string();
    // A missing or unreadable file is an I/O error, not a format error.
    std::fs::File::open(path).map_err(|e| DataError::io(&file, e))?;
    let h5 = ::hdf5::File::open(path).map_err(|e| DataError::Format {
        file: file.clone(),
        format: FORMAT,
        message: e.to_string(),
    })?;
    let root: &Group = &h5;
    let names = root
        .member_names()
        .map_err(|e| format_error(&file, "/", e))?;

    if D4RL_REQUIRED
        .iter()
        .any(|key| names.iter().any(|n| n == key))
    {
        return read_d4rl(&file, root);
    }
    let episodes = episode_groups(&file, root, &names)?;
    if !episodes.is_empty() {
        return read_minari(&file, root, &episodes);
    }
    let mut found: Vec<&str> = names.iter().map(String::as_str).take(8).collect();
    if names.len() > found.len() {
        found.push("...");
    }
    Err(DataError::Format {
        file,
        format: FORMAT,
        message: format!(
            "expected top-level datasets ({STEP_KEYS}) or Minari groups \
             episode_0, episode_1, ...; found [{}]",
            found.join(", ")
        ),
    })
}

/// D4RL: the top-level datasets are the step columns.
fn read_d4rl(file: &str, root: &Group) -> Result<StepDataset, DataError> {
    let h5 = Reader {
        file,
        expected: STEP_KEYS,
    };
    let floats = |key: &str| h5.floats(&h5.dataset(root, key, key)?, key);
    let flags = |key: &str| h5.flags(&h5.dataset(root, key, key)?, key);
    let columns = StepColumns {
        observations: floats("observations")?,
        actions: floats("actions")?,
        rewards: floats("rewards")?,
        terminals: flags("terminals")?,
        timeouts: flags("timeouts")?,
        next_observations: if root.link_exists("next_observations") {
            Some(floats("next_observations")?)
        } else {
            None
        },
    };
    StepDataset::new(file, columns)
}

/// Top-level groups named `episode_<integer>`, sorted by the integer.
fn episode_groups(
    file: &str,
    root: &Group,
    names: &[String],
) -> Result<Vec<(u64, String)>, DataError> {
    let mut episodes = Vec::new();
    for name in names {
        let Some(index) = name
            .strip_prefix("episode_")
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        let kind = root
            .loc_type_by_name(name)
            .map_err(|e| format_error(file, name, e))?;
        if kind == LocationType::Group {
            episodes.push((index, name.clone()));
        }
    }
    episodes.sort();
    Ok(episodes)
}

/// Dict observation keys (sorted, nested ones as `a/b`) with their widths.
type DictKeys = Vec<(String, usize)>;

/// The observations of one Minari episode.
struct Observations {
    /// `[T+1, O]`, row-major, the final observation included.
    values: Vec<f32>,
    /// O.
    width: usize,
    /// For dict observations, the concatenated keys in order.
    keys: Option<DictKeys>,
}

/// One Minari episode of T >= 1 steps, row-major.
struct EpisodeData {
    observations: Observations,
    /// `[T, A]`.
    actions: Vec<f32>,
    /// A.
    act_dim: usize,
    /// `[T]`.
    rewards: Vec<f32>,
    /// `[T]`.
    terminations: Vec<bool>,
    /// `[T]`.
    truncations: Vec<bool>,
}

/// Widths (and dict keys) of the first episode, which every other must match.
struct Layout<'a> {
    episode: &'a str,
    obs_dim: usize,
    obs_keys: Option<DictKeys>,
    act_dim: usize,
}

impl Layout<'_> {
    fn check(&self, file: &str, name: &str, episode: &EpisodeData) -> Result<(), DataError> {
        let first = self.episode;
        let obs = &episode.observations;
        if obs.keys != self.obs_keys {
            return Err(DataError::Format {
                file: file.to_string(),
                format: FORMAT,
                message: format!(
                    "`{name}/observations` holds {} but `{first}/observations` holds {}",
                    describe_keys(obs.keys.as_ref()),
                    describe_keys(self.obs_keys.as_ref())
                ),
            });
        }
        if obs.width != self.obs_dim {
            return Err(DataError::WrongShape {
                file: file.to_string(),
                key: format!("{name}/observations"),
                shape: vec![obs.values.len() / obs.width.max(1), obs.width],
                expected: format!("[T+1, {}] like `{first}/observations`", self.obs_dim),
            });
        }
        if episode.act_dim != self.act_dim {
            return Err(DataError::WrongShape {
                file: file.to_string(),
                key: format!("{name}/actions"),
                shape: vec![episode.rewards.len(), episode.act_dim],
                expected: format!("[T, {}] like `{first}/actions`", self.act_dim),
            });
        }
        Ok(())
    }
}

/// Minari: episodes concatenated in numeric order, each episode's
/// observations `[T+1, O]` split into `obs[:-1]` and `obs[1:]`.
fn read_minari(
    file: &str,
    root: &Group,
    episodes: &[(u64, String)],
) -> Result<StepDataset, DataError> {
    let h5 = Reader {
        file,
        expected: MINARI_KEYS,
    };
    let mut observations = Vec::new();
    let mut next_observations = Vec::new();
    let mut actions = Vec::new();
    let mut rewards = Vec::new();
    let mut terminals = Vec::new();
    let mut timeouts = Vec::new();
    let mut layout: Option<Layout> = None;
    let mut open_ended = 0usize;

    for (_, name) in episodes {
        let group = root.group(name).map_err(|e| format_error(file, name, e))?;
        let mut episode = h5.episode(&group, name)?;
        match &layout {
            Some(layout) => layout.check(file, name, &episode)?,
            None => {
                layout = Some(Layout {
                    episode: name,
                    obs_dim: episode.observations.width,
                    obs_keys: episode.observations.keys.clone(),
                    act_dim: episode.act_dim,
                })
            }
        }

        let steps = episode.rewards.len();
        let last = steps - 1; // steps >= 1: `episode` rejects empty episodes
        if !episode.terminations[last] && !episode.truncations[last] {
            episode.truncations[last] = true;
            open_ended += 1;
        }
        let (obs, o) = (&episode.observations.values, episode.observations.width);
        observations.extend_from_slice(&obs[..steps * o]);
        next_observations.extend_from_slice(&obs[o..]);
        actions.extend_from_slice(&episode.actions);
        rewards.extend_from_slice(&episode.rewards);
        terminals.extend_from_slice(&episode.terminations);
        timeouts.extend_from_slice(&episode.truncations);
    }

    let (Some(layout), Some((_, last_name))) = (layout, episodes.last()) else {
        return Err(DataError::Empty {
            file: file.to_string(),
        });
    };
    let (n, o, a) = (rewards.len(), layout.obs_dim, layout.act_dim);
    const KEY: &str = "<concatenated episodes>";
    let columns = StepColumns {
        observations: h5.array(KEY, vec![n, o], observations)?,
        actions: h5.array(KEY, vec![n, a], actions)?,
        rewards: h5.array(KEY, vec![n], rewards)?,
        terminals: h5.array(KEY, vec![n], terminals)?,
        timeouts: h5.array(KEY, vec![n], timeouts)?,
        next_observations: Some(h5.array(KEY, vec![n, o], next_observations)?),
    };

    let mut data = StepDataset::new(file, columns)?.with_note(format!(
        "Minari layout: {} episode groups ({} .. {last_name}) concatenated in numeric \
         order; observations[:-1] -> observations, observations[1:] -> next_observations, \
         terminations -> terminals, truncations -> timeouts",
        episodes.len(),
        layout.episode
    ));
    if layout.obs_keys.is_some() {
        data = data.with_note(format!(
            "dict observations: concatenated {} along the feature axis, in this order \
             (sorted keys, as Gymnasium's Dict space flattens)",
            describe_keys(layout.obs_keys.as_ref())
        ));
    }
    if open_ended > 0 {
        data = data.with_note(format!(
            "{open_ended} of {} episodes end with neither termination nor truncation; \
             their last step is marked as a timeout so that episodes do not merge",
            episodes.len()
        ));
    }
    Ok(data)
}

/// `a [2], b [4]` for dict keys with their widths.
fn describe_keys(keys: Option<&DictKeys>) -> String {
    match keys {
        None => "a single dataset".to_string(),
        Some(keys) => keys
            .iter()
            .map(|(key, width)| format!("{key} [{width}]"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn format_error(file: &str, key: &str, e: ::hdf5::Error) -> DataError {
    DataError::Format {
        file: file.to_string(),
        format: FORMAT,
        message: format!("`{key}`: {e}"),
    }
}

/// Reads typed columns from one file; `expected` lists the keys of its layout.
struct Reader<'a> {
    file: &'a str,
    expected: &'static str,
}

impl Reader<'_> {
    /// The dataset `name` of `group`; `key` is its full name for errors.
    fn dataset(&self, group: &Group, name: &str, key: &str) -> Result<Dataset, DataError> {
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
        dtype
            .to_descriptor()
            .map_err(|e| self.wrong_dtype(key, format!("unsupported ({e})"), expected))
    }

    fn wrong_dtype(&self, key: &str, found: String, expected: &'static str) -> DataError {
        DataError::WrongDtype {
            file: self.file.to_string(),
            key: key.to_string(),
            found,
            expected,
        }
    }

    fn array<T>(
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

    /// A float column, f32 or f64 narrowed to f32; any shape.
    fn floats(&self, dataset: &Dataset, key: &str) -> Result<ArrayD<f32>, DataError> {
        match self.dtype(dataset, key, FLOAT_DTYPES)? {
            TypeDescriptor::Float(FloatSize::U4) => dataset.read_dyn::<f32>(),
            TypeDescriptor::Float(FloatSize::U8) => {
                dataset.read_dyn::<f64>().map(|a| a.mapv(|v| v as f32))
            }
            other => return Err(self.wrong_dtype(key, other.to_string(), FLOAT_DTYPES)),
        }
        .map_err(|e| format_error(self.file, key, e))
    }

    /// A flag column: bool, or integers/floats holding exactly 0 or 1; any shape.
    fn flags(&self, dataset: &Dataset, key: &str) -> Result<ArrayD<bool>, DataError> {
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
        let flags = flags_from_numbers(self.file, key, &values)?;
        self.array(key, shape, flags)
    }

    /// Reads one Minari episode group and checks its shapes against
    /// T = rows of `actions`.
    fn episode(&self, group: &Group, name: &str) -> Result<EpisodeData, DataError> {
        let key = |member: &str| format!("{name}/{member}");

        let actions_key = key("actions");
        let actions = self.floats(&self.dataset(group, "actions", &actions_key)?, &actions_key)?;
        if actions.ndim() != 2 {
            return Err(self.wrong_shape(&actions_key, actions.shape(), "[T, A]".into()));
        }
        let (steps, act_dim) = (actions.shape()[0], actions.shape()[1]);
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
    /// recursing into subgroups, in sorted name order.
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
        names.sort();
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
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(DataError::NonFinite {
                file: self.file.to_string(),
                key: key.to_string(),
                row: index / width.max(1),
                value: values[index] as f64,
            });
        }
        Ok(values)
    }
}

/// Row-major values of `array`.
fn into_vec<T>(array: ArrayD<T>) -> Vec<T> {
    array.into_iter().collect()
}

#[cfg(test)]
mod tests;
