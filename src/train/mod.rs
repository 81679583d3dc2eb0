//! The training loop: data (loaded, or generated once), the chunk index, the
//! agent, and a loop of sample -> update with a progress bar, metrics every
//! `log_every` updates (JSONL), periodic evaluation, atomic checkpoints, and
//! learning curves at the end. A killed run resumes from its last checkpoint
//! and ends exactly where an uninterrupted run would.
//!
//! Run folder: `config.toml` (resolved), `metrics.jsonl`, `eval.jsonl`,
//! `checkpoint.safetensors`, `curves.png`, `summary.json`.

mod config;
mod log;
mod plot;
mod resume_check;
mod run_data;
mod stop;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::Device;

pub use config::{ConfigError, MAX_EPISODES, MAX_SEED, NO_ENV, TrainConfig};
pub use log::{EvalRow, MetricsRow, read_jsonl};
pub use plot::plot_curves;
pub use run_data::load_dataset;
use run_data::normalizer_for;
pub use stop::StopHandle;

use crate::agent::{AgentError, Algorithm, AnyAgent, auto_workers, read_checkpoint_info};
use crate::chunk::{ChunkError, ChunkIndex};
use crate::data::DataError;
use crate::env::UnknownEnv;
use crate::eval::{EvalConfig, EvalError, EvalReport, evaluate};
use crate::fsutil::{FolderLock, lock_folder};
use crate::noise::{NoiseSource, NoiseState};

/// Files of a run folder.
pub const CONFIG_FILE: &str = "config.toml";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const EVAL_FILE: &str = "eval.jsonl";
pub const CURVES_FILE: &str = "curves.png";
pub const SUMMARY_FILE: &str = "summary.json";

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
    #[error("{0}")]
    Run(String),
    /// The run was asked to stop ([`StopHandle`]) and wrote a checkpoint.
    #[error(
        "stopped at update {step} of {steps} with a checkpoint: continue with \
         `chunkql train --resume {}`",
        dir.display()
    )]
    Stopped { dir: PathBuf, step: u64, steps: u64 },
}

/// The training loop's own state, stored in every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopState {
    /// Position of the batch sampler's random stream.
    pub sampler: NoiseState,
    /// Environment the run evaluates in.
    pub env: String,
    /// Steps of each chunk executed in evaluation (0 = H).
    pub execute: usize,
    /// The resolved config the run started with (absent in checkpoints
    /// written before 2026-12-02): a resume refuses a `config.toml` edited
    /// since in anything that changes the run's numbers.
    #[serde(default)]
    pub config: Option<TrainConfig>,
    /// [`crate::data::StepDataset::fingerprint`] of the run's data (absent
    /// before 2026-12-02): a resume goes on only with the same data, found
    /// at the saved path or wherever `dataset` now points.
    #[serde(default)]
    pub data_fingerprint: Option<String>,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub run_dir: PathBuf,
    /// Updates of the whole run.
    pub steps: u64,
    /// The update this session started from: 0, or the checkpoint's on
    /// `--resume`.
    pub first_step: u64,
    /// Wall time of this session (its updates, evaluations and
    /// checkpoints), seconds.
    pub seconds: f64,
    /// `(steps - first_step) / seconds`; 0 when this session had no update
    /// left to do.
    pub steps_per_second: f64,
    /// How MKL chose the CPU's matrix-product kernels
    /// ([`crate::device::mkl`]): a run reproduces to the digit only on the
    /// same kernels.
    pub matrix_kernels: String,
    /// The last evaluation; `None` for a run without an environment.
    pub final_eval: Option<EvalReport>,
}

/// `cpu`, `cuda` or `cuda:N` -> a device that works here, or a clear error.
pub fn parse_device(name: &str) -> Result<Device, TrainError> {
    let index = match config::device_index(name) {
        Some(None) => return Ok(Device::Cpu),
        Some(Some(index)) => index,
        None => {
            return Err(TrainError::Run(format!(
                "unknown device `{name}` (use cpu, cuda or cuda:N)"
            )));
        }
    };
    crate::device::cuda(index).map_err(TrainError::Run)
}

/// A run in progress.
struct Run {
    cfg: TrainConfig,
    dir: PathBuf,
    index: ChunkIndex,
    agent: AnyAgent,
    sampler: NoiseSource,
    stop: StopHandle,
    /// Of the run's data, saved with every checkpoint.
    fingerprint: String,
    /// Keeps a second process from training into the same folder.
    _lock: FolderLock,
}

/// Trains from scratch into `dir` (which must not hold a run yet); `stop`
/// ends it early with a checkpoint ([`TrainError::Stopped`]).
pub fn train(cfg: TrainConfig, dir: &Path, stop: &StopHandle) -> Result<TrainSummary, TrainError> {
    cfg.validate()?;
    if dir.join(CONFIG_FILE).exists() {
        return Err(holds_a_run(dir));
    }
    // Without its config the folder cannot be resumed, but a new run there
    // would append to its logs and mix two runs in one set of curves.
    let leftover = [CHECKPOINT_FILE, METRICS_FILE, EVAL_FILE, SUMMARY_FILE]
        .into_iter()
        .find(|f| dir.join(f).exists());
    if let Some(file) = leftover {
        return Err(TrainError::Run(format!(
            "{} holds {file} of an earlier run (without its {CONFIG_FILE}, so it cannot be \
             resumed): choose another --out, or remove the folder",
            dir.display()
        )));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(TrainError::Run(format!(
            "{} exists and is not a folder: --out names the run folder",
            dir.display()
        )));
    }
    start(cfg, dir, stop, None)
}

/// A new run was asked for in `dir`, which holds one.
fn holds_a_run(dir: &Path) -> TrainError {
    TrainError::Run(format!(
        "{} already holds a run; continue it with --resume {0} or choose another --out",
        dir.display()
    ))
}

/// Starts the run `cfg` from update 0 in `dir`, under `lock` if the caller
/// holds the folder's already.
fn start(
    mut cfg: TrainConfig,
    dir: &Path,
    stop: &StopHandle,
    lock: Option<FolderLock>,
) -> Result<TrainSummary, TrainError> {
    // A given dataset is saved as an absolute path, so that the run resumes
    // (and reruns from its config.toml) from any working directory.
    cfg = cfg.with_absolute_dataset()?;
    let device = parse_device(&cfg.device)?;
    set_threads(cfg.threads);
    let say = |m: &str| eprintln!("{m}");
    if let Some(section) = cfg.agent.ignored_section(cfg.algorithm) {
        let used = match cfg.algorithm {
            Algorithm::Dql => "agent.diffusion",
            Algorithm::Cpql => "agent.consistency",
        };
        say(&format!(
            "note: agent.{section} differs from its defaults, but {} does not read it \
             (its policy's settings are {used})",
            cfg.algorithm
        ));
    }
    let data = Arc::new(load_dataset(&cfg, &say)?);
    if cfg.dataset.is_empty() {
        // So is the generated default, where it was written.
        cfg.dataset = cfg.dataset_path().display().to_string();
        cfg = cfg.with_absolute_dataset()?;
    }
    if let Some(note) = cfg.unused_eval_settings() {
        say(&note);
    }
    let fingerprint = data.fingerprint();
    let normalizer = normalizer_for(&cfg, &data, &say)?;
    let index = ChunkIndex::new(data, cfg.chunk_spec()?)?;
    let summary = index.summary();
    if summary.dropped() > 0 {
        say(&format!(
            "{}: {}",
            index.data().source(),
            summary.dropped_reason()
        ));
    }
    if let Some(note) = summary.all_cut_short_note() {
        say(&note);
    }
    if cfg.batch_size > index.len() {
        say(&format!(
            "note: batch_size {} exceeds the {} sampleable chunks: every batch repeats chunks \
             (they are drawn with replacement)",
            cfg.batch_size,
            index.len()
        ));
    }
    let mut agent_cfg = cfg.agent.clone();
    if agent_cfg.lr_decay_steps == 0 {
        agent_cfg.lr_decay_steps = cfg.steps;
    }
    let dims = index.empty_batch(1).dims();
    let mut agent = AnyAgent::new(
        cfg.algorithm,
        agent_cfg.clone(),
        dims,
        normalizer,
        device,
        cfg.seed,
    )?;
    let workers = set_workers(&mut agent, &cfg, device)?;
    // The resolved slice count is saved: the noise each slice draws depends
    // on it, so a rerun or resume from the config file uses the same.
    let resolved = TrainConfig {
        agent: agent_cfg,
        workers,
        ..cfg
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| TrainError::Run(format!("cannot create {}: {e}", dir.display())))?;
    let lock = match lock {
        Some(lock) => lock,
        None => {
            let lock = lock_folder(dir).map_err(TrainError::Run)?;
            // Another process may have started a run here since `train`
            // looked.
            if dir.join(CONFIG_FILE).exists() {
                return Err(holds_a_run(dir));
            }
            lock
        }
    };
    crate::fsutil::atomic_write(&dir.join(CONFIG_FILE), |w| {
        std::io::Write::write_all(w, resolved.to_toml().as_bytes())
    })
    .map_err(|e| {
        TrainError::Run(format!(
            "cannot write {}: {e}",
            dir.join(CONFIG_FILE).display()
        ))
    })?;
    say(&format!(
        "training {} with H {} on {} ({} sampleable chunks) into {}{}",
        resolved.algorithm,
        resolved.horizon,
        if resolved.evaluates() {
            resolved.env.clone()
        } else {
            index.data().source().to_string()
        },
        index.len(),
        dir.display(),
        workers_note(workers)
    ));
    let sampler = NoiseSource::new(crate::env::seed_for(resolved.seed, 0x5A_3B1E), Device::Cpu);
    Run {
        cfg: resolved,
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

/// Continues the run in `dir` from its last checkpoint; `stop` as for
/// [`train`].
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
    let lock = lock_folder(dir).map_err(TrainError::Run)?;
    let cfg = TrainConfig::from_file(&dir.join(CONFIG_FILE))?;
    let stale = crate::fsutil::remove_stale_temporaries(dir)
        .map_err(|e| TrainError::Run(format!("{}: {e}", dir.display())))?;
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
    cfg.validate()?;
    let Some(state) = state else {
        // Killed before its first checkpoint: continuing exactly is
        // starting again from the saved config.
        eprintln!(
            "{} has no checkpoint yet (the run stopped before update {}): starting it again \
             from its config",
            dir.display(),
            cfg.checkpoint_every.min(cfg.steps)
        );
        for log in [METRICS_FILE, EVAL_FILE] {
            log::truncate_after(&dir.join(log), 0).map_err(TrainError::Run)?;
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
        resume_check::agent_changes(&agent, &cfg, index.empty_batch(1).dims()),
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
    log::truncate_after(&dir.join(METRICS_FILE), step).map_err(TrainError::Run)?;
    log::truncate_after(&dir.join(EVAL_FILE), step).map_err(TrainError::Run)?;
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

fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
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

/// ", batch split over N threads" when updates are split.
fn workers_note(workers: usize) -> String {
    if workers > 1 {
        format!(", each batch split over {workers} threads")
    } else {
        String::new()
    }
}

/// Splits the agent's updates as `cfg.workers` says (0: [`auto_workers`]
/// for the device, libtorch's threads and the batch size); returns the
/// number of slices.
fn set_workers(
    agent: &mut AnyAgent,
    cfg: &TrainConfig,
    device: Device,
) -> Result<usize, TrainError> {
    let threads = (tch::get_num_threads().max(1)) as usize;
    let count = match cfg.workers {
        0 => auto_workers(device, threads, cfg.batch_size),
        n => n,
    };
    agent.set_workers(count, (threads / count).max(1))?;
    Ok(count)
}

impl Run {
    fn go(mut self) -> Result<TrainSummary, TrainError> {
        let cfg = self.cfg.clone();
        let progress = ProgressBar::new(cfg.steps).with_position(self.agent.step());
        progress.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} {msg}",
            )
            .expect("template"),
        );
        let say = |m: &str| {
            if progress.is_hidden() {
                eprintln!("{m}");
            } else {
                progress.println(m);
            }
        };
        let mut metrics_log =
            log::Appender::open(&self.dir.join(METRICS_FILE)).map_err(TrainError::Run)?;
        let mut eval_log =
            log::Appender::open(&self.dir.join(EVAL_FILE)).map_err(TrainError::Run)?;
        let mut batch = self.index.empty_batch(cfg.batch_size);
        if cfg.agent.target == crate::agent::TargetKind::OneStep {
            batch = batch.with_one_step();
        }
        let started = Instant::now();
        let mut last_line = started;
        let first_step = self.agent.step();
        let mut final_eval = None;
        while self.agent.step() < cfg.steps {
            self.index.sample_into(&mut batch, self.sampler.rng());
            let metrics = self.agent.update(&batch);
            let step = metrics.step;
            progress.set_position(step);
            if !metrics.critic_loss.is_finite() || !metrics.actor_loss.is_finite() {
                return Err(TrainError::Run(format!(
                    "training diverged at step {step} (critic loss {}, actor loss {}); try a smaller learning rate or grad_clip",
                    metrics.critic_loss, metrics.actor_loss
                )));
            }
            if step.is_multiple_of(cfg.log_every) || step == cfg.steps {
                let elapsed = started.elapsed().as_secs_f64();
                let rate = (step - first_step) as f64 / elapsed.max(1e-9);
                let losses = format!(
                    "critic {:.4} actor {:.4} bc {:.4} q {:.2}",
                    metrics.critic_loss, metrics.actor_loss, metrics.bc_loss, metrics.q_mean
                );
                // Without a terminal (a log file, a pipe) there is no bar:
                // a line now and then says the run is alive.
                if progress.is_hidden() && last_line.elapsed() >= PLAIN_PROGRESS_EVERY {
                    last_line = Instant::now();
                    eprintln!(
                        "step {step}/{} ({:.0}%), {rate:.1} steps/s, {losses}",
                        cfg.steps,
                        100.0 * step as f64 / cfg.steps as f64
                    );
                }
                progress.set_message(losses);
                metrics_log
                    .append(&MetricsRow {
                        metrics,
                        steps_per_second: rate,
                    })
                    .map_err(TrainError::Run)?;
            }
            let evaluate_now = cfg.evaluates()
                && ((cfg.eval_every > 0 && step.is_multiple_of(cfg.eval_every))
                    || step == cfg.steps);
            if evaluate_now {
                let report = self.evaluate()?;
                say(&format!("step {step}: {report}"));
                eval_log
                    .append(&EvalRow::of(step, &report))
                    .map_err(TrainError::Run)?;
                final_eval = Some(report);
            }
            // Read once, so that a stop asked for from here on waits for
            // the next update rather than skipping this one's checkpoint.
            let stopping = step < cfg.steps && self.stop.is_stopped();
            if step.is_multiple_of(cfg.checkpoint_every) || step == cfg.steps || stopping {
                metrics_log.flush().map_err(TrainError::Run)?;
                eval_log.flush().map_err(TrainError::Run)?;
                let state = LoopState {
                    sampler: self.sampler.state(),
                    env: cfg.env.clone(),
                    execute: cfg.execute,
                    config: Some(cfg.clone()),
                    data_fingerprint: Some(self.fingerprint.clone()),
                };
                let state = serde_json::to_value(state).expect("serialisable");
                self.agent.save(&self.dir.join(CHECKPOINT_FILE), state)?;
            }
            if stopping {
                progress.finish_and_clear();
                return Err(TrainError::Stopped {
                    dir: self.dir.clone(),
                    step,
                    steps: cfg.steps,
                });
            }
        }
        progress.finish_and_clear();
        metrics_log.flush().map_err(TrainError::Run)?;
        eval_log.flush().map_err(TrainError::Run)?;
        let final_eval = match final_eval {
            None if cfg.evaluates() => Some(self.evaluate()?),
            report => report,
        };
        plot_curves(&self.dir).map_err(TrainError::Run)?;
        let seconds = started.elapsed().as_secs_f64();
        let summary = TrainSummary {
            run_dir: self.dir.clone(),
            steps: cfg.steps,
            first_step,
            seconds,
            steps_per_second: (cfg.steps - first_step) as f64 / seconds.max(1e-9),
            matrix_kernels: crate::device::mkl_dispatch().to_string(),
            final_eval,
        };
        // A resumed run that had nothing left to do keeps the summary (and
        // the timing) of the run that did the work.
        let summary_file = self.dir.join(SUMMARY_FILE);
        if first_step < cfg.steps || !summary_file.exists() {
            let json = serde_json::to_string_pretty(&summary).expect("serialisable");
            crate::fsutil::atomic_write(&summary_file, |w| {
                std::io::Write::write_all(w, json.as_bytes())
            })
            .map_err(|e| TrainError::Run(format!("cannot write summary: {e}")))?;
        }
        Ok(summary)
    }

    /// Evaluation with the same episode seeds every time (common random
    /// numbers across a run's evaluations and across resumes).
    fn evaluate(&self) -> Result<EvalReport, TrainError> {
        let execute = (self.cfg.execute > 0).then_some(self.cfg.execute);
        let eval = EvalConfig {
            episodes: self.cfg.eval_episodes,
            execute,
            seed: eval_seed(self.cfg.seed),
        };
        Ok(evaluate(&self.agent, &self.cfg.env, eval)?)
    }
}

/// How often a run without a terminal prints a progress line (at its
/// next metrics update after this long).
const PLAIN_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Seed of a run's evaluation episodes (disjoint from training data seeds).
pub fn eval_seed(seed: u64) -> u64 {
    crate::env::seed_for(seed, 0xE7A1)
}
