//! `resume`: a stopped or killed run continues from its last checkpoint,
//! with the config it started with (edits that would change its numbers are
//! refused), on the same data (checked by fingerprint), and ends where the
//! uninterrupted run would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tch::Device;

use super::{
    CHECKPOINT_FILE, CONFIG_FILE, ConfigError, EVAL_FILE, LoopState, METRICS_FILE, Run,
    SUMMARY_FILE, StopHandle, TrainConfig, TrainError, TrainSummary, load_dataset, log,
    parse_device, resume_check, set_threads, set_workers, start,
};
use crate::agent::{AnyAgent, read_checkpoint_info};
use crate::chunk::ChunkIndex;
use crate::fsutil::lock_folder;
use crate::noise::NoiseSource;

/// Why a run folder cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// `--resume` named a file (the checkpoint, say) instead of its folder.
    #[error(
        "{} is a file: --resume takes the run folder{}",
        path.display(),
        parent.as_ref().map_or(String::new(), |p| format!(" ({})", p.display()))
    )]
    IsAFile {
        path: PathBuf,
        /// The folder holding it, where it has one.
        parent: Option<PathBuf>,
    },
    /// `--resume` named a folder that does not exist.
    #[error("{}: no such run folder", dir.display())]
    NoSuchFolder { dir: PathBuf },
    /// A folder without the `config.toml` a run writes first.
    #[error(
        "{} is not a run folder (it has no {CONFIG_FILE}): --resume takes a folder that \
         `chunkql train` wrote",
        dir.display()
    )]
    NotARunFolder { dir: PathBuf },
    /// A checkpoint without the training loop's state ([`super::LoopState`]).
    #[error("{}: no training-loop state ({reason})", checkpoint.display())]
    NoLoopState { checkpoint: PathBuf, reason: String },
    /// `config` was edited since `checkpoint` in what changes the run's numbers.
    #[error(
        "{} differs from the run {} was saved from in {} (saved, now); a run resumes with the \
         config it started with: only steps, threads, device, the log, eval (eval_every, \
         eval_episodes, execute, ensemble) and checkpoint settings, and dataset (to the same \
         data moved) may change{}",
        config.display(),
        checkpoint.display(),
        changes.join(", "),
        also.as_ref().map_or(String::new(), |m| format!(". Also: {m}"))
    )]
    ConfigEdited {
        config: PathBuf,
        checkpoint: PathBuf,
        /// Each edit as `key (saved, now)`.
        changes: Vec<String>,
        /// What else is wrong with the config: `steps` past the learning-rate decay.
        also: Option<String>,
    },
    /// `steps` past `agent.lr_decay_steps` with `agent.lr_min = 0`.
    #[error(
        "{}: steps = {steps} runs past this run's learning-rate decay (agent.lr_decay_steps = \
         {decay}, agent.lr_min = 0): its learning rates are 0 after the first {decay} updates, \
         so it cannot train longer than {decay} updates. A run that may be extended is started \
         with agent.lr_decay_steps set to the longest it may train, or agent.lr_min > 0",
        config.display()
    )]
    PastLearningRateDecay {
        config: PathBuf,
        steps: u64,
        decay: u64,
    },
    /// The run's data is not at `path`, the `dataset` of `config`.
    #[error(
        "{}: no such file (the run's data, `dataset` in {}); if it moved, point `dataset` \
         at its new place: a fingerprint check makes sure it is the same data{}",
        path.display(),
        config.display(),
        hint.as_deref().unwrap_or_default()
    )]
    DataMissing {
        path: PathBuf,
        config: PathBuf,
        /// How to write generated default data again ([`TrainConfig::regenerate_hint`]).
        hint: Option<String>,
    },
    /// The data's fingerprint is not the one saved with the checkpoint.
    #[error(
        "{data} is not the data the run started on (its fingerprint is {fingerprint}, the \
         checkpoint's {saved}): a run resumes only on its own data"
    )]
    OtherData {
        /// The data's source ([`crate::data::StepDataset::source`]).
        data: String,
        fingerprint: String,
        saved: String,
    },
    /// The checkpoint's batch-sampler state cannot be restored.
    #[error("{}: bad sampler state", checkpoint.display())]
    BadSamplerState { checkpoint: PathBuf },
    /// The final-evaluation settings of a complete run edited: its files
    /// record the evaluation it made, which a resume does not redo.
    #[error(
        "{} is complete, and {} records its final evaluation; {} changes its settings in {} \
         (saved, now): `chunkql eval {}` evaluates the run with the config's settings (its files \
         keep the evaluation they record), or raise steps to train on",
        config.parent().unwrap_or(Path::new(".")).display(),
        summary.display(),
        config.display(),
        changes.join(", "),
        config.parent().unwrap_or(Path::new(".")).display()
    )]
    CompleteRunEvalEdited {
        config: PathBuf,
        summary: PathBuf,
        /// Each edit as `key (saved, now)`.
        changes: Vec<String>,
    },
    /// `steps` in `config` below the update `step` of the checkpoint.
    #[error(
        "{} says steps = {steps}, but its checkpoint is at update {step}: steps must be at \
         least {step}",
        config.display()
    )]
    StepsBelowCheckpoint {
        config: PathBuf,
        steps: u64,
        step: u64,
    },
}

/// Continues the run in `dir` from its last checkpoint; `stop` as for
/// [`super::train`].
pub fn resume(dir: &Path, stop: &StopHandle) -> Result<TrainSummary, TrainError> {
    if dir.is_file() {
        // Named as the run folder only where it is one (the file is its
        // checkpoint or config, say), not for any file's folder.
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && p.join(CONFIG_FILE).is_file());
        return Err(ResumeError::IsAFile {
            path: dir.to_path_buf(),
            parent: parent.map(Path::to_path_buf),
        }
        .into());
    }
    if !dir.is_dir() {
        return Err(ResumeError::NoSuchFolder {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    if !dir.join(CONFIG_FILE).exists() {
        return Err(ResumeError::NotARunFolder {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    let lock = lock_folder(dir)?;
    let cfg = TrainConfig::from_file(&dir.join(CONFIG_FILE))?;
    super::remove_stale_temporaries(dir)?;
    let checkpoint = dir.join(CHECKPOINT_FILE);
    // The loop state, and with it the config the run started with, is in
    // the checkpoint (a run stopped before its first has none yet).
    let state: Option<LoopState> = match checkpoint.exists() {
        false => None,
        true => {
            let info = read_checkpoint_info(&checkpoint)?;
            Some(
                serde_json::from_value(info.extra).map_err(|e| ResumeError::NoLoopState {
                    checkpoint: checkpoint.clone(),
                    reason: e.to_string(),
                })?,
            )
        }
    };
    if let Some(saved) = state.as_ref().and_then(|s| s.config.as_ref()) {
        let mut changes = resume_check::config_changes(saved, &cfg);
        if state.as_ref().is_some_and(|s| s.data_fingerprint.is_some()) {
            // Moved data is fine: the fingerprint below says if it is the same.
            changes.retain(|c| !c.starts_with("dataset "));
        }
        refuse_edits(dir, &cfg, changes)?;
    }
    if cfg.idle_updates().is_some() {
        return Err(ResumeError::PastLearningRateDecay {
            config: dir.join(CONFIG_FILE),
            steps: cfg.steps,
            decay: cfg.agent.lr_decay_steps,
        }
        .into());
    }
    cfg.validate().map_err(|e| ConfigError::File {
        file: dir.join(CONFIG_FILE).display().to_string(),
        message: e.to_string(),
    })?;
    let Some(state) = state else {
        // Killed before its first checkpoint: continuing exactly is
        // starting again from the saved config.
        eprintln!(
            "{} has no checkpoint yet (the first is written at update {}): starting the run \
             from its config",
            dir.display(),
            cfg.checkpoint_every.min(cfg.steps)
        );
        for log in [METRICS_FILE, EVAL_FILE] {
            log::truncate_after(&dir.join(log), 0)?;
        }
        return start(cfg, dir, stop, Some(lock));
    };
    let device = parse_device(&cfg.device)?;
    set_threads(cfg.threads);
    let path = cfg.dataset_path();
    if !cfg.dataset.is_empty() && !path.exists() {
        return Err(ResumeError::DataMissing {
            path,
            config: dir.join(CONFIG_FILE),
            hint: cfg.regenerate_hint(),
        }
        .into());
    }
    let data = Arc::new(load_dataset(&cfg, &|m| eprintln!("{m}"))?);
    let fingerprint = data.fingerprint();
    if let Some(saved) = state
        .data_fingerprint
        .as_ref()
        .filter(|&f| *f != fingerprint)
    {
        return Err(ResumeError::OtherData {
            data: data.source().to_string(),
            fingerprint,
            saved: saved.clone(),
        }
        .into());
    }
    let index = ChunkIndex::new(data, cfg.chunk_spec()?)?;
    let mut agent = AnyAgent::load(&checkpoint, device)?;
    refuse_edits(
        dir,
        &cfg,
        resume_check::agent_changes(&agent, &cfg, index.dims()),
    )?;
    set_workers(&mut agent, &cfg, device)?;
    let sampler = NoiseSource::from_state(&state.sampler, Device::Cpu).ok_or_else(|| {
        ResumeError::BadSamplerState {
            checkpoint: checkpoint.clone(),
        }
    })?;
    let step = agent.step();
    if step > cfg.steps {
        return Err(ResumeError::StepsBelowCheckpoint {
            config: dir.join(CONFIG_FILE),
            steps: cfg.steps,
            step,
        }
        .into());
    }
    let summary = dir.join(SUMMARY_FILE);
    if let Some(saved) = state.config.as_ref().filter(|_| step >= cfg.steps)
        && cfg.evaluates()
        && summary.exists()
    {
        let changes = resume_check::final_eval_changes(saved, &cfg);
        if !changes.is_empty() {
            return Err(ResumeError::CompleteRunEvalEdited {
                config: dir.join(CONFIG_FILE),
                summary,
                changes,
            }
            .into());
        }
    }
    log::truncate_after(&dir.join(METRICS_FILE), step)?;
    log::truncate_after(&dir.join(EVAL_FILE), step)?;
    if step >= cfg.steps {
        eprintln!(
            "{} is complete ({step} of {} steps){}",
            dir.display(),
            cfg.steps,
            if cfg.evaluates() {
                ": evaluating its last checkpoint"
            } else {
                ""
            }
        );
    } else {
        eprintln!("resuming {} at step {step} of {}", dir.display(), cfg.steps);
    }
    let last_metrics = state.last_metrics;
    Run {
        cfg,
        dir: dir.to_path_buf(),
        index,
        agent,
        sampler,
        stop: stop.clone(),
        fingerprint,
        _lock: lock,
        last_metrics,
    }
    .go()
}

/// An error naming every edit of a resumed run's config that changes its
/// numbers (`changes`: "key (saved, now)"), and `steps` past the decay too,
/// so that one pass names all; `Ok` when there are none.
fn refuse_edits(dir: &Path, cfg: &TrainConfig, changes: Vec<String>) -> Result<(), ResumeError> {
    if changes.is_empty() {
        return Ok(());
    }
    Err(ResumeError::ConfigEdited {
        config: dir.join(CONFIG_FILE),
        checkpoint: dir.join(CHECKPOINT_FILE),
        changes,
        also: cfg.idle_updates(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_given_to_resume_names_its_folder_where_it_has_one() {
        let error = |path: &str, parent: Option<&str>| {
            ResumeError::IsAFile {
                path: path.into(),
                parent: parent.map(PathBuf::from),
            }
            .to_string()
        };
        assert_eq!(
            error("run/checkpoint.safetensors", Some("run")),
            "run/checkpoint.safetensors is a file: --resume takes the run folder (run)"
        );
        assert_eq!(
            error("checkpoint.safetensors", None),
            "checkpoint.safetensors is a file: --resume takes the run folder"
        );
    }

    #[test]
    fn a_file_given_to_resume_names_its_folder_only_where_that_is_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let (data, run) = (dir.path().join("data"), dir.path().join("run"));
        for folder in [&data, &run] {
            std::fs::create_dir(folder).unwrap();
        }
        std::fs::write(data.join("steps.npz"), b"").unwrap();
        std::fs::write(run.join(CONFIG_FILE), b"").unwrap();
        std::fs::write(run.join(CHECKPOINT_FILE), b"").unwrap();
        let error = |path: &Path| resume(path, &StopHandle::new()).unwrap_err().to_string();
        assert_eq!(
            error(&data.join("steps.npz")),
            format!(
                "{} is a file: --resume takes the run folder",
                data.join("steps.npz").display()
            )
        );
        assert_eq!(
            error(&run.join(CHECKPOINT_FILE)),
            format!(
                "{} is a file: --resume takes the run folder ({})",
                run.join(CHECKPOINT_FILE).display(),
                run.display()
            )
        );
    }

    #[test]
    fn a_refused_edit_lists_the_changes_and_what_else_is_wrong() {
        let cfg = TrainConfig {
            steps: 30,
            ..TrainConfig::default()
        };
        let changes = vec![
            "horizon (4, 8)".to_string(),
            "gamma (0.99, 0.9)".to_string(),
        ];
        let error = refuse_edits(Path::new("run"), &cfg, changes.clone()).unwrap_err();
        assert!(
            matches!(&error, ResumeError::ConfigEdited { changes: c, also: None, .. } if *c == changes),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "run/config.toml differs from the run run/checkpoint.safetensors was saved from in \
             horizon (4, 8), gamma (0.99, 0.9) (saved, now); a run resumes with the config it \
             started with: only steps, threads, device, the log, eval (eval_every, \
             eval_episodes, execute, ensemble) and checkpoint settings, and dataset (to the \
             same data moved) may change"
        );
        let mut decaying = cfg.clone();
        decaying.agent.lr_decay_steps = 20;
        let error = refuse_edits(Path::new("run"), &decaying, changes).unwrap_err();
        let also = decaying.idle_updates().unwrap();
        assert!(
            matches!(&error, ResumeError::ConfigEdited { also: Some(a), .. } if *a == also),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .ends_with(&format!("may change. Also: {also}")),
            "{error}"
        );
        assert!(refuse_edits(Path::new("run"), &cfg, Vec::new()).is_ok());
    }

    #[test]
    fn missing_data_keeps_the_regenerate_hint() {
        let error = ResumeError::DataMissing {
            path: "data/pendulum-medium.npz".into(),
            config: "run/config.toml".into(),
            hint: Some("; it is the run's generated default data".into()),
        };
        assert_eq!(
            error.to_string(),
            "data/pendulum-medium.npz: no such file (the run's data, `dataset` in \
             run/config.toml); if it moved, point `dataset` at its new place: a fingerprint \
             check makes sure it is the same data; it is the run's generated default data"
        );
    }
}
