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
//!   terminals = terminations, timeouts = truncations. Any other top-level
//!   member (an `episode_x` group, an `episode_3` dataset, ...) is an error.
//!
//! A file with D4RL keys and `episode_*` groups both is an error: reading
//! either layout would silently drop the other.
//!
//! Floats may be f32 or f64 (narrowed to f32); flags bool (h5py's FALSE/TRUE
//! enum) or integers, float32 or float64 holding exactly 0 or 1; an episode
//! group flagged as ended before its last step is refused.

use std::path::Path;

use ::hdf5::{Group, LocationType};

use super::dataset::{STEP_COLUMNS, STEP_KEYS, StepColumns, StepDataset};
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
const FLAG_DTYPES: &str = "bool, an integer type, float32 or float64 holding 0/1";

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

    let mut members = Vec::with_capacity(names.len());
    for name in &names {
        let kind = root
            .loc_type_by_name(name)
            .map_err(|e| format_error(&file, name, e))?;
        members.push((name.clone(), kind));
    }

    let d4rl_keys: Vec<&str> = D4RL_REQUIRED
        .iter()
        .copied()
        .filter(|key| names.iter().any(|n| n == key))
        .collect();
    if !d4rl_keys.is_empty() {
        let episode_like: Vec<&str> = members
            .iter()
            .filter(|(name, kind)| *kind == LocationType::Group && name.starts_with("episode_"))
            .map(|(name, _)| name.as_str())
            .collect();
        if !episode_like.is_empty() {
            return Err(DataError::Format {
                file,
                format: FORMAT,
                message: format!(
                    "holds both the D4RL layout (top-level datasets {}) and the Minari \
                     layout (groups {}); a file must use one layout, and reading either \
                     part alone would drop the other",
                    d4rl_keys.join(", "),
                    first_names(&episode_like)
                ),
            });
        }
        return read_d4rl(&file, root, &names);
    }
    let episodes = episode_groups(&file, &members)?;
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

/// D4RL: the top-level datasets are the step columns; of the other
/// top-level members (`names` lists them all), `infos` and `metadata` are
/// D4RL's own and skipped quietly, anything else is named in a note, so
/// that a misspelt `next_obs` does not pass unnoticed.
fn read_d4rl(file: &str, root: &Group, names: &[String]) -> Result<StepDataset, DataError> {
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
    let unread: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| !STEP_COLUMNS.contains(name) && !["infos", "metadata"].contains(name))
        .collect();
    Ok(StepDataset::new(file, columns)?.with_unread(
        "top-level members",
        &unread,
        "; infos/ and metadata/ are skipped",
    ))
}

/// `a, b, c, ... (12 in all)`: the first few of `names`, in order.
fn first_names(names: &[&str]) -> String {
    const SHOWN: usize = 3;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(", ... ({} in all)", names.len()));
    }
    text
}

/// The integer of a group name `episode_<integer>`.
fn episode_number(name: &str) -> Option<u64> {
    name.strip_prefix("episode_")
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
}

/// Top-level groups named `episode_<integer>`, sorted by the integer; none
/// when there are none (the file has neither layout). Once there is one,
/// every other top-level member is an error, never skipped: a Minari file
/// holds only its episode groups (its metadata are attributes), so a stray
/// `episode_x` group or `episode_3` dataset is a broken or foreign file.
fn episode_groups(
    file: &str,
    members: &[(String, LocationType)],
) -> Result<Vec<(u64, String)>, DataError> {
    let mut episodes = Vec::new();
    let mut others = Vec::new();
    for (name, kind) in members {
        match episode_number(name) {
            Some(index) if *kind == LocationType::Group => episodes.push((index, name.clone())),
            _ => others.push((name, kind)),
        }
    }
    if episodes.is_empty() {
        return Ok(episodes);
    }
    let error = |message: String| DataError::Format {
        file: file.to_string(),
        format: FORMAT,
        message,
    };
    if let Some((name, kind)) = others.first() {
        let what = match kind {
            LocationType::Group => "group",
            LocationType::Dataset => "dataset",
            _ => "object",
        };
        return Err(error(format!(
            "top-level {what} `{name}` is not an episode group `episode_<number>`; the file \
             has {} Minari episode groups, and a Minari file holds nothing else",
            episodes.len()
        )));
    }
    episodes.sort();
    if let Some(pair) = episodes.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(error(format!(
            "groups `{}` and `{}` are both episode {}",
            pair[0].1, pair[1].1, pair[0].0
        )));
    }
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
             (sorted keys, as Gymnasium's Dict space flattens; a Tuple's `_index_<n>` \
             members in the order of n)",
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

mod reader;
#[cfg(test)]
mod tests;

use reader::{Reader, format_error};
