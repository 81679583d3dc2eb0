//! `StepDataset`: validated step-level columns, episodes concatenated
//! (DESIGN.md 1), and the episode structure derived from them.

use ndarray::ArrayD;

use super::error::DataError;

/// D4RL key names, in the order they are reported in errors.
pub const STEP_KEYS: &str =
    "D4RL names: observations, actions, rewards, terminals, timeouts, optional next_observations";

/// The step data's keys (D4RL's names), `next_observations` optional.
pub const STEP_COLUMNS: [&str; 6] = [
    "observations",
    "actions",
    "rewards",
    "terminals",
    "timeouts",
    "next_observations",
];

/// Columns as a reader (or a generator) hands them over, before validation.
/// Shapes are checked by [`StepDataset::new`]: observations `[N, O]`,
/// actions `[N, A]`, rewards/terminals/timeouts `[N]`, next_observations `[N, O]`.
#[derive(Debug, Clone)]
pub struct StepColumns {
    pub observations: ArrayD<f32>,
    pub actions: ArrayD<f32>,
    pub rewards: ArrayD<f32>,
    pub terminals: ArrayD<bool>,
    pub timeouts: ArrayD<bool>,
    pub next_observations: Option<ArrayD<f32>>,
}

/// Step data as flat row-major vectors, the way a recorder accumulates it;
/// [`StepRows::into_columns`] shapes it for [`StepDataset::new`].
#[derive(Debug, Clone, Default)]
pub struct StepRows {
    pub obs_dim: usize,
    pub act_dim: usize,
    /// `[N * O]`.
    pub observations: Vec<f32>,
    /// `[N * A]`.
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    pub terminals: Vec<bool>,
    pub timeouts: Vec<bool>,
    /// `[N * O]`, when recorded.
    pub next_observations: Option<Vec<f32>>,
}

impl StepRows {
    /// Empty rows of the given widths (with next_observations).
    pub fn new(obs_dim: usize, act_dim: usize) -> Self {
        StepRows {
            obs_dim,
            act_dim,
            next_observations: Some(Vec::new()),
            ..StepRows::default()
        }
    }

    /// The rows as columns of shape `[N, O]`, `[N, A]`, `[N]`. Panics if the
    /// vectors disagree on N (a recorder's bug, not a user's input).
    pub fn into_columns(self) -> StepColumns {
        let n = self.rewards.len();
        let matrix = |values: Vec<f32>, width: usize| {
            ndarray::Array2::from_shape_vec((n, width), values)
                .expect("rows of the recorded width")
                .into_dyn()
        };
        StepColumns {
            observations: matrix(self.observations, self.obs_dim),
            actions: matrix(self.actions, self.act_dim),
            rewards: ndarray::Array1::from_vec(self.rewards).into_dyn(),
            terminals: ndarray::Array1::from_vec(self.terminals).into_dyn(),
            timeouts: ndarray::Array1::from_vec(self.timeouts).into_dyn(),
            next_observations: self
                .next_observations
                .map(|next| matrix(next, self.obs_dim)),
        }
    }
}

/// How an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeEnd {
    /// `terminals[end]`: an absorbing state, never bootstrapped.
    Terminal,
    /// `timeouts[end]` (and not terminal): cut by a time limit; the next state
    /// is an ordinary state and is bootstrapped.
    Timeout,
    /// The data ran out without either flag; treated like a timeout.
    EndOfData,
}

/// One episode: rows `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub start: usize,
    /// Last row of the episode (inclusive).
    pub end: usize,
    pub end_kind: EpisodeEnd,
}

impl Episode {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.end - self.start + 1
    }

    /// Always false: an episode has at least one step.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Step data, one row per environment step, episodes concatenated.
/// Row-major `f32` columns; every value finite.
#[derive(Debug, Clone)]
pub struct StepDataset {
    source: String,
    obs_dim: usize,
    act_dim: usize,
    observations: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    terminals: Vec<bool>,
    timeouts: Vec<bool>,
    next_observations: Option<Vec<f32>>,
    episodes: Vec<Episode>,
    notes: Vec<String>,
}

impl StepDataset {
    /// Validates `columns` and builds the dataset. `source` names the file (or
    /// `<memory>`) in errors and in the summary.
    pub fn new(source: &str, columns: StepColumns) -> Result<Self, DataError> {
        let file = source.to_string();
        let shape_err = |key: &str, shape: &[usize], expected: String| DataError::WrongShape {
            file: file.clone(),
            key: key.to_string(),
            shape: shape.to_vec(),
            expected,
        };

        let obs_shape = columns.observations.shape();
        if obs_shape.len() != 2 {
            return Err(shape_err("observations", obs_shape, "[N, O]".into()));
        }
        let (n, obs_dim) = (obs_shape[0], obs_shape[1]);
        if n == 0 {
            return Err(DataError::Empty { file });
        }
        if obs_dim == 0 {
            return Err(shape_err(
                "observations",
                obs_shape,
                "[N, O] with O >= 1".into(),
            ));
        }

        let check_rows = |key: &str, shape: &[usize], rank: usize, expected: &str| {
            if shape.len() != rank {
                return Err(shape_err(key, shape, expected.to_string()));
            }
            if shape[0] != n {
                return Err(DataError::LengthMismatch {
                    file: file.clone(),
                    key: key.to_string(),
                    found: shape[0],
                    expected: n,
                });
            }
            Ok(())
        };
        let act_shape = columns.actions.shape();
        check_rows("actions", act_shape, 2, "[N, A]")?;
        let act_dim = act_shape[1];
        if act_dim == 0 {
            return Err(shape_err("actions", act_shape, "[N, A] with A >= 1".into()));
        }
        // One value per row: [N], or [N, 1] as some D4RL files store them
        // (D4RL's own loader squeezes those).
        let mut squeezed = Vec::new();
        for (key, shape) in [
            ("rewards", columns.rewards.shape()),
            ("terminals", columns.terminals.shape()),
            ("timeouts", columns.timeouts.shape()),
        ] {
            match shape {
                [_, 1] => {
                    check_rows(key, &shape[..1], 1, "[N]")?;
                    squeezed.push(format!("`{key}`"));
                }
                _ => check_rows(key, shape, 1, "[N] (or [N, 1])")?,
            }
        }
        if let Some(next) = &columns.next_observations {
            check_rows("next_observations", next.shape(), 2, "[N, O]")?;
            if next.shape()[1] != obs_dim {
                return Err(shape_err(
                    "next_observations",
                    next.shape(),
                    format!("[N, {obs_dim}] like observations"),
                ));
            }
        }

        let observations = finite_rows(&file, "observations", columns.observations)?;
        let actions = finite_rows(&file, "actions", columns.actions)?;
        let rewards = finite_rows(&file, "rewards", columns.rewards)?;
        let next_observations = columns
            .next_observations
            .map(|next| finite_rows(&file, "next_observations", next))
            .transpose()?;
        let terminals = into_vec(columns.terminals);
        let timeouts = into_vec(columns.timeouts);
        let episodes = find_episodes(&terminals, &timeouts);
        let mut notes: Vec<String> = both_flags_note(&terminals, &timeouts).into_iter().collect();
        if let Some(next) = &next_observations {
            notes.extend(broken_chain_note(&observations, next, obs_dim, &episodes));
        }
        if !squeezed.is_empty() {
            notes.push(format!(
                "{} of shape [N, 1] read as [N]",
                squeezed.join(", ")
            ));
        }

        Ok(StepDataset {
            source: file,
            obs_dim,
            act_dim,
            observations,
            actions,
            rewards,
            terminals,
            timeouts,
            next_observations,
            episodes,
            notes,
        })
    }

    /// Names in a note the `unread` members of the file (`what`: "keys",
    /// "top-level members"), so that a misspelt `next_obs` does not pass
    /// unnoticed; `skipped` adds what a format's readers skip by design.
    pub(crate) fn with_unread(self, what: &str, unread: &[&str], skipped: &str) -> Self {
        if unread.is_empty() {
            return self;
        }
        self.with_note(format!(
            "{what} not read: {} (the step data is {}{skipped})",
            unread.join(", "),
            STEP_COLUMNS.join(", ")
        ))
    }

    /// Adds a remark shown in the summary (e.g. how a reader mapped a format).
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// File (or `<memory>`) the data came from.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// Number of rows N.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }
    /// Always false: validation rejects empty data.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }
    /// Observation width O.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    /// Action width A.
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }
    /// `[N, O]`, row-major.
    pub fn observations(&self) -> &[f32] {
        &self.observations
    }
    /// `[N, A]`, row-major.
    pub fn actions(&self) -> &[f32] {
        &self.actions
    }
    /// `[N]`.
    pub fn rewards(&self) -> &[f32] {
        &self.rewards
    }
    /// `[N]`.
    pub fn terminals(&self) -> &[bool] {
        &self.terminals
    }
    /// `[N]`.
    pub fn timeouts(&self) -> &[bool] {
        &self.timeouts
    }
    /// `[N, O]` when the file has it.
    pub fn next_observations(&self) -> Option<&[f32]> {
        self.next_observations.as_deref()
    }
    /// Row `t` of observations: `[O]`.
    pub fn observation(&self, t: usize) -> &[f32] {
        &self.observations[t * self.obs_dim..(t + 1) * self.obs_dim]
    }
    /// Row `t` of actions: `[A]`.
    pub fn action(&self, t: usize) -> &[f32] {
        &self.actions[t * self.act_dim..(t + 1) * self.act_dim]
    }
    /// Row `t` of next_observations, when the file has them: `[O]`.
    pub fn next_observation(&self, t: usize) -> Option<&[f32]> {
        let o = self.obs_dim;
        self.next_observations
            .as_deref()
            .map(|next| &next[t * o..(t + 1) * o])
    }
    /// Episodes in row order; they cover every row exactly once.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }
    /// Remarks made while loading.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// A 64-bit FNV-1a hash of the widths and every value (not the source
    /// name or the notes), as 16 hex digits: the same data gives the same
    /// fingerprint wherever its file lies, so a resumed run can check that
    /// it goes on with the data it started on.
    pub fn fingerprint(&self) -> String {
        const PRIME: u64 = 0x0000_0100_0000_01B3;
        let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                hash = (hash ^ b as u64).wrapping_mul(PRIME);
            }
        };
        eat(&(self.obs_dim as u64).to_le_bytes());
        eat(&(self.act_dim as u64).to_le_bytes());
        let floats = [&self.observations, &self.actions, &self.rewards];
        for column in floats.into_iter().chain(self.next_observations.as_ref()) {
            eat(&(column.len() as u64).to_le_bytes());
            for v in column {
                eat(&v.to_le_bytes());
            }
        }
        for flags in [&self.terminals, &self.timeouts] {
            for &f in flags {
                eat(&[f as u8]);
            }
        }
        format!("{hash:016x}")
    }
}

/// A note when some rows carry both flags: they end terminal episodes (an
/// absorbing state is absorbing whatever the clock says, as in Gymnasium,
/// where `terminated` wins over `truncated`), said so rather than silently.
fn both_flags_note(terminals: &[bool], timeouts: &[bool]) -> Option<String> {
    let mut rows = terminals
        .iter()
        .zip(timeouts)
        .enumerate()
        .filter(|&(_, (&d, &c))| d && c)
        .map(|(t, _)| t);
    let first = rows.next()?;
    let count = 1 + rows.count();
    let (s, verb) = if count == 1 { ("", "is") } else { ("s", "are") };
    Some(format!(
        "{count} row{s} {verb} both terminal and timeout (first: row {first}); \
         terminal wins: those episodes end in an absorbing state, not bootstrapped"
    ))
}

/// A note when, inside an episode, a row's next observation is not the next
/// row's observation: the sign of a missing terminal or timeout flag (e.g.
/// episodes concatenated without their ends marked), across which chunks
/// would run as if it were one episode. Values match within a relative
/// 1e-5, so that a file that stores them in another precision passes.
fn broken_chain_note(
    observations: &[f32],
    next_observations: &[f32],
    obs_dim: usize,
    episodes: &[Episode],
) -> Option<String> {
    let close = |a: &f32, b: &f32| (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()));
    let mut rows = episodes.iter().flat_map(|e| e.start..e.end).filter(|&t| {
        let next = &next_observations[t * obs_dim..(t + 1) * obs_dim];
        let following = &observations[(t + 1) * obs_dim..(t + 2) * obs_dim];
        !next.iter().zip(following).all(|(a, b)| close(a, b))
    });
    let first = rows.next()?;
    let count = 1 + rows.count();
    let (s, verb) = if count == 1 {
        ("", "has")
    } else {
        ("s", "have")
    };
    Some(format!(
        "{count} row{s} inside episodes {verb} a next observation unlike the next row's \
         observation (first: row {first}): a missing terminal or timeout flag? Chunks run \
         across such rows as if they were one episode"
    ))
}

/// Splits rows into episodes: an episode ends at the first row with
/// `terminals || timeouts`, or at the last row. Terminal wins over timeout.
pub fn find_episodes(terminals: &[bool], timeouts: &[bool]) -> Vec<Episode> {
    let n = terminals.len();
    let mut episodes = Vec::new();
    let mut start = 0;
    for t in 0..n {
        let end_kind = if terminals[t] {
            EpisodeEnd::Terminal
        } else if timeouts[t] {
            EpisodeEnd::Timeout
        } else if t + 1 == n {
            EpisodeEnd::EndOfData
        } else {
            continue;
        };
        episodes.push(Episode {
            start,
            end: t,
            end_kind,
        });
        start = t + 1;
    }
    episodes
}

/// Row-major values of `array`, without a copy where it is already laid out
/// so.
pub(crate) fn into_vec<T: Clone>(array: ArrayD<T>) -> Vec<T> {
    let array = if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned()
    };
    let (values, offset) = array.into_raw_vec_and_offset();
    debug_assert!(matches!(offset, None | Some(0)));
    values
}

/// Flattens a float column and rejects NaN/inf, naming the first bad row.
fn finite_rows(file: &str, key: &str, array: ArrayD<f32>) -> Result<Vec<f32>, DataError> {
    let width: usize = array.shape()[1..].iter().product();
    check_finite(file, key, width, into_vec(array))
}

/// Rejects NaN/inf in row-major `values` of rows `width` wide, naming the
/// file, the key and the first bad row.
pub(crate) fn check_finite(
    file: &str,
    key: &str,
    width: usize,
    values: Vec<f32>,
) -> Result<Vec<f32>, DataError> {
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(DataError::NonFinite {
            file: file.to_string(),
            key: key.to_string(),
            row: index / width.max(1),
            value: values[index] as f64,
        });
    }
    Ok(values)
}

/// Turns numeric flags (any dtype a file may use for booleans), read as a
/// column of `shape`, into `bool`, rejecting anything that is not exactly 0
/// or 1 and naming its row (the first axis, whatever the shape: one of the
/// wrong rank is refused for its shape afterwards).
pub(crate) fn flags_from_numbers<T: Copy + Into<f64>>(
    file: &str,
    key: &str,
    shape: &[usize],
    values: &[T],
) -> Result<Vec<bool>, DataError> {
    let per_row = shape.iter().skip(1).product::<usize>().max(1);
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let v: f64 = v.into();
            if v == 0.0 {
                Ok(false)
            } else if v == 1.0 {
                Ok(true)
            } else {
                Err(DataError::BadFlag {
                    file: file.to_string(),
                    key: key.to_string(),
                    row: i / per_row,
                    value: v,
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
