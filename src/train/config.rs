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
/// Largest `threads` (libtorch starts them all).
pub const MAX_THREADS: usize = 1024;
/// Largest `dataset_episodes` of generated data.
pub const MAX_EPISODES: usize = 100_000;

/// `cpu`, `cuda` or `cuda:N` (whether the device exists is checked when a
/// run starts).
fn is_device_name(name: &str) -> bool {
    name == "cpu"
        || name == "cuda"
        || name
            .strip_prefix("cuda:")
            .is_some_and(|i| i.parse::<usize>().is_ok())
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
    /// missing.
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

impl TrainConfig {
    /// Reads a TOML config (missing fields take their defaults).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            file: file.clone(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::File { file, message })
    }

    fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| toml_error(text, &e))
    }

    /// Applies `key=value` overrides (dotted keys such as `agent.eta=2.5`;
    /// values in TOML syntax, bare words taken as strings).
    pub fn with_overrides(&self, assignments: &[String]) -> Result<Self, ConfigError> {
        let mut table =
            toml::Table::try_from(self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for assignment in assignments {
            let set_error = |message: String| ConfigError::Set {
                assignment: assignment.clone(),
                message,
            };
            let (key, raw) = assignment
                .split_once('=')
                .ok_or_else(|| set_error("expected key=value".into()))?;
            let value = parse_value(raw.trim());
            let path: Vec<&str> = key.trim().split('.').collect();
            let (last, parents) = path.split_last().expect("split yields at least one part");
            let mut node = &mut table;
            for part in parents {
                node = node
                    .get_mut(*part)
                    .and_then(|v| v.as_table_mut())
                    .ok_or_else(|| set_error(format!("unknown key `{key}`")))?;
            }
            if !node.contains_key(*last) {
                return Err(set_error(format!("unknown key `{key}`")));
            }
            node.insert(last.to_string(), value);
            let check: Result<TrainConfig, _> = toml::Value::Table(table.clone()).try_into();
            check.map_err(|e| set_error(e.message().to_string()))?;
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))
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
        if !is_device_name(&self.device) {
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
        if self.workers > self.batch_size {
            return invalid(format!(
                "workers ({}) must not exceed batch_size ({}): each worker updates on its own \
                 slice of the batch (workers = 0 chooses automatically)",
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
        if self.eval_episodes == 0 {
            return invalid("eval_episodes must be at least 1".into());
        }
        if self.execute > self.horizon {
            return invalid(format!(
                "execute must lie in 0..={} (0 = H), got {}",
                self.horizon, self.execute
            ));
        }
        if self.dataset.is_empty() && self.dataset_episodes == 0 {
            return invalid("dataset_episodes must be at least 1 to generate data".into());
        }
        Ok(())
    }

    /// Why some updates would not train: with `agent.lr_min = 0` the learning
    /// rates are 0 from `agent.lr_decay_steps` on, so `steps` beyond it
    /// change no weight (0, the default, decays over `steps`).
    pub fn idle_updates(&self) -> Option<String> {
        let (decay, lr_min) = (self.agent.lr_decay_steps, self.agent.lr_min);
        (lr_min == 0.0 && decay > 0 && self.steps > decay).then(|| {
            format!(
                "steps = {} runs past agent.lr_decay_steps = {decay} with agent.lr_min = 0: the \
                 learning rates are 0 from update {decay} on and later updates change no \
                 weight; let the decay cover every step (agent.lr_decay_steps = 0 means \
                 steps) or set agent.lr_min > 0",
                self.steps
            )
        })
    }

    /// Whether the run has an environment to evaluate in (`env` is not
    /// [`NO_ENV`]).
    pub fn evaluates(&self) -> bool {
        self.env != NO_ENV
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
        _ => return error.message().to_string(),
    };
    let before = &text[..start];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let key = key_on_line(text, line).map_or(String::new(), |key| format!(", key `{key}`"));
    format!(
        "line {}, column {column}{key}: {}",
        line + 1,
        error.message()
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

/// A `--set` value: TOML if it parses as one, else a plain string.
fn parse_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let cfg = TrainConfig::default();
        assert_eq!(TrainConfig::from_toml(&cfg.to_toml()).unwrap(), cfg);
        assert_eq!(TrainConfig::from_toml("").unwrap(), cfg);
    }

    #[test]
    fn a_run_without_an_environment_needs_a_dataset() {
        let none = |dataset: &str| TrainConfig {
            env: NO_ENV.into(),
            dataset: dataset.into(),
            ..TrainConfig::default()
        };
        assert!(!none("").evaluates() && TrainConfig::default().evaluates());
        let err = none("").validate().unwrap_err().to_string();
        assert!(
            err.contains("env = none trains on a given dataset"),
            "{err}"
        );
        none("hopper-medium-v2.hdf5").validate().unwrap();
        let mars = TrainConfig {
            env: "mars".into(),
            ..TrainConfig::default()
        };
        let err = mars.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid config: unknown environment `mars`")
                && err.ends_with("; or none, to train on a given dataset without evaluation"),
            "{err}"
        );
    }

    #[test]
    fn overrides_set_nested_values_and_parse_types() {
        let cfg = TrainConfig::default()
            .with_overrides(&[
                "agent.eta=2.5".into(),
                "horizon=8".into(),
                "algorithm=cpql".into(),
                "agent.critic.hidden=[64, 64]".into(),
                "agent.target=one_step".into(),
            ])
            .unwrap();
        assert_eq!(cfg.agent.eta, 2.5);
        assert_eq!(cfg.horizon, 8);
        assert_eq!(cfg.algorithm, Algorithm::Cpql);
        assert_eq!(cfg.agent.critic.hidden, vec![64, 64]);
        assert_eq!(cfg.agent.target, crate::agent::TargetKind::OneStep);
    }

    #[test]
    fn a_policy_section_the_agent_does_not_read_is_named() {
        let with = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            let cfg = TrainConfig::default().with_overrides(&sets).unwrap();
            cfg.agent.ignored_section(cfg.algorithm)
        };
        assert_eq!(with(&[]), None);
        assert_eq!(with(&["algorithm=cpql"]), None);
        assert_eq!(
            with(&["algorithm=cpql", "agent.diffusion.net.net=unet"]),
            Some("diffusion")
        );
        assert_eq!(
            with(&["algorithm=cpql", "agent.consistency.net.net=unet"]),
            None
        );
        assert_eq!(with(&["agent.diffusion.steps=10"]), None);
        assert_eq!(
            with(&["agent.consistency.loss=consistency"]),
            Some("consistency")
        );
        // One config for both agents sets both sections: no note.
        let both = [
            "agent.diffusion.net.hidden=[32]",
            "agent.consistency.net.hidden=[32]",
        ];
        assert_eq!(with(&both), None);
        assert_eq!(with(&[&["algorithm=cpql"], &both[..]].concat()), None);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = TrainConfig::default()
            .with_overrides(&["agent.etta=1".into()])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--set agent.etta=1: unknown key `agent.etta`"
        );
        let err = TrainConfig::default()
            .with_overrides(&["horizon=many".into()])
            .unwrap_err();
        assert!(err.to_string().starts_with("--set horizon=many: "), "{err}");
        let err = TrainConfig::default()
            .with_overrides(&["algorithm=sac".into()])
            .unwrap_err();
        assert!(err.to_string().contains("unknown variant `sac`"), "{err}");
        let err = TrainConfig::from_toml("stepz = 3").unwrap_err();
        assert!(err.contains("unknown field `stepz`"), "{err}");
        let err = TrainConfig::default()
            .with_overrides(&["noequals".into()])
            .unwrap_err();
        assert_eq!(err.to_string(), "--set noequals: expected key=value");
    }

    #[test]
    fn validation_catches_bad_numbers() {
        let bad = |f: &dyn Fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(
            bad(&|c| c.horizon = 0),
            "invalid config: horizon: chunk horizon H must be at least 1, got 0"
        );
        assert_eq!(
            bad(&|c| c.gamma = 1.5),
            "invalid config: gamma: discount gamma must lie in (0, 1], got 1.5"
        );
        assert_eq!(
            bad(&|c| c.obs_horizon = 5000),
            "invalid config: obs_horizon: observation horizon To must be at most 4096, got 5000"
        );
        assert_eq!(
            bad(&|c| c.agent.tau = 0.0),
            "invalid config: agent.tau: must lie in (0, 1], got 0"
        );
        assert!(bad(&|c| c.execute = 9).contains("execute"));
        assert_eq!(
            bad(&|c| c.checkpoint_every = 0),
            "invalid config: checkpoint_every must be at least 1"
        );
        assert_eq!(
            bad(&|c| c.threads = 100_000),
            "invalid config: threads must lie in 0..=1024 (0: all cores), got 100000"
        );
        assert_eq!(
            bad(&|c| c.batch_size = 100_000_000),
            "invalid config: batch_size must lie in 1..=65536, got 100000000"
        );
        assert_eq!(
            bad(&|c| c.dataset_episodes = 1_000_000),
            "invalid config: dataset_episodes must lie in 1..=100000, got 1000000"
        );
        assert!(bad(&|c| c.seed = u64::MAX).starts_with("invalid config: seed must be at most"));
        assert_eq!(
            bad(&|c| c.device = "gpu".into()),
            "invalid config: device: unknown device `gpu` (use cpu, cuda or cuda:N)"
        );
        for device in ["cpu", "cuda", "cuda:1"] {
            let cfg = TrainConfig {
                device: device.into(),
                ..TrainConfig::default()
            };
            assert!(cfg.validate().is_ok(), "{device}");
        }
        assert!(TrainConfig::default().validate().is_ok());
    }

    #[test]
    fn updates_at_learning_rate_zero_are_refused() {
        let cfg = |steps: u64, decay: u64, lr_min: f64| {
            let mut c = TrainConfig {
                steps,
                ..TrainConfig::default()
            };
            c.agent.lr_decay_steps = decay;
            c.agent.lr_min = lr_min;
            c
        };
        // 0 decays over `steps`; a decay that covers them, or lr_min > 0, is fine.
        assert!(cfg(100, 0, 0.0).idle_updates().is_none());
        assert!(cfg(100, 100, 0.0).idle_updates().is_none());
        assert!(cfg(100, 200, 0.0).idle_updates().is_none());
        assert!(cfg(100, 50, 1e-5).idle_updates().is_none());
        let err = cfg(100, 50, 0.0).validate().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "invalid config: steps = 100 runs past agent.lr_decay_steps = 50 with \
                 agent.lr_min = 0: the learning rates are 0 from update 50 on"
            ),
            "{err}"
        );
    }

    #[test]
    fn generated_data_of_another_size_has_its_own_file() {
        let cfg = |episodes: usize| TrainConfig {
            dataset_episodes: episodes,
            ..TrainConfig::default()
        };
        assert_eq!(
            cfg(100).dataset_path(),
            Path::new("data/pendulum-medium.npz")
        );
        assert_eq!(
            cfg(5).dataset_path(),
            Path::new("data/pendulum-medium-5ep.npz")
        );
        let given = TrainConfig {
            dataset: "my.npz".into(),
            ..cfg(5)
        };
        assert_eq!(given.dataset_path(), Path::new("my.npz"));
    }

    #[test]
    fn toml_errors_name_the_line_the_column_and_the_key() {
        let err = TrainConfig::from_toml("env = \"pendulum\"\nsteps = \"five\"\n").unwrap_err();
        assert_eq!(
            err,
            "line 2, column 9, key `steps`: invalid type: string \"five\", expected u64"
        );
        let err = TrainConfig::from_toml("steps = 1\nseed = 2\nsteps = 3\n").unwrap_err();
        assert_eq!(err, "line 3, column 1, key `steps`: duplicate key");
        let err = TrainConfig::from_toml("steps = 1\n\n[agent]\neta = \"x\"\n").unwrap_err();
        assert_eq!(
            err,
            "line 4, column 7, key `agent.eta`: invalid type: string \"x\", expected f64"
        );
        let err = TrainConfig::from_toml("[agent]\neta = 1\n[agent]\n").unwrap_err();
        assert_eq!(err, "line 3, column 2, key `agent`: duplicate key");
        let err = TrainConfig::from_toml("[agent.critic]\nhiden = [1]\n").unwrap_err();
        assert!(
            err.starts_with("line 2, column 1, key `agent.critic.hiden`: unknown field `hiden`"),
            "{err}"
        );
        // Inside a multi-line array the line names no key.
        let err =
            TrainConfig::from_toml("[agent.critic]\nhidden = [\n  1,\n  \"a\",\n]\n").unwrap_err();
        assert_eq!(
            err,
            "line 4, column 3: invalid type: string \"a\", expected i64"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, "# a run\nsteps = \"five\"\n").unwrap();
        let err = TrainConfig::from_file(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: line 2, column 9, key `steps`: invalid type: string \"five\", expected u64",
                path.display()
            )
        );
    }

    #[test]
    fn more_workers_than_batch_rows_are_rejected() {
        let with = |workers: usize, batch_size: usize| {
            TrainConfig {
                workers,
                batch_size,
                ..TrainConfig::default()
            }
            .validate()
        };
        assert_eq!(
            with(8, 4).unwrap_err().to_string(),
            "invalid config: workers (8) must not exceed batch_size (4): each worker updates \
             on its own slice of the batch (workers = 0 chooses automatically)"
        );
        assert!(with(4, 4).is_ok());
        assert!(with(0, 1).is_ok(), "0 = automatic");
    }
}
