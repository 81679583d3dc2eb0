//! `TrainConfig`: one TOML file describes a run. Every field has a default;
//! `--set key=value` (dotted keys, TOML values) overrides any of them; unknown
//! keys and bad values are errors that name the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::{AgentConfig, Algorithm};
use crate::chunk::{ChunkError, ChunkSpec};
use crate::env::Level;

/// Largest `seed`: TOML integers are i64, and the config must hold it.
pub const MAX_SEED: u64 = i64::MAX as u64;
/// Largest `batch_size` (one batch's tensors are allocated up front).
pub const MAX_BATCH_SIZE: usize = 65_536;
/// Most memory one batch of chunk transitions may take on the host
/// ([`ChunkDims::bytes`](crate::chunk::ChunkDims::bytes)): 4 GiB, far above
/// any useful batch, and checked once the data's widths are known.
pub const MAX_BATCH_BYTES: u128 = 4 << 30;
/// Largest `threads` (libtorch starts them all).
pub const MAX_THREADS: usize = 1024;
/// Most episodes anything generates, evaluates or measures at once
/// (`dataset_episodes`, and `--episodes` of generate, eval and reference):
/// far below what would exhaust memory (100000 pendulum episodes are 20 M
/// rows).
pub const MAX_EPISODES: usize = 100_000;

/// `cpu` -> `Some(None)`, `cuda` / `cuda:N` -> `Some(Some(N))`, anything
/// else `None` (whether the device exists is checked when a run starts).
pub fn device_index(name: &str) -> Option<Option<usize>> {
    match name {
        "cpu" => Some(None),
        "cuda" => Some(Some(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
            .map(Some),
    }
}

/// `env` value of a run without an environment: it trains on a given
/// dataset of any widths and is not evaluated; its normaliser takes the
/// action range from the data.
pub const NO_ENV: &str = "none";

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Built-in environment to evaluate in (and to generate data from), or
    /// [`NO_ENV`] to train on a given dataset without evaluation.
    pub env: String,
    /// Step data (.npz/.h5); empty: `data/<env>-<level>.npz`, generated if
    /// missing. A relative path read from a config file is relative to that
    /// file's folder ([`TrainConfig::from_file`]).
    pub dataset: String,
    /// Behaviour level of generated data.
    pub level: Level,
    /// Episodes of generated data.
    pub dataset_episodes: usize,
    /// `dql` (Diffusion-QL) or `cpql`.
    pub algorithm: Algorithm,
    /// Seed of the run: initial weights, batches, noise, evaluation episodes
    /// (generated default data always uses seed 0).
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Gradient updates.
    pub steps: u64,
    pub batch_size: usize,
    /// H, actions per chunk.
    pub horizon: usize,
    /// To, observations per history.
    pub obs_horizon: usize,
    pub gamma: f64,
    /// Metrics are logged every this many updates.
    pub log_every: u64,
    /// Evaluation every this many updates (and at the end); 0: only at the end.
    pub eval_every: u64,
    pub eval_episodes: usize,
    /// Steps of each chunk executed before re-planning; 0: all H.
    pub execute: usize,
    /// Evaluate with temporal ensembling of weight decay m instead
    /// (`eval::TemporalEnsemble`: a chunk asked for at every step, the
    /// proposals for a step averaged); unset: whole chunks as `execute`
    /// says. With it, `execute` must be 0 or 1.
    pub ensemble: Option<f64>,
    /// A checkpoint every this many updates (and at the end).
    pub checkpoint_every: u64,
    /// CPU threads for the update (libtorch's intra-op threads); 0: all cores.
    pub threads: usize,
    /// Slices each update's batch is split into, each on its own thread
    /// with threads / workers intra-op threads (1: the whole batch on one
    /// thread); 0: one per thread on the CPU with at least 64 rows each, 1 on
    /// a GPU.
    pub workers: usize,
    pub agent: AgentConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            env: "pendulum".into(),
            dataset: String::new(),
            level: Level::Medium,
            dataset_episodes: 100,
            algorithm: Algorithm::Dql,
            seed: 0,
            device: "cpu".into(),
            steps: 5000,
            batch_size: 256,
            horizon: 4,
            obs_horizon: 1,
            gamma: 0.99,
            log_every: 50,
            eval_every: 2500,
            eval_episodes: 10,
            execute: 0,
            ensemble: None,
            checkpoint_every: 1000,
            threads: 0,
            workers: 0,
            agent: AgentConfig::default(),
        }
    }
}

/// A config that could not be read or is invalid.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("--set {assignment}: {message}")]
    Set { assignment: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// `path` as the text `config.toml` records (TOML holds UTF-8 only): a
/// path that is not UTF-8 is refused rather than recorded mangled.
pub fn text_path(path: PathBuf) -> Result<String, ConfigError> {
    path.into_os_string().into_string().map_err(|raw| {
        ConfigError::Invalid(format!(
            "dataset {}: the path is not valid UTF-8, and config.toml records it as text; use \
             a path (and a working folder) whose names are UTF-8",
            Path::new(&raw).display()
        ))
    })
}

impl TrainConfig {
    /// Reads a TOML config (missing fields take their defaults). A relative
    /// `dataset` is taken relative to the file's folder, as paths in Cargo
    /// manifests are: a config names its data the same way from any working
    /// directory (and a run folder's `config.toml` edited to a relative path
    /// points inside or beside the run).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let mut cfg =
            Self::from_toml(&text).map_err(|message| ConfigError::File { file, message })?;
        let relative = !cfg.dataset.is_empty() && Path::new(&cfg.dataset).is_relative();
        if let Some(folder) = path.parent().filter(|_| relative) {
            cfg.dataset = text_path(folder.join(&cfg.dataset))?;
        }
        Ok(cfg)
    }

    fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| toml_error(text, &e))
    }

    /// The config as TOML (what is saved next to every run).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serialises")
    }

    /// The chunk parameters (validated).
    pub fn chunk_spec(&self) -> Result<ChunkSpec, ChunkError> {
        ChunkSpec::new(self.horizon, self.gamma, self.obs_horizon)
    }

    /// Checks everything that does not need the data or the environment.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !self.evaluates() {
            if self.dataset.is_empty() {
                return invalid(format!(
                    "env = {NO_ENV} trains on a given dataset (--dataset FILE): without an \
                     environment there is nothing to generate data from"
                ));
            }
        } else if let Err(e) = crate::env::make(&self.env) {
            return invalid(format!(
                "{e}; or {NO_ENV}, to train on a given dataset without evaluation"
            ));
        }
        if let Err(e) = self.chunk_spec() {
            let key = match e {
                ChunkError::Horizon(_) => "horizon",
                ChunkError::Gamma(_) => "gamma",
                ChunkError::ObsHorizon(_) => "obs_horizon",
                ChunkError::TooLong { name, .. } if name.starts_with("obs") => "obs_horizon",
                _ => "horizon",
            };
            return invalid(format!("{key}: {e}"));
        }
        self.agent.validate().map_err(|e| match e {
            crate::agent::AgentError::Config(m) => ConfigError::Invalid(format!("agent.{m}")),
            other => ConfigError::Invalid(other.to_string()),
        })?;
        if self.seed > MAX_SEED {
            return invalid(format!(
                "seed must be at most {MAX_SEED} (TOML's largest integer), got {}",
                self.seed
            ));
        }
        if device_index(&self.device).is_none() {
            return invalid(format!(
                "device: unknown device `{}` (use cpu, cuda or cuda:N)",
                self.device
            ));
        }
        if self.steps == 0 {
            return invalid("steps must be at least 1".into());
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return invalid(format!(
                "batch_size must lie in 1..={MAX_BATCH_SIZE}, got {}",
                self.batch_size
            ));
        }
        if self.threads > MAX_THREADS {
            return invalid(format!(
                "threads must lie in 0..={MAX_THREADS} (0: all cores), got {}",
                self.threads
            ));
        }
        if self.dataset.is_empty() && self.dataset_episodes > MAX_EPISODES {
            return invalid(format!(
                "dataset_episodes must lie in 1..={MAX_EPISODES}, got {}",
                self.dataset_episodes
            ));
        }
        if self.workers > self.batch_size.min(MAX_THREADS) {
            return invalid(format!(
                "workers ({}) must not exceed batch_size ({}) or {MAX_THREADS}: each worker \
                 updates on its own slice of the batch (workers = 0 chooses automatically)",
                self.workers, self.batch_size
            ));
        }
        if let Some(problem) = self.idle_updates() {
            return invalid(problem);
        }
        if self.log_every == 0 {
            return invalid("log_every must be at least 1".into());
        }
        if self.checkpoint_every == 0 {
            return invalid("checkpoint_every must be at least 1".into());
        }
        if !(1..=MAX_EPISODES).contains(&self.eval_episodes) {
            return invalid(format!(
                "eval_episodes must lie in 1..={MAX_EPISODES}, got {}",
                self.eval_episodes
            ));
        }
        if self.execute > self.horizon {
            return invalid(format!(
                "execute must lie in 0..={} (0 = H), got {}",
                self.horizon, self.execute
            ));
        }
        if let Some(m) = self.ensemble {
            if !m.is_finite() {
                return invalid(format!("ensemble must be a finite number, got {m}"));
            }
            if self.execute > 1 {
                return invalid(format!(
                    "ensemble asks for a chunk at every step: execute must be 0 or 1 with it, \
                     got {}",
                    self.execute
                ));
            }
        }
        if self.dataset.is_empty() && self.dataset_episodes == 0 {
            return invalid("dataset_episodes must be at least 1 to generate data".into());
        }
        // Last: the checks above name a key's own limit where it has one.
        self.check_toml_integers()
    }

    /// Why some updates would not train: with `agent.lr_min = 0` the learning
    /// rates are 0 after the first `agent.lr_decay_steps` updates, so `steps`
    /// beyond it would not train the policy or the critics, only move their
    /// EMA and target copies towards them (0, the default, decays over `steps`).
    pub fn idle_updates(&self) -> Option<String> {
        let (decay, lr_min) = (self.agent.lr_decay_steps, self.agent.lr_min);
        (lr_min == 0.0 && decay > 0 && self.steps > decay).then(|| {
            format!(
                "steps = {} runs past agent.lr_decay_steps = {decay} with agent.lr_min = 0: the \
                 learning rates are 0 after the first {decay} updates, and later updates \
                 would not train the policy or the critics; let the decay cover every step \
                 (agent.lr_decay_steps = 0 means steps) or set agent.lr_min > 0",
                self.steps
            )
        })
    }

    /// Whether the run has an environment to evaluate in (`env` is not
    /// [`NO_ENV`]).
    pub fn evaluates(&self) -> bool {
        self.env != NO_ENV
    }

    /// The config with `dataset` (when given) as an absolute path, a
    /// relative one taken from the working directory: what a run saves, and
    /// what `--print-config` shows, so that the config reads the same data
    /// from any folder it is copied to.
    pub fn with_absolute_dataset(mut self) -> Result<Self, ConfigError> {
        if !self.dataset.is_empty() {
            let path = std::path::absolute(&self.dataset).map_err(|e| {
                ConfigError::Invalid(format!(
                    "dataset {}: cannot resolve the path: {e}",
                    self.dataset
                ))
            })?;
            self.dataset = text_path(path)?;
        }
        Ok(self)
    }

    /// A note naming the evaluation settings set away from their defaults
    /// in a run that does not evaluate (`env = none`); `None` otherwise.
    pub fn unused_eval_settings(&self) -> Option<String> {
        if self.evaluates() {
            return None;
        }
        let defaults = TrainConfig::default();
        let set = keys_set([
            ("eval_every", self.eval_every != defaults.eval_every),
            (
                "eval_episodes",
                self.eval_episodes != defaults.eval_episodes,
            ),
            ("execute", self.execute != defaults.execute),
            ("ensemble", self.ensemble.is_some()),
        ])?;
        Some(format!(
            "note: {set} set, but a run with env = {NO_ENV} does not evaluate (evaluate it later \
             with `chunkql eval DIR --env NAME --episodes N --execute K`)"
        ))
    }

    /// A note naming `level` and `dataset_episodes` when they are set away
    /// from their defaults but the run reads a given `dataset` that is not
    /// the file they would generate; `None` otherwise.
    pub fn unused_data_settings(&self) -> Option<String> {
        if self.dataset.is_empty() || self.regenerate_hint().is_some() {
            return None;
        }
        let defaults = TrainConfig::default();
        let set = keys_set([
            ("level", self.level != defaults.level),
            (
                "dataset_episodes",
                self.dataset_episodes != defaults.dataset_episodes,
            ),
        ])?;
        Some(format!(
            "note: {set} set, but they describe generated data and this run reads {}",
            self.dataset
        ))
    }

    /// How to make `dataset` again when it is the file the default data is
    /// generated as (its name is `<env>-<level>[-<N>ep].npz`): a sentence
    /// to append to a "no such file" error; `None` for other data.
    pub fn regenerate_hint(&self) -> Option<String> {
        let default = TrainConfig {
            dataset: String::new(),
            ..self.clone()
        }
        .dataset_path();
        let path = self.dataset_path();
        (self.evaluates() && path.file_name() == default.file_name()).then(|| {
            format!(
                "; it is the run's generated default data, which `chunkql generate {} --level {} \
                 --episodes {} --out {}` writes again",
                self.env,
                self.level,
                self.dataset_episodes,
                path.display()
            )
        })
    }

    /// The step data this run trains on: `dataset`, or the generated
    /// default `data/<env>-<level>.npz` (`data/<env>-<level>-<N>ep.npz` for
    /// another size than the default 100 episodes).
    pub fn dataset_path(&self) -> PathBuf {
        if self.dataset.is_empty() {
            let size = if self.dataset_episodes == TrainConfig::default().dataset_episodes {
                String::new()
            } else {
                format!("-{}ep", self.dataset_episodes)
            };
            PathBuf::from(format!("data/{}-{}{size}.npz", self.env, self.level))
        } else {
            PathBuf::from(&self.dataset)
        }
    }
}

/// A TOML error as one line that says where: `line L, column C, key
/// `a.b`: message` (the key assigned on that line, under the table header
/// above it, or the header itself; left out where the line shows none, as
/// inside a multi-line array).
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let start = match error.span() {
        Some(span) if text.is_char_boundary(span.start) => span.start,
        _ => return plain_types(error.message()),
    };
    let before = &text[..start];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let key = key_on_line(text, line).map_or(String::new(), |key| format!(", key `{key}`"));
    format!(
        "line {}, column {column}{key}: {}",
        line + 1,
        plain_types(error.message())
    )
}

/// The dotted key line `index` of a TOML text assigns or opens as a table.
fn key_on_line(text: &str, index: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let header = |line: &str| {
        let line = line.trim();
        line.starts_with('[').then(|| {
            let name = line.trim_start_matches('[');
            name.split(']').next().unwrap_or(name).trim().to_string()
        })
    };
    let line = lines.get(index)?;
    if let Some(table) = header(line) {
        return Some(table);
    }
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    match lines[..index].iter().rev().find_map(|l| header(l)) {
        Some(table) if !table.is_empty() => Some(format!("{table}.{key}")),
        _ => Some(key.to_string()),
    }
}

/// The keys whose flag is true, comma-separated; `None` when none is.
fn keys_set<const N: usize>(keys: [(&str, bool); N]) -> Option<String> {
    let set: Vec<&str> = keys
        .into_iter()
        .filter_map(|(key, differs)| differs.then_some(key))
        .collect();
    (!set.is_empty()).then(|| set.join(", "))
}

/// serde's Rust type names in an error message, said in words.
fn plain_types(message: &str) -> String {
    let words_for = [
        ("expected u64", "expected a whole number >= 0"),
        ("expected usize", "expected a whole number >= 0"),
        ("expected u32", "expected a whole number >= 0"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected a list such as [256, 256]"),
    ];
    words_for
        .iter()
        .find_map(|(rust, words)| Some(format!("{}{words}", message.strip_suffix(rust)?)))
        .unwrap_or_else(|| message.to_string())
}

mod overrides;

#[cfg(test)]
mod tests;
