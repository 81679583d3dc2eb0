//! Evaluation: batched rollouts in which the policy emits a chunk and
//! `execute` steps of it are run before it is asked again (default H, the
//! SMDP-consistent choice), or, with temporal ensembling (`ensemble`), is
//! asked at every step and the proposals for each step averaged; returns,
//! normalised scores and success rates with 95% confidence intervals.

mod ensemble;
pub(crate) mod font;
mod plot;
mod reference;
mod stats;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

pub use ensemble::TemporalEnsemble;
pub use plot::plot_rollouts;
pub use reference::{ReferenceReturns, measure_reference, reference_returns};
pub use stats::{MeanCi, mean_ci, t_critical, wilson};

use crate::agent::{ChunkAgent, ChunkPolicy};
use crate::chunk::ChunkDims;
use crate::env::{Env, Scene, UnknownEnv, make, seed_for};
use crate::noise::NoiseSource;

/// Anything that turns observation histories into action chunks.
pub trait ChunkActor {
    fn dims(&self) -> ChunkDims;
    /// obs histories `[B, To, O]` (raw units, CPU) -> chunks `[B, H, A]`
    /// (raw action units).
    fn act(&self, obs_history: &Tensor, noise: &mut NoiseSource) -> Tensor;
    /// Device the actor's noise lives on.
    fn device(&self) -> Device;
}

impl<P: ChunkPolicy> ChunkActor for ChunkAgent<P> {
    fn dims(&self) -> ChunkDims {
        ChunkAgent::dims(self)
    }
    fn act(&self, obs_history: &Tensor, noise: &mut NoiseSource) -> Tensor {
        ChunkAgent::act(self, obs_history, noise)
    }
    fn device(&self) -> Device {
        ChunkAgent::device(self)
    }
}

/// How to evaluate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalConfig {
    pub episodes: usize,
    /// Steps of each chunk executed before re-planning (1..=H); `None` = H.
    pub execute: Option<usize>,
    /// Temporal ensembling with weight decay m ([`TemporalEnsemble`]): a
    /// chunk is asked for at every step and the proposals for a step are
    /// averaged. `execute` must then be `None` or 1.
    pub ensemble: Option<f64>,
    /// Episode k starts from `seed_for(seed, k)`; the policy's noise stream
    /// is seeded with `seed` too.
    pub seed: u64,
}

/// One finished episode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpisodeResult {
    pub episode_return: f64,
    pub length: usize,
    /// Success criterion reached at any step (tasks with one).
    pub success: bool,
}

/// Results of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub env: String,
    pub episodes: Vec<EpisodeResult>,
    pub execute: usize,
    /// Temporal ensembling's m, when the chunks were ensembled.
    pub ensemble: Option<f64>,
    /// Mean undiscounted return with a 95% t interval over episodes.
    pub episode_return: MeanCi,
    /// 100 (R - R_random) / (R_expert - R_random), when the task has
    /// reference returns.
    pub normalized_score: Option<MeanCi>,
    /// Fraction of successful episodes with a 95% Wilson interval, for tasks
    /// with a success criterion.
    pub success_rate: Option<MeanCi>,
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} episode{}",
            self.env,
            self.episodes.len(),
            if self.episodes.len() == 1 { "" } else { "s" },
        )?;
        if let Some(m) = self.ensemble {
            write!(f, " (temporal ensembling, m = {m})")?;
        }
        write!(f, ", return {}", self.episode_return)?;
        if let Some(score) = &self.normalized_score {
            write!(f, ", normalised score {score}")?;
        }
        if let Some(rate) = &self.success_rate {
            write!(f, ", success {rate}")?;
        }
        Ok(())
    }
}

/// What every episode of an evaluation did ([`evaluate_recorded`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub env: String,
    /// How the environment's episodes are drawn.
    pub scene: Scene,
    /// O and A.
    pub obs_dim: usize,
    pub act_dim: usize,
    /// Steps of each chunk executed: a chunk began at steps 0, execute,
    /// 2 execute, ...
    pub execute: usize,
    /// One per episode, in episode order.
    pub rollouts: Vec<Rollout>,
}

/// One episode, step by step.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// `[T + 1, O]`: the first observation, then the one after each step.
    pub observations: Vec<f32>,
    /// `[T, A]`: the actions executed (raw units, before the environment's
    /// clipping to its action box).
    pub actions: Vec<f32>,
    /// The task's success criterion was reached at some step.
    pub success: bool,
}

impl Recording {
    /// Steps of `episode`.
    pub fn steps(&self, episode: usize) -> usize {
        self.rollouts[episode].actions.len() / self.act_dim
    }

    /// The steps of a `steps`-long episode at which a new chunk began.
    pub fn chunk_starts(&self, steps: usize) -> impl Iterator<Item = usize> {
        (0..steps).step_by(self.execute)
    }
}

/// Errors of an evaluation.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    #[error(transparent)]
    UnknownEnv(#[from] UnknownEnv),
    #[error(
        "{env} has observation width {env_obs} and action width {env_act}, the policy {obs} and {act}"
    )]
    DimsMismatch {
        env: String,
        env_obs: usize,
        env_act: usize,
        obs: usize,
        act: usize,
    },
    /// Steps executed per chunk outside `1..=H`.
    #[error("execute must lie in 1..={horizon} (the chunk's length H), got {execute}")]
    Execute { execute: usize, horizon: usize },
    #[error("evaluation needs at least one episode")]
    NoEpisodes,
    #[error(
        "temporal ensembling asks for a chunk at every step: execute must be 1 (or unset), got {execute}"
    )]
    EnsembleExecute { execute: usize },
    #[error("the temporal ensemble's m must be a finite number, got {m}")]
    EnsembleWeight { m: f64 },
    /// The policy proposed a NaN or infinite action (a diverged network).
    #[error(
        "the policy proposed a chunk with a NaN or infinite action for episode {episode} at its \
         step {step}: its network has diverged"
    )]
    NonFiniteChunk { episode: usize, step: usize },
}

/// Checks that `actor` fits `env` (observation and action widths).
pub fn check_dims(env: &dyn Env, dims: ChunkDims) -> Result<(), EvalError> {
    let spec = env.spec();
    if spec.obs_dim != dims.obs_dim || spec.act_dim() != dims.act_dim {
        return Err(EvalError::DimsMismatch {
            env: spec.name.clone(),
            env_obs: spec.obs_dim,
            env_act: spec.act_dim(),
            obs: dims.obs_dim,
            act: dims.act_dim,
        });
    }
    Ok(())
}

/// Rolls `cfg.episodes` episodes of the built-in `env_name` in parallel
/// with `actor`.
pub fn evaluate(
    actor: &dyn ChunkActor,
    env_name: &str,
    cfg: EvalConfig,
) -> Result<EvalReport, EvalError> {
    make(env_name)?;
    evaluate_with(actor, &|| make(env_name).expect("checked above"), cfg)
}

/// Rolls `cfg.episodes` episodes, each in a fresh environment from
/// `make_env`, in parallel with `actor`.
pub fn evaluate_with(
    actor: &dyn ChunkActor,
    make_env: &dyn Fn() -> Box<dyn Env>,
    cfg: EvalConfig,
) -> Result<EvalReport, EvalError> {
    roll(actor, make_env, cfg, false).map(|(report, _)| report)
}

/// [`evaluate`], also keeping every episode's observations and actions
/// (for [`plot_rollouts`]).
pub fn evaluate_recorded(
    actor: &dyn ChunkActor,
    env_name: &str,
    cfg: EvalConfig,
) -> Result<(EvalReport, Recording), EvalError> {
    make(env_name)?;
    evaluate_recorded_with(actor, &|| make(env_name).expect("checked above"), cfg)
}

/// [`evaluate_with`], also keeping every episode's observations and
/// actions (for [`plot_rollouts`]). The report is the one `evaluate_with`
/// returns: recording changes nothing in the episodes.
pub fn evaluate_recorded_with(
    actor: &dyn ChunkActor,
    make_env: &dyn Fn() -> Box<dyn Env>,
    cfg: EvalConfig,
) -> Result<(EvalReport, Recording), EvalError> {
    roll(actor, make_env, cfg, true)
        .map(|(report, recording)| (report, recording.expect("recorded")))
}

fn roll(
    actor: &dyn ChunkActor,
    make_env: &dyn Fn() -> Box<dyn Env>,
    cfg: EvalConfig,
    record: bool,
) -> Result<(EvalReport, Option<Recording>), EvalError> {
    let dims = actor.dims();
    if let Some(m) = cfg.ensemble {
        if !m.is_finite() {
            return Err(EvalError::EnsembleWeight { m });
        }
        if let Some(execute) = cfg.execute.filter(|&e| e != 1) {
            return Err(EvalError::EnsembleExecute { execute });
        }
    }
    let execute = match cfg.ensemble {
        Some(_) => 1,
        None => cfg.execute.unwrap_or(dims.horizon),
    };
    if execute == 0 || execute > dims.horizon {
        return Err(EvalError::Execute {
            execute,
            horizon: dims.horizon,
        });
    }
    if cfg.episodes == 0 {
        return Err(EvalError::NoEpisodes);
    }
    let mut envs: Vec<Box<dyn Env>> = (0..cfg.episodes).map(|_| make_env()).collect();
    check_dims(envs[0].as_ref(), dims)?;
    let (o, a, to, h) = (dims.obs_dim, dims.act_dim, dims.obs_horizon, dims.horizon);

    // histories[k]: [To, O], oldest first; padded with the first observation.
    let mut histories = vec![vec![0f32; to * o]; cfg.episodes];
    let mut obs = vec![0f32; o];
    for (k, env) in envs.iter_mut().enumerate() {
        env.reset(seed_for(cfg.seed, k as u64), &mut obs);
        for row in histories[k].chunks_exact_mut(o) {
            row.copy_from_slice(&obs);
        }
    }
    let mut results: Vec<Option<EpisodeResult>> = vec![None; cfg.episodes];
    let mut running = vec![
        EpisodeResult {
            episode_return: 0.0,
            length: 0,
            success: false
        };
        cfg.episodes
    ];
    let mut rollouts: Vec<Rollout> = match record {
        true => histories
            .iter()
            .map(|h| Rollout {
                observations: h[(to - 1) * o..].to_vec(),
                actions: vec![],
                success: false,
            })
            .collect(),
        false => vec![],
    };
    let mut ensembles: Vec<TemporalEnsemble> = match cfg.ensemble {
        Some(m) => (0..cfg.episodes)
            .map(|_| TemporalEnsemble::new(m, h, a))
            .collect(),
        None => vec![],
    };
    let mut ensembled = vec![0f32; a];
    let mut noise = NoiseSource::new(cfg.seed, actor.device());
    while results.iter().any(Option::is_none) {
        let active: Vec<usize> = (0..cfg.episodes)
            .filter(|&k| results[k].is_none())
            .collect();
        let batch: Vec<f32> = active
            .iter()
            .flat_map(|&k| histories[k].iter().copied())
            .collect();
        let obs_history =
            Tensor::from_slice(&batch).view([active.len() as i64, to as i64, o as i64]);
        let chunks = actor
            .act(&obs_history, &mut noise)
            .to_device(Device::Cpu)
            .to_kind(Kind::Float);
        assert_eq!(
            chunks.size(),
            [active.len() as i64, h as i64, a as i64],
            "the actor's chunks: [B, H, A]"
        );
        let chunks: Vec<f32> = Vec::try_from(chunks.flatten(0, -1)).expect("chunks are f32");
        // A NaN action would run on silently (a maze's point turns NaN and
        // the episode scores like a poor policy): refused, where it arose.
        if let Some(row) = chunks
            .chunks_exact(h * a)
            .position(|c| c.iter().any(|x| !x.is_finite()))
        {
            let episode = active[row];
            return Err(EvalError::NonFiniteChunk {
                episode,
                step: running[episode].length,
            });
        }
        for (row, &k) in active.iter().enumerate() {
            for step in 0..execute {
                let mut action = &chunks[(row * h + step) * a..(row * h + step + 1) * a];
                if let Some(ensemble) = ensembles.get_mut(k) {
                    ensemble.step(&chunks[row * h * a..(row + 1) * h * a], &mut ensembled);
                    action = &ensembled;
                }
                let result = envs[k].step(action, &mut obs);
                let episode = &mut running[k];
                episode.episode_return += result.reward;
                episode.length += 1;
                episode.success |= result.success;
                histories[k].rotate_left(o);
                histories[k][(to - 1) * o..].copy_from_slice(&obs);
                if let Some(rollout) = rollouts.get_mut(k) {
                    rollout.actions.extend_from_slice(action);
                    rollout.observations.extend_from_slice(&obs);
                    rollout.success = episode.success;
                }
                if result.terminated || result.truncated {
                    results[k] = Some(*episode);
                    break;
                }
            }
        }
    }
    let episodes: Vec<EpisodeResult> = results.into_iter().map(|r| r.expect("finished")).collect();
    let returns: Vec<f64> = episodes.iter().map(|e| e.episode_return).collect();
    let spec = envs[0].spec();
    let normalized_score = reference_returns(&spec.name).map(|refs| {
        mean_ci(
            &returns
                .iter()
                .map(|&r| refs.normalize(r))
                .collect::<Vec<_>>(),
        )
    });
    let success_rate = spec.has_success.then(|| {
        wilson(
            episodes.iter().filter(|e| e.success).count(),
            episodes.len(),
        )
    });
    let recording = record.then(|| Recording {
        env: spec.name.clone(),
        scene: envs[0].scene(),
        obs_dim: o,
        act_dim: a,
        execute,
        rollouts,
    });
    let report = EvalReport {
        env: spec.name.clone(),
        execute,
        ensemble: cfg.ensemble,
        episode_return: mean_ci(&returns),
        normalized_score,
        success_rate,
        episodes,
    };
    Ok((report, recording))
}
