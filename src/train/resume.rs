//! `resume`: a stopped or killed run continues from its last checkpoint,
//! with the config it started with (edits that would change its numbers are
//! refused), on the same data (checked by fingerprint), and ends where the
//! uninterrupted run would.

use std::path::Path;
use std::sync::Arc;

use tch::Device;

use super::{
    CHECKPOINT_FILE, CONFIG_FILE, ConfigError, EVAL_FILE, LoopState, METRICS_FILE, Run, StopHandle,
    TrainConfig, TrainError, TrainSummary, load_dataset, log, parse_device, resume_check,
    set_threads, set_workers, start,
};
use crate::agent::{AnyAgent, read_checkpoint_info};
use crate::chunk::ChunkIndex;
use crate::fsutil::lock_folder;
use crate::noise::NoiseSource;

/// Continues the run in `dir` from its last checkpoint; `stop` as for
/// [`super::train`].
pub fn resume(dir: &Path, stop: &StopHandle) -> Result<TrainSummary, TrainError> {
    if dir.is_file() {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        return Err(TrainError::Run(format!(
            "{} is a file: --resume takes the run folder{}",
            dir.display(),
            parent.map_or(String::new(), |p| format!(" ({})", p.display()))
        )));
    }
    if !dir.is_dir() {
        return Err(TrainError::Run(format!(
            "{}: no such run folder",
            dir.display()
        )));
    }
    if !dir.join(CONFIG_FILE).exists() {
        return Err(TrainError::Run(format!(
            "{} is not a run folder (it has no {CONFIG_FILE}): --resume takes a folder that \
             `chunkql train` wrote",
            dir.display()
        )));
    }
    let lock = lock_folder(dir)?;
    let cfg = TrainConfig::from_file(&dir.join(CONFIG_FILE))?;
    let stale = crate::fsutil::remove_stale_temporaries(dir)
        .map_err(|e| TrainError::io("clean up", dir, e))?;
    if stale > 0 {
        eprintln!(
            "{}: removed {stale} half-written temporary file(s) of a killed process",
            dir.display()
        );
    }
    let checkpoint = dir.join(CHECKPOINT_FILE);
    // The loop state, and with it the config the run started with, is in
    // the checkpoint (a run stopped before its first has none yet).
    let state: Option<LoopState> = match checkpoint.exists() {
        false => None,
        true => {
            let info = read_checkpoint_info(&checkpoint)?;
            Some(serde_json::from_value(info.extra).map_err(|e| {
                TrainError::Run(format!(
                    "{}: no training-loop state ({e})",
                    checkpoint.display()
                ))
            })?)
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
        let decay = cfg.agent.lr_decay_steps;
        return Err(TrainError::Run(format!(
            "{}: steps = {} runs past this run's learning-rate decay (agent.lr_decay_steps = \
             {decay}, agent.lr_min = 0): its learning rates are 0 from update {decay} on, so it \
             cannot train longer than {decay} updates. A run that may be extended is started \
             with agent.lr_decay_steps set to the longest it may train, or agent.lr_min > 0",
            dir.join(CONFIG_FILE).display(),
            cfg.steps
        )));
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
        return Err(TrainError::Run(format!(
            "{}: no such file (the run's data, `dataset` in {}); if it moved, point `dataset` \
             at its new place: a fingerprint check makes sure it is the same data{}",
            path.display(),
            dir.join(CONFIG_FILE).display(),
            cfg.regenerate_hint().unwrap_or_default()
        )));
    }
    let data = Arc::new(load_dataset(&cfg, &|m| eprintln!("{m}"))?);
    let fingerprint = data.fingerprint();
    if let Some(saved) = state
        .data_fingerprint
        .as_ref()
        .filter(|&f| *f != fingerprint)
    {
        return Err(TrainError::Run(format!(
            "{} is not the data the run started on (its fingerprint is {fingerprint}, the \
             checkpoint's {saved}): a run resumes only on its own data",
            data.source()
        )));
    }
    let index = ChunkIndex::new(data, cfg.chunk_spec()?)?;
    let mut agent = AnyAgent::load(&checkpoint, device)?;
    refuse_edits(
        dir,
        &cfg,
        resume_check::agent_changes(&agent, &cfg, index.dims()),
    )?;
    set_workers(&mut agent, &cfg, device)?;
    let sampler = NoiseSource::from_state(&state.sampler, Device::Cpu)
        .ok_or_else(|| TrainError::Run(format!("{}: bad sampler state", checkpoint.display())))?;
    let step = agent.step();
    if step > cfg.steps {
        return Err(TrainError::Run(format!(
            "{} says steps = {}, but its checkpoint is at update {step}: a run's steps can \
             only grow",
            dir.join(CONFIG_FILE).display(),
            cfg.steps
        )));
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
    Run {
        cfg,
        dir: dir.to_path_buf(),
        index,
        agent,
        sampler,
        stop: stop.clone(),
        fingerprint,
        _lock: lock,
    }
    .go()
}

/// An error naming every edit of a resumed run's config that changes its
/// numbers (`changes`: "key (saved, now)"), and `steps` past the decay too,
/// so that one pass names all; `Ok` when there are none.
fn refuse_edits(dir: &Path, cfg: &TrainConfig, changes: Vec<String>) -> Result<(), TrainError> {
    if changes.is_empty() {
        return Ok(());
    }
    Err(TrainError::Run(format!(
        "{} differs from the run {} was saved from in {} (saved, now); a run resumes with the \
         config it started with: only steps, threads, device, the log, eval (eval_every, \
         eval_episodes, execute) and checkpoint settings, and dataset (to the same data moved) \
         may change{}",
        dir.join(CONFIG_FILE).display(),
        dir.join(CHECKPOINT_FILE).display(),
        changes.join(", "),
        cfg.idle_updates()
            .map(|m| format!(". Also: {m}"))
            .unwrap_or_default(),
    )))
}
