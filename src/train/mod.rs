//! The training loop: data (loaded, or generated once), the chunk index, the
//! agent, and a loop of sample -> update with a progress bar, metrics every
//! `log_every` updates (JSONL), periodic evaluation, atomic checkpoints, and
//! learning curves at the end. A killed run resumes from its last checkpoint
//! (`resume`) and ends exactly where an uninterrupted run would.
//!
//! Run folder: `config.toml` (resolved), `metrics.jsonl`, `eval.jsonl`,
//! `checkpoint.safetensors`, `curves.png`, `rollouts.png` (the final
//! evaluation's episodes, when the run evaluates), `summary.json`.

mod config;
mod error;
mod log;
mod plot;
mod resume;
mod resume_check;
mod run_data;
mod stop;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::Device;

pub use config::{ConfigError, MAX_BATCH_BYTES, MAX_EPISODES, MAX_SEED, NO_ENV, TrainConfig};
pub use error::TrainError;
pub use log::{EvalRow, MetricsRow, read_jsonl};
pub use plot::plot_curves;
pub use resume::{ResumeError, resume};
pub use run_data::load_dataset;
use run_data::normalizer_for;
pub use stop::StopHandle;

use crate::agent::{Algorithm, AnyAgent, Metrics, auto_workers};
use crate::chunk::{ChunkIndex, gib};
use crate::eval::{EvalConfig, EvalReport, Recording, evaluate, evaluate_recorded, plot_rollouts};
use crate::fsutil::{FolderLock, lock_folder};
use crate::noise::{NoiseSource, NoiseState};

/// Files of a run folder.
pub const CONFIG_FILE: &str = "config.toml";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const EVAL_FILE: &str = "eval.jsonl";
pub const CURVES_FILE: &str = "curves.png";
/// The final evaluation's episodes, drawn (`eval::plot_rollouts`).
pub const ROLLOUTS_FILE: &str = "rollouts.png";
pub const SUMMARY_FILE: &str = "summary.json";

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
    /// What the checkpoint's update measured (absent before 2026-12-03): a
    /// run stopped between two log rows and ended there (`steps` lowered
    /// to its checkpoint's update) logs it as its last row.
    #[serde(default)]
    pub last_metrics: Option<Metrics>,
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
            return Err(TrainError::UnknownDevice {
                name: name.to_string(),
            });
        }
    };
    crate::device::cuda(index).map_err(TrainError::DeviceUnavailable)
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
    /// The checkpoint's [`LoopState::last_metrics`] on a resume.
    last_metrics: Option<Metrics>,
}

/// Trains from scratch into `dir` (which must not hold a run yet); `stop`
/// ends it early with a checkpoint ([`TrainError::Stopped`]).
pub fn train(cfg: TrainConfig, dir: &Path, stop: &StopHandle) -> Result<TrainSummary, TrainError> {
    cfg.validate()?;
    if dir.join(CONFIG_FILE).exists() {
        // Training in it now is the more useful thing to say.
        lock_folder(dir)?;
        return Err(holds_a_run(dir));
    }
    // Without its config the folder cannot be resumed, but a new run there
    // would append to its logs and mix two runs in one set of curves.
    let leftover = [CHECKPOINT_FILE, METRICS_FILE, EVAL_FILE, SUMMARY_FILE]
        .into_iter()
        .find(|f| dir.join(f).exists());
    if let Some(file) = leftover {
        return Err(TrainError::LeftoverRun {
            dir: dir.to_path_buf(),
            file,
        });
    }
    if dir.exists() && !dir.is_dir() {
        return Err(TrainError::NotAFolder {
            dir: dir.to_path_buf(),
        });
    }
    start(cfg, dir, stop, None)
}

/// A new run was asked for in `dir`, which holds one.
fn holds_a_run(dir: &Path) -> TrainError {
    TrainError::FolderHoldsRun {
        dir: dir.to_path_buf(),
    }
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
    if let Some(note) = cfg.unused_data_settings() {
        say(&note);
    }
    let data = Arc::new(load_dataset(&cfg, &say)?);
    if cfg.dataset.is_empty() {
        // So is the generated default, where it was written.
        cfg.dataset = config::text_path(cfg.dataset_path())?;
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
    } else if agent_cfg.lr_decay_steps > cfg.steps {
        // Often a run's saved config.toml reused with fewer steps: it
        // records the decay that run resolved.
        say(&format!(
            "note: agent.lr_decay_steps = {} is longer than steps = {}: the learning rates end \
             partway down their cosine, above agent.lr_min (0 decays over steps)",
            agent_cfg.lr_decay_steps, cfg.steps
        ));
    }
    let dims = index.dims();
    let batch_bytes = dims.bytes(cfg.batch_size);
    if batch_bytes > MAX_BATCH_BYTES {
        return Err(ConfigError::Invalid(format!(
            "a batch of {} chunks (H {}, To {}, observation {}, action {}) would take {}, \
             more than {}: lower batch_size, horizon or obs_horizon",
            cfg.batch_size,
            dims.horizon,
            dims.obs_horizon,
            dims.obs_dim,
            dims.act_dim,
            gib(batch_bytes),
            gib(MAX_BATCH_BYTES)
        ))
        .into());
    }
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
    if stop.is_stopped() {
        return Err(TrainError::StoppedBeforeStart);
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io("create", dir, e))?;
    let lock = match lock {
        Some(lock) => lock,
        None => {
            let lock = lock_folder(dir)?;
            // Another process may have started a run here since `train`
            // looked.
            if dir.join(CONFIG_FILE).exists() {
                return Err(holds_a_run(dir));
            }
            lock
        }
    };
    // First, so that the clean-up is said (the config's own write would
    // remove a leftover of its file silently).
    remove_stale_temporaries(dir)?;
    crate::fsutil::atomic_write(&dir.join(CONFIG_FILE), |w| {
        std::io::Write::write_all(w, resolved.to_toml().as_bytes())
    })
    .map_err(|e| TrainError::io("write", &dir.join(CONFIG_FILE), e))?;
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
        last_metrics: None,
    }
    .go()
}

/// Removes the half-written temporary files a killed process left in the
/// run folder `dir` (a kill during a first `config.toml` write leaves one
/// in a folder that a new run may then use): those of the run's own files
/// written by replacement, never another program's.
fn remove_stale_temporaries(dir: &Path) -> Result<(), TrainError> {
    let run_files = [
        CONFIG_FILE,
        CHECKPOINT_FILE,
        METRICS_FILE,
        EVAL_FILE,
        SUMMARY_FILE,
    ];
    let stale = crate::fsutil::remove_stale_temporaries(dir, &run_files)
        .map_err(|e| TrainError::io("clean up", dir, e))?;
    if stale > 0 {
        eprintln!(
            "{}: removed {stale} half-written temporary file(s) of a killed process",
            dir.display()
        );
    }
    Ok(())
}

fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
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
    if count > 1 && device.is_cuda() {
        // workers is part of the run (each slice draws its own noise), so a
        // CPU run resumed on a GPU keeps its slices: correct, but slower.
        eprintln!(
            "note: workers = {count} splits each batch into {count} slices, which a GPU runs one \
             after another; a run started on the GPU with workers = 0 uses one"
        );
    }
    Ok(count)
}

impl Run {
    fn go(mut self) -> Result<TrainSummary, TrainError> {
        let cfg = self.cfg.clone();
        let progress = ProgressBar::new(cfg.steps).with_position(self.agent.step());
        // A resumed run's bar starts at the checkpoint's update: the rate
        // estimator records that position now (drawn once in the default
        // style, which shows no rate), so that the updates done before the
        // resume are not counted as done in the first second.
        progress.tick();
        progress.reset_eta();
        progress.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {rate} {msg}")
                .expect("template")
                // One decimal, as the log lines and the final line print it.
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{:.1} steps/s", state.per_sec());
                    },
                ),
        );
        let say = |m: &str| {
            if progress.is_hidden() {
                eprintln!("{m}");
            } else {
                progress.println(m);
            }
        };
        let mut metrics_log = log::Appender::open(&self.dir.join(METRICS_FILE))?;
        let mut eval_log = log::Appender::open(&self.dir.join(EVAL_FILE))?;
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
            // Any NaN or infinity: it would also be written as JSON null,
            // which neither the logs' reader nor a resume reads back.
            if let Some((name, value)) = metrics.first_non_finite() {
                return Err(TrainError::Diverged {
                    step,
                    name,
                    value,
                    critic_loss: metrics.critic_loss,
                    actor_loss: metrics.actor_loss,
                });
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
                metrics_log.append(&MetricsRow {
                    metrics: metrics.clone(),
                    steps_per_second: rate,
                })?;
            }
            let evaluate_now = cfg.evaluates()
                && ((cfg.eval_every > 0 && step.is_multiple_of(cfg.eval_every))
                    || step == cfg.steps);
            if evaluate_now {
                // Only the last evaluation is drawn: only it keeps its steps.
                let (report, recording) = self.evaluate(step == cfg.steps)?;
                say(&format!("step {step}: {report}"));
                eval_log.append(&EvalRow::of(step, &report))?;
                final_eval = Some((report, recording));
            }
            // Read once, so that a stop asked for from here on waits for
            // the next update rather than skipping this one's checkpoint.
            let stopping = step < cfg.steps && self.stop.is_stopped();
            if step.is_multiple_of(cfg.checkpoint_every) || step == cfg.steps || stopping {
                metrics_log.sync()?;
                eval_log.sync()?;
                let state = LoopState {
                    sampler: self.sampler.state(),
                    env: cfg.env.clone(),
                    execute: cfg.execute,
                    config: Some(cfg.clone()),
                    data_fingerprint: Some(self.fingerprint.clone()),
                    last_metrics: Some(metrics),
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
        // A session without updates ends a run that is complete, or one
        // stopped between log rows whose `steps` was lowered to its
        // checkpoint: its last rows are written where they are missing.
        let step = self.agent.step();
        let missing = |file: &str| -> Result<bool, TrainError> {
            Ok(log::last_step(&self.dir.join(file))? < Some(step))
        };
        let last_metrics = self.last_metrics.take().filter(|m| m.step == step);
        if let Some(metrics) = last_metrics.filter(|_| first_step == step)
            && missing(METRICS_FILE)?
        {
            // steps_per_second: this session made no update.
            metrics_log.append(&MetricsRow {
                metrics,
                steps_per_second: 0.0,
            })?;
        }
        let final_eval = match final_eval {
            None if cfg.evaluates() => {
                let (report, recording) = self.evaluate(true)?;
                if missing(EVAL_FILE)? {
                    eval_log.append(&EvalRow::of(step, &report))?;
                }
                Some((report, recording))
            }
            evaluated => evaluated,
        };
        metrics_log.flush()?;
        eval_log.flush()?;
        plot_curves(&self.dir).map_err(TrainError::Plot)?;
        let final_eval = match final_eval {
            Some((report, recording)) => {
                let recording = recording.expect("the final evaluation is recorded");
                plot_rollouts(&recording, &self.dir.join(ROLLOUTS_FILE))
                    .map_err(TrainError::Plot)?;
                Some(report)
            }
            None => None,
        };
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
        // the timing) of the run that did the work, where that summary is
        // of this run's length: one written when the run first completed
        // at fewer steps, before it was extended, stopped and ended at its
        // checkpoint, is replaced.
        let summary_file = self.dir.join(SUMMARY_FILE);
        let summarised_steps = std::fs::read(&summary_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|summary| summary["steps"].as_u64());
        if first_step < cfg.steps || summarised_steps != Some(cfg.steps) {
            let json = serde_json::to_string_pretty(&summary).expect("serialisable");
            crate::fsutil::atomic_write(&summary_file, |w| {
                std::io::Write::write_all(w, json.as_bytes())
            })
            .map_err(|e| TrainError::io("write", &summary_file, e))?;
        }
        Ok(summary)
    }

    /// Evaluation with the same episode seeds every time (common random
    /// numbers across a run's evaluations and across resumes).
    /// `record`: also keep every episode's steps (to draw them).
    fn evaluate(&self, record: bool) -> Result<(EvalReport, Option<Recording>), TrainError> {
        let execute = (self.cfg.execute > 0).then_some(self.cfg.execute);
        let eval = EvalConfig {
            episodes: self.cfg.eval_episodes,
            execute,
            seed: eval_seed(self.cfg.seed),
            ensemble: self.cfg.ensemble,
        };
        let env = &self.cfg.env;
        Ok(match record {
            true => {
                let (report, recording) = evaluate_recorded(&self.agent, env, eval)?;
                (report, Some(recording))
            }
            false => (evaluate(&self.agent, env, eval)?, None),
        })
    }
}

/// How often a run without a terminal prints a progress line (at its
/// next metrics update after this long).
const PLAIN_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Seed of a run's evaluation episodes (disjoint from training data seeds).
pub fn eval_seed(seed: u64) -> u64 {
    crate::env::seed_for(seed, 0xE7A1)
}
