//! What stops a run: [`TrainError`], one variant per refusal a caller may
//! want to tell apart, each carrying the values its message names.
//!
//! This module is the engine of `chunkql train`, so a message names the
//! flag that fixes it (`--out`, `--resume`, `--dataset`); a library caller
//! reads them as the run folder passed to [`super::train`], the folder
//! passed to [`super::resume`] and the config's `dataset`.

use std::path::{Path, PathBuf};

use super::{CONFIG_FILE, ConfigError, NO_ENV, ResumeError};
use crate::agent::AgentError;
use crate::chunk::ChunkError;
use crate::data::DataError;
use crate::env::UnknownEnv;
use crate::eval::EvalError;
use crate::fsutil::FolderBusy;

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Env(#[from] UnknownEnv),
    /// A run folder another process trains in.
    #[error(transparent)]
    Busy(#[from] FolderBusy),
    /// A resume refused: the folder, its checkpoint, config or data.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// A file of the run could not be read or written. (The message holds
    /// the I/O error: not also a `source`, which `{:#}` would print twice.)
    #[error("cannot {action} {}: {error}", file.display())]
    Io {
        action: &'static str,
        file: PathBuf,
        error: std::io::Error,
    },
    /// A loss (or another metric of the update) became NaN or infinite.
    #[error(
        "training diverged at step {step} ({name} {value}; critic loss {critic_loss}, actor \
         loss {actor_loss}); try a smaller agent.actor_lr or agent.critic_lr, a smaller \
         agent.reward_scale for large rewards, or a smaller positive agent.grad_clip (0 turns \
         clipping off)"
    )]
    Diverged {
        step: u64,
        /// The first metric that is not finite, and its value.
        name: &'static str,
        value: f64,
        critic_loss: f64,
        actor_loss: f64,
    },
    /// A device name that is not `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device `{name}` (use cpu, cuda or cuda:N)")]
    UnknownDevice { name: String },
    /// A CUDA device was asked for that this machine or build lacks.
    #[error("{0}")]
    DeviceUnavailable(String),
    /// A new run was asked for in a folder that holds one.
    #[error(
        "{} already holds a run; continue it with --resume {} or choose another --out",
        dir.display(),
        dir.display()
    )]
    FolderHoldsRun { dir: PathBuf },
    /// A new run was asked for in a folder with `file` of an earlier run
    /// but no `config.toml` to resume it from.
    #[error(
        "{} holds {file} of an earlier run (without its {CONFIG_FILE}, so it cannot be \
         resumed): choose another --out, or remove the folder",
        dir.display()
    )]
    LeftoverRun { dir: PathBuf, file: &'static str },
    /// `--out` names something other than a folder.
    #[error(
        "{} exists and is not a folder: --out names the run folder",
        dir.display()
    )]
    NotAFolder { dir: PathBuf },
    /// Generated default data at `path` with another episode count than
    /// the config's `dataset_episodes`.
    #[error(
        "{} holds {episodes} episodes, but the config asks for generated data of {asked} \
         (dataset_episodes): it was not generated for this run; delete it to generate it \
         again, or name it with --dataset to train on it",
        path.display()
    )]
    WrongEpisodeCount {
        path: PathBuf,
        episodes: usize,
        asked: usize,
    },
    /// Data whose observation or action width is not the environment's.
    #[error(
        "{data} has observation width {obs_dim} and action width {act_dim}, but env {env} has \
         {env_obs_dim} and {env_act_dim} (env = {NO_ENV} trains on it without evaluation)"
    )]
    DataDoesNotFitEnv {
        /// The data's source ([`crate::data::StepDataset::source`]).
        data: String,
        obs_dim: usize,
        act_dim: usize,
        env: String,
        env_obs_dim: usize,
        env_act_dim: usize,
    },
    /// An action of the data outside the environment's action box.
    #[error(
        "{data}: key `actions` row {row}: {value} is outside {env}'s action range [{low}, \
         {high}] (dimension {dim})"
    )]
    ActionOutsideRange {
        /// The data's source ([`crate::data::StepDataset::source`]).
        data: String,
        row: usize,
        dim: usize,
        value: f32,
        env: String,
        low: f32,
        high: f32,
    },
    /// The learning curves or the final episodes could not be drawn.
    #[error("{0}")]
    Plot(String),
    /// The run was asked to stop ([`super::StopHandle`]) and wrote a
    /// checkpoint.
    #[error(
        "stopped at update {step} of {steps} with a checkpoint: continue with \
         `chunkql train --resume {}`",
        dir.display()
    )]
    Stopped { dir: PathBuf, step: u64, steps: u64 },
    /// The run was asked to stop while it was being set up (loading or
    /// generating data, building the networks), before anything was
    /// written.
    #[error("stopped before the first update: no run files were written")]
    StoppedBeforeStart,
}

impl TrainError {
    /// An I/O error of `action` ("read", "write", ...) on `file`.
    pub(crate) fn io(action: &'static str, file: &Path, error: std::io::Error) -> Self {
        TrainError::Io {
            action,
            file: file.to_path_buf(),
            error,
        }
    }
}
