//! The agents: `DiffusionQl` (DDPM policy) and `Cpql` (consistency policy),
//! one generic `ChunkAgent` over the policy, since in DESIGN.md the two differ
//! only in the policy and its behaviour-cloning loss. One `update(batch)`:
//! critic step on the SMDP target, actor step (BC + eta * normalised Q),
//! soft target update, EMA on its schedule, cosine learning-rate decay.

mod any;
mod batch;
mod checkpoint;
mod config;
mod error;
mod optim;
mod policies;
mod step;
mod target;

#[cfg(test)]
mod tests;
mod tracking;
mod workers;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};

pub use any::AnyAgent;
pub use batch::{DeviceNormalizer, OneStepTensors, TensorBatch};
pub use checkpoint::{CheckpointInfo, read_checkpoint_info};
pub use config::{AgentConfig, Algorithm, TargetKind};
pub use error::AgentError;
pub use optim::Adam;
pub use policies::ChunkPolicy;
pub use target::{bellman_target, max_over_samples};
pub use tracking::{Tracking, set_requires_grad};
pub use workers::{MIN_SLICE_ROWS, Workers, auto_workers};

use crate::chunk::{ChunkBatch, ChunkDims, MAX_LENGTH};
use crate::critic::{TwinCritic, full_mask};
use crate::data::Normalizer;
use crate::nn::reset_parameters;
use crate::noise::NoiseSource;
use crate::policy::{ConsistencyPolicy, DiffusionPolicy};

/// Diffusion-QL over chunks: DDPM policy + twin chunk critics.
pub type DiffusionQl = ChunkAgent<DiffusionPolicy>;
/// CPQL over chunks: consistency policy + twin chunk critics.
pub type Cpql = ChunkAgent<ConsistencyPolicy>;

/// What one update measured. Losses are batch means.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Updates done, this one included.
    pub step: u64,
    pub critic_loss: f64,
    pub actor_loss: f64,
    pub bc_loss: f64,
    /// -Q1(s, a_pi) / mean|Q2(s, a_pi)| (0 when eta = 0).
    pub q_loss: f64,
    /// Mean Q1 on the dataset chunks.
    pub q_mean: f64,
    /// Mean critic target y.
    pub target_mean: f64,
    pub critic_grad_norm: f64,
    pub actor_grad_norm: f64,
    /// The actor's learning rate in this update (before the decay step).
    pub actor_lr: f64,
}

impl Metrics {
    /// The first measurement that is NaN or infinite, with its value.
    pub fn first_non_finite(&self) -> Option<(&'static str, f64)> {
        [
            ("critic_loss", self.critic_loss),
            ("actor_loss", self.actor_loss),
            ("bc_loss", self.bc_loss),
            ("q_loss", self.q_loss),
            ("q_mean", self.q_mean),
            ("target_mean", self.target_mean),
            ("critic_grad_norm", self.critic_grad_norm),
            ("actor_grad_norm", self.actor_grad_norm),
            ("actor_lr", self.actor_lr),
        ]
        .into_iter()
        .find(|(_, value)| !value.is_finite())
    }
}

/// Policy P, its EMA copy, twin critics and their targets, two Adams, and the
/// seeded noise stream; everything on `device`.
pub struct ChunkAgent<P: ChunkPolicy> {
    config: AgentConfig,
    dims: ChunkDims,
    normalizer: Normalizer,
    norm: DeviceNormalizer,
    device: Device,
    seed: u64,
    policy_vs: nn::VarStore,
    policy: P,
    ema_vs: nn::VarStore,
    ema: P,
    critic_vs: nn::VarStore,
    critic: TwinCritic,
    target_vs: nn::VarStore,
    target: TwinCritic,
    actor_opt: Adam,
    critic_opt: Adam,
    ema_tracking: Tracking,
    target_tracking: Tracking,
    noise: NoiseSource,
    workers: Workers,
    step: u64,
}

impl<P: ChunkPolicy> ChunkAgent<P> {
    /// A fresh agent. Weights are drawn from `seed` (not from libtorch's
    /// global generator), so the same seed gives the same agent.
    pub fn new(
        config: AgentConfig,
        dims: ChunkDims,
        normalizer: Normalizer,
        device: Device,
        seed: u64,
    ) -> Result<Self, AgentError> {
        config.validate()?;
        check_dims(dims).map_err(AgentError::Config)?;
        normalizer.check().map_err(AgentError::Config)?;
        if normalizer.obs_dim() != dims.obs_dim || normalizer.act_dim() != dims.act_dim {
            return Err(AgentError::Config(format!(
                "normalizer is for observation {} / action {}, the data has {} / {}",
                normalizer.obs_dim(),
                normalizer.act_dim(),
                dims.obs_dim,
                dims.act_dim
            )));
        }
        let mut init = ChaCha8Rng::seed_from_u64(seed);
        init.set_stream(1);

        let policy_vs = nn::VarStore::new(device);
        let policy = P::build(&policy_vs.root(), dims, &config);
        reset_parameters(&policy_vs, &mut init);
        let ema_vs = nn::VarStore::new(device);
        let ema = P::build(&ema_vs.root(), dims, &config);
        let ema_tracking = Tracking::new(&ema_vs, &policy_vs);
        ema_tracking.copy();
        set_requires_grad(&ema_vs, false);

        let critic_vs = nn::VarStore::new(device);
        let critic = TwinCritic::new(&critic_vs.root(), dims, &config.critic);
        reset_parameters(&critic_vs, &mut init);
        let target_vs = nn::VarStore::new(device);
        let target = TwinCritic::new(&target_vs.root(), dims, &config.critic);
        let target_tracking = Tracking::new(&target_vs, &critic_vs);
        target_tracking.copy();
        set_requires_grad(&target_vs, false);

        Ok(ChunkAgent {
            actor_opt: Adam::new(&policy_vs, config.actor_lr),
            critic_opt: Adam::new(&critic_vs, config.critic_lr),
            norm: DeviceNormalizer::new(&normalizer, device),
            noise: NoiseSource::new(seed, device),
            config,
            dims,
            normalizer,
            device,
            seed,
            policy_vs,
            policy,
            ema_vs,
            ema,
            critic_vs,
            critic,
            target_vs,
            target,
            ema_tracking,
            target_tracking,
            workers: Workers::inline(),
            step: 0,
        })
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }
    pub fn dims(&self) -> ChunkDims {
        self.dims
    }
    pub fn normalizer(&self) -> &Normalizer {
        &self.normalizer
    }
    pub fn device(&self) -> Device {
        self.device
    }
    /// Updates done so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Moves and normalises a batch onto the device.
    pub fn tensors(&self, batch: &ChunkBatch) -> TensorBatch {
        TensorBatch::new(batch, &self.norm, self.device, self.config.reward_scale)
    }

    /// Splits each update's batch into `count` slices, each on its own
    /// thread with `intra_op_threads` libtorch threads (1: the whole batch on
    /// the calling thread). The step is the same; only the noise draws and
    /// float summation order depend on `count`. Not saved in checkpoints.
    pub fn set_workers(&mut self, count: usize, intra_op_threads: usize) -> Result<(), AgentError> {
        if !self.workers.are(count, intra_op_threads) {
            self.workers = Workers::new(count, intra_op_threads)?;
        }
        Ok(())
    }

    /// Slices per update (see [`ChunkAgent::set_workers`]).
    pub fn workers(&self) -> usize {
        self.workers.count()
    }

    /// Chunks a' ~ pi_ema( . | s') for the target, k per next state with
    /// max-Q backup: `[B*k, H, A]`, rows grouped by state.
    pub fn next_chunks(&mut self, b: &TensorBatch) -> Tensor {
        step::nets!(self).next_chunks(b, &mut self.noise)
    }

    /// y = R + (1 - done) * discount * max_k min(Q1', Q2')(s', a'_k) with the
    /// target critics, for `next_chunks` `[B*k, H, A]` -> `[B]`.
    pub fn critic_target(&self, b: &TensorBatch, next_chunks: &Tensor) -> Tensor {
        step::nets!(self).critic_target(b, next_chunks)
    }

    /// Critic step: L = mean (Q1 - y)^2 + mean (Q2 - y)^2 with y from
    /// `next_chunks`. Public so that policy evaluation (targets from the
    /// dataset's own next chunks) can drive it.
    pub fn critic_step(&mut self, b: &TensorBatch, next_chunks: &Tensor) -> CriticStats {
        let y = self.critic_target(b, next_chunks);
        let (q1, q2) = self.critic.forward(&b.obs, &b.actions, &b.critic_mask);
        let loss = step::critic_loss(&q1, &q2, &y, b.len());
        self.critic_opt.zero_grad();
        loss.backward();
        let grad_norm = self.critic_opt.clip_grad_norm(self.config.grad_clip);
        self.critic_opt.step();
        CriticStats {
            loss: loss.double_value(&[]),
            q_mean: q1.mean(Kind::Float).double_value(&[]),
            target_mean: y.mean(Kind::Float).double_value(&[]),
            grad_norm: grad_norm.double_value(&[]),
        }
    }

    /// Target critics: soft update with rate tau. EMA policy: every
    /// `ema_every` updates, a copy before `ema_start`, then an EMA step.
    pub(crate) fn update_targets(&mut self) {
        self.target_tracking.lerp(self.config.tau);
        if self.step.is_multiple_of(self.config.ema_every) {
            if self.step < self.config.ema_start {
                self.ema_tracking.copy();
            } else {
                self.ema_tracking.lerp(1.0 - self.config.ema_decay);
            }
        }
    }

    fn set_learning_rates(&mut self) {
        let (cfg, step) = (&self.config, self.step);
        self.actor_opt.set_lr(cosine_lr(
            cfg.actor_lr,
            cfg.lr_min,
            step,
            cfg.lr_decay_steps,
        ));
        self.critic_opt.set_lr(cosine_lr(
            cfg.critic_lr,
            cfg.lr_min,
            step,
            cfg.lr_decay_steps,
        ));
    }

    /// Chunks to execute for raw observation histories `[B, To, O]` (any
    /// device): `[B, H, A]` in raw action units, on the agent's device. With
    /// `best_of_n` > 1, samples that many per state and keeps the chunk with
    /// the highest min(Q1, Q2).
    ///
    /// # Panics
    /// If `obs_history` is not `[B, To, O]` with B >= 1 and the agent's To, O.
    pub fn act(&self, obs_history: &Tensor, noise: &mut NoiseSource) -> Tensor {
        let d = self.dims;
        check_shape(
            "act: obs_history",
            obs_history,
            [d.obs_horizon, d.obs_dim],
            None,
        );
        crate::nn::no_grad(|| {
            let obs = self
                .norm
                .observations(&obs_history.to_device(self.device).to_kind(Kind::Float));
            let policy = if self.config.act_with_ema {
                &self.ema
            } else {
                &self.policy
            };
            let n = self.config.best_of_n as i64;
            let chunks = if n > 1 {
                let batch = obs.size()[0];
                let (h, a) = (self.dims.horizon as i64, self.dims.act_dim as i64);
                let repeated = repeat_rows(&obs, n);
                let candidates = policy.sample(&repeated, noise);
                let mask = full_mask(batch * n, h, self.device);
                let q = self
                    .critic
                    .min(&repeated, &candidates, &mask)
                    .view([batch, n]);
                let best = q
                    .argmax(1, false)
                    .view([batch, 1, 1, 1])
                    .expand([batch, 1, h, a], false);
                candidates
                    .view([batch, n, h, a])
                    .gather(1, &best, false)
                    .squeeze_dim(1)
            } else {
                policy.sample(&obs, noise)
            };
            self.norm.unscale_actions(&chunks)
        })
    }

    /// (Q1, Q2) of raw histories `[B, To, O]` and raw chunks `[B, H, A]` with
    /// a full mask, each `[B]` (for analysis and tests).
    ///
    /// # Panics
    /// If the shapes are not those, with B >= 1 and the agent's dims.
    pub fn q_values(&self, obs_history: &Tensor, chunks: &Tensor) -> (Tensor, Tensor) {
        let d = self.dims;
        let b = check_shape(
            "q_values: obs_history",
            obs_history,
            [d.obs_horizon, d.obs_dim],
            None,
        );
        check_shape("q_values: chunks", chunks, [d.horizon, d.act_dim], Some(b));
        crate::nn::no_grad(|| {
            let on_device = |x: &Tensor| x.to_device(self.device).to_kind(Kind::Float);
            let obs = self.norm.observations(&on_device(obs_history));
            let scaled = self.norm.scale_actions(&on_device(chunks));
            let mask = full_mask(scaled.size()[0], self.dims.horizon as i64, self.device);
            self.critic.forward(&obs, &scaled, &mask)
        })
    }

    /// Every variable of every network the agent holds, with its store name.
    pub fn variables(&self) -> Vec<(&'static str, String, Tensor)> {
        let mut out = Vec::new();
        for (store, vs) in self.stores() {
            let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(named.into_iter().map(|(n, t)| (store, n, t)));
        }
        out
    }

    fn stores(&self) -> [(&'static str, &nn::VarStore); 4] {
        [
            ("policy", &self.policy_vs),
            ("ema", &self.ema_vs),
            ("critic", &self.critic_vs),
            ("target", &self.target_vs),
        ]
    }
}

/// What a critic step measured.
#[derive(Debug, Clone, Copy)]
pub struct CriticStats {
    pub loss: f64,
    pub q_mean: f64,
    pub target_mean: f64,
    pub grad_norm: f64,
}

/// H and To in 1..=[`MAX_LENGTH`], O and A at least 1: what a chunk
/// index guarantees, checked again for dims read from a checkpoint.
fn check_dims(dims: ChunkDims) -> Result<(), String> {
    let lengths = [("horizon", dims.horizon), ("obs_horizon", dims.obs_horizon)];
    for (name, value) in lengths {
        if !(1..=MAX_LENGTH).contains(&value) {
            return Err(format!(
                "dims: {name} must lie in 1..={MAX_LENGTH}, got {value}"
            ));
        }
    }
    for (name, value) in [("obs_dim", dims.obs_dim), ("act_dim", dims.act_dim)] {
        if value < 1 {
            return Err(format!("dims: {name} must be at least 1, got {value}"));
        }
    }
    Ok(())
}

/// Each row of `x` `[B, ...]` repeated k times in place: `[B*k, ...]`.
pub(crate) fn repeat_rows(x: &Tensor, k: i64) -> Tensor {
    if k == 1 {
        x.shallow_clone()
    } else {
        x.repeat_interleave_self_int(k, 0, None)
    }
}

/// lr_min + (lr - lr_min) (1 + cos(pi min(step, T) / T)) / 2; lr when T = 0.
pub fn cosine_lr(lr: f64, lr_min: f64, step: u64, decay_steps: u64) -> f64 {
    if decay_steps == 0 {
        return lr;
    }
    let progress = step.min(decay_steps) as f64 / decay_steps as f64;
    lr_min + 0.5 * (lr - lr_min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Panics, naming what was expected, unless `x` is `[B, rows, width]` with
/// B >= 1 (and B = `batch` where given); returns B. A wrong shape would
/// otherwise fail deep inside libtorch with a message about matrix products.
fn check_shape(what: &str, x: &Tensor, [rows, width]: [usize; 2], batch: Option<i64>) -> i64 {
    let size = x.size();
    let b = size.first().copied().unwrap_or(0);
    let fits = size.len() == 3
        && b >= 1
        && batch.is_none_or(|want| want == b)
        && size[1] == rows as i64
        && size[2] == width as i64;
    let batch = batch.map_or("B >= 1".to_string(), |b| b.to_string());
    assert!(
        fits,
        "{what} has shape {size:?}, expected [{batch}, {rows}, {width}]"
    );
    b
}
