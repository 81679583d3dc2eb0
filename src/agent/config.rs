//! `AgentConfig`: every setting of the two agents, with documented defaults
//! (Diffusion-QL's where it has one), and its validation.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::AgentError;
use crate::critic::CriticConfig;
use crate::policy::{ConsistencyConfig, DiffusionConfig};

/// Which agent: Diffusion-QL (DDPM policy) or CPQL (consistency policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Dql,
    Cpql,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Dql => "dql",
            Algorithm::Cpql => "cpql",
        })
    }
}

/// The critic's Bellman target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// y = R_chunk + (1 - done_chunk) gamma^tau min Q'(s_{t+tau}, a') (DESIGN.md 1).
    Smdp,
    /// Ablation only: y = r_t + (1 - terminal_t) gamma min Q'(s_{t+1}, a'), the
    /// target of a naive implementation that ignores the chunk's length.
    OneStep,
}

/// Settings of `DiffusionQl` and `Cpql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub target: TargetKind,
    /// Adam learning rates.
    pub actor_lr: f64,
    pub critic_lr: f64,
    /// Cosine decay of both learning rates to `lr_min` over this many updates;
    /// 0 keeps them constant. The training loop sets it to its step count.
    pub lr_decay_steps: u64,
    pub lr_min: f64,
    /// Weight of the normalised Q term in the actor loss.
    pub eta: f64,
    /// Soft update rate of the target critics, per update.
    pub tau: f64,
    /// Gradient 2-norm clip for actor and critic; 0 turns clipping off.
    pub grad_clip: f64,
    /// EMA policy: decay, applied every `ema_every` updates once
    /// `ema_start` updates are done; before that the EMA copies the policy.
    pub ema_decay: f64,
    pub ema_every: u64,
    pub ema_start: u64,
    /// Max-Q backup: sample this many chunks per next state and back up the
    /// max over them of the min over critics.
    pub max_q_backup: bool,
    pub max_q_samples: usize,
    /// Acting: sample this many chunks and keep the one with the highest
    /// min(Q1, Q2); 1 samples once.
    pub best_of_n: usize,
    /// Act with the EMA policy (else the online one).
    pub act_with_ema: bool,
    /// Rewards are multiplied by this before training.
    pub reward_scale: f64,
    pub diffusion: DiffusionConfig,
    pub consistency: ConsistencyConfig,
    pub critic: CriticConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            target: TargetKind::Smdp,
            actor_lr: 3e-4,
            critic_lr: 3e-4,
            lr_decay_steps: 0,
            lr_min: 0.0,
            eta: 1.0,
            tau: 0.005,
            grad_clip: 5.0,
            ema_decay: 0.995,
            ema_every: 5,
            ema_start: 1000,
            max_q_backup: false,
            max_q_samples: 10,
            best_of_n: 1,
            act_with_ema: true,
            reward_scale: 1.0,
            diffusion: DiffusionConfig::default(),
            consistency: ConsistencyConfig::default(),
            critic: CriticConfig::default(),
        }
    }
}

impl AgentConfig {
    /// The policy section `algorithm` does not read (`"diffusion"` for CPQL,
    /// `"consistency"` for Diffusion-QL) when it differs from its defaults:
    /// most likely a setting meant for the other agent.
    pub fn ignored_section(&self, algorithm: Algorithm) -> Option<&'static str> {
        match algorithm {
            Algorithm::Cpql if self.diffusion != DiffusionConfig::default() => Some("diffusion"),
            Algorithm::Dql if self.consistency != ConsistencyConfig::default() => {
                Some("consistency")
            }
            _ => None,
        }
    }

    /// Rejects settings that cannot train, naming the field.
    // `!(x >= 0.0)` on purpose: NaN fails every check.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn validate(&self) -> Result<(), AgentError> {
        let bad = |field: &str, why: String| Err(AgentError::Config(format!("{field}: {why}")));
        let positive = [("actor_lr", self.actor_lr), ("critic_lr", self.critic_lr)];
        for (field, value) in positive {
            if !(value > 0.0 && value.is_finite()) {
                return bad(field, format!("must be a positive number, got {value}"));
            }
        }
        if !(self.lr_min >= 0.0) {
            return bad("lr_min", format!("must be >= 0, got {}", self.lr_min));
        }
        if !(self.eta >= 0.0 && self.eta.is_finite()) {
            return bad("eta", format!("must be >= 0, got {}", self.eta));
        }
        if !(self.tau > 0.0 && self.tau <= 1.0) {
            return bad("tau", format!("must lie in (0, 1], got {}", self.tau));
        }
        if !(self.grad_clip >= 0.0) {
            return bad("grad_clip", format!("must be >= 0, got {}", self.grad_clip));
        }
        if !(self.ema_decay >= 0.0 && self.ema_decay < 1.0) {
            return bad(
                "ema_decay",
                format!("must lie in [0, 1), got {}", self.ema_decay),
            );
        }
        if self.ema_every == 0 {
            return bad("ema_every", "must be at least 1".into());
        }
        if self.max_q_samples == 0 {
            return bad("max_q_samples", "must be at least 1".into());
        }
        if self.best_of_n == 0 {
            return bad("best_of_n", "must be at least 1".into());
        }
        if !(self.reward_scale.is_finite() && self.reward_scale != 0.0) {
            return bad(
                "reward_scale",
                format!("must be a non-zero number, got {}", self.reward_scale),
            );
        }
        let d = &self.diffusion;
        if d.steps == 0 {
            return bad("diffusion.steps", "must be at least 1".into());
        }
        if !(d.beta_min > 0.0 && d.beta_max > d.beta_min) {
            return bad(
                "diffusion.beta_min/beta_max",
                "need 0 < beta_min < beta_max".into(),
            );
        }
        let c = &self.consistency;
        if c.scales < 2 {
            return bad("consistency.scales", "must be at least 2".into());
        }
        if !(c.sigma_min > 0.0 && c.sigma_max > c.sigma_min && c.sigma_data > 0.0 && c.rho > 0.0) {
            return bad(
                "consistency",
                "need 0 < sigma_min < sigma_max, sigma_data > 0, rho > 0".into(),
            );
        }
        if c.sample_steps == 0 || c.sample_steps > c.scales {
            return bad(
                "consistency.sample_steps",
                format!("must lie in 1..={}", c.scales),
            );
        }
        for (field, net) in [("diffusion.net", &d.net), ("consistency.net", &c.net)] {
            if net.time_dim < 4 || net.time_dim % 2 != 0 {
                return bad(
                    &format!("{field}.time_dim"),
                    "must be even and at least 4".into(),
                );
            }
            net.unet
                .validate()
                .or_else(|e| bad(&format!("{field}.unet"), e))?;
        }
        self.critic
            .unet
            .validate()
            .or_else(|e| bad("critic.unet", e))?;
        Ok(())
    }
}
