//! `AgentConfig`: every setting of the two agents, with documented defaults
//! (Diffusion-QL's where it has one), and its validation.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::AgentError;
use crate::critic::CriticConfig;
use crate::nn::UnetConfig;
use crate::policy::{
    ConsistencyConfig, DenoiserConfig, DiffusionConfig, Schedule, karras_sigmas, vp_betas,
};

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
    /// `"consistency"` for Diffusion-QL) when it alone was changed from its
    /// defaults: most likely a setting meant for the agent's own section. (A
    /// config that sets both sections, to serve both agents, is not flagged.)
    pub fn ignored_section(&self, algorithm: Algorithm) -> Option<&'static str> {
        let diffusion_set = self.diffusion != DiffusionConfig::default();
        let consistency_set = self.consistency != ConsistencyConfig::default();
        match algorithm {
            Algorithm::Cpql if diffusion_set && !consistency_set => Some("diffusion"),
            Algorithm::Dql if consistency_set && !diffusion_set => Some("consistency"),
            _ => None,
        }
    }

    /// Rejects settings that cannot train, naming the field (its key under
    /// `agent.`): every check runs before any network or schedule is built,
    /// so a bad value is an error here and never a panic in libtorch.
    pub fn validate(&self) -> Result<(), AgentError> {
        self.check().map_err(AgentError::Config)
    }

    // `!(x >= 0.0)` on purpose: NaN fails every check.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn check(&self) -> Result<(), String> {
        let bad = |field: &str, why: String| Err(format!("{field}: {why}"));
        let positive = [("actor_lr", self.actor_lr), ("critic_lr", self.critic_lr)];
        for (field, value) in positive {
            if !(value > 0.0 && value.is_finite()) {
                return bad(field, format!("must be a positive number, got {value}"));
            }
        }
        if !(self.lr_min >= 0.0) {
            return bad("lr_min", format!("must be >= 0, got {}", self.lr_min));
        }
        if self.lr_min > self.actor_lr || self.lr_min > self.critic_lr {
            return Err(format!(
                "lr_min ({}) must not exceed actor_lr ({}) and critic_lr ({})",
                self.lr_min, self.actor_lr, self.critic_lr
            ));
        }
        if !(self.eta >= 0.0 && self.eta.is_finite()) {
            return bad("eta", format!("must be >= 0, got {}", self.eta));
        }
        if !(self.tau > 0.0 && self.tau <= 1.0) {
            return bad("tau", format!("must lie in (0, 1], got {}", self.tau));
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return bad(
                "grad_clip",
                format!(
                    "must be a finite number >= 0 (0: no clipping), got {}",
                    self.grad_clip
                ),
            );
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
        // Positive: a negative scale would turn the critic's maximisation
        // into a minimisation of the return.
        if !(self.reward_scale.is_finite() && self.reward_scale > 0.0) {
            return bad(
                "reward_scale",
                format!("must be a positive number, got {}", self.reward_scale),
            );
        }
        check_diffusion(&self.diffusion)?;
        check_consistency(&self.consistency)?;
        check_denoiser("diffusion.net", &self.diffusion.net)?;
        check_denoiser("consistency.net", &self.consistency.net)?;
        check_critic(&self.critic)
    }
}

/// The widest layer (and the largest dimension of any kind: embedding
/// width, kernel, groups) a config may ask for. Far wider than any network
/// here, it turns a typo such as `1e11` into an error instead of an
/// allocation failure inside libtorch.
const MAX_WIDTH: i64 = 65536;

/// The most diffusion steps or consistency noise levels: their schedules
/// are tables of this length, built (and checked) before training.
const MAX_STEPS: usize = 100_000;

/// Every width of `widths` in 1..=MAX_WIDTH (an empty list is valid: a
/// linear network).
fn check_widths(key: &str, widths: &[i64]) -> Result<(), String> {
    match widths.iter().find(|w| !(1..=MAX_WIDTH).contains(*w)) {
        Some(w) => Err(format!(
            "{key}: every width must lie in 1..={MAX_WIDTH}, got {w}"
        )),
        None => Ok(()),
    }
}

/// `value` in min..=MAX_WIDTH.
fn check_dim(key: &str, value: i64, min: i64) -> Result<(), String> {
    if (min..=MAX_WIDTH).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{key}: must lie in {min}..={MAX_WIDTH}, got {value}"
        ))
    }
}

/// A sinusoidal embedding's width: even, in 4..=MAX_WIDTH
/// (`crate::nn::sinusoidal` asserts it).
fn check_embedding_dim(key: &str, value: i64) -> Result<(), String> {
    if (4..=MAX_WIDTH).contains(&value) && value % 2 == 0 {
        Ok(())
    } else {
        Err(format!(
            "{key}: must be even and lie in 4..={MAX_WIDTH}, got {value}"
        ))
    }
}

/// Steps, betas, and the VP schedule they give: every coefficient must be
/// a finite float32.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn check_diffusion(d: &DiffusionConfig) -> Result<(), String> {
    if !(1..=MAX_STEPS).contains(&d.steps) {
        return Err(format!(
            "diffusion.steps: must lie in 1..={MAX_STEPS}, got {}",
            d.steps
        ));
    }
    if !(d.beta_min > 0.0 && d.beta_min.is_finite()) {
        return Err(format!(
            "diffusion.beta_min: must be a positive finite number, got {}",
            d.beta_min
        ));
    }
    if !(d.beta_max > d.beta_min && d.beta_max.is_finite()) {
        return Err(format!(
            "diffusion.beta_max: must be finite and greater than beta_min ({}), got {}",
            d.beta_min, d.beta_max
        ));
    }
    let schedule = Schedule::new(vp_betas(d.steps, d.beta_min, d.beta_max));
    if let Some((name, i, value)) = schedule.first_unusable() {
        return Err(format!(
            "diffusion.beta_min/beta_max: with beta_min = {}, beta_max = {} and {} steps the \
             VP schedule's {name}[{i}] = {value:e} is not a finite float32 (betas this \
             large drive alpha_bar to 0; betas this small round beta_t to 0)",
            d.beta_min, d.beta_max, d.steps
        ));
    }
    Ok(())
}

/// The smallest and largest noise level (and sigma_data) a consistency
/// policy accepts: it squares them, and divides by the square, in float32.
const SIGMA_RANGE: (f64, f64) = (1e-18, 1e18);

/// Noise levels, sigma_data, rho, the number of levels and of sampling
/// steps; the Karras levels must run from sigma_max down to sigma_min.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn check_consistency(c: &ConsistencyConfig) -> Result<(), String> {
    if !(2..=MAX_STEPS).contains(&c.scales) {
        return Err(format!(
            "consistency.scales: must lie in 2..={MAX_STEPS}, got {}",
            c.scales
        ));
    }
    let (lo, hi) = SIGMA_RANGE;
    for (field, value) in [
        ("sigma_min", c.sigma_min),
        ("sigma_max", c.sigma_max),
        ("sigma_data", c.sigma_data),
    ] {
        if !(value >= lo && value <= hi) {
            return Err(format!(
                "consistency.{field}: must lie in [{lo:e}, {hi:e}] (it is squared in float32), got {value}"
            ));
        }
    }
    if !(c.sigma_max > c.sigma_min) {
        return Err(format!(
            "consistency.sigma_max: must be greater than sigma_min ({}), got {}",
            c.sigma_min, c.sigma_max
        ));
    }
    if !(c.rho > 0.0 && c.rho.is_finite()) {
        return Err(format!(
            "consistency.rho: must be a positive finite number, got {}",
            c.rho
        ));
    }
    let ends = karras_sigmas(2, c.sigma_min, c.sigma_max, c.rho);
    let close = |got: f64, want: f64| (got - want).abs() <= 1e-3 * want;
    if !(close(ends[0], c.sigma_max) && close(ends[1], c.sigma_min)) {
        return Err(format!(
            "consistency.rho: with rho = {} the Karras levels run from {:e} to {:e} instead \
             of sigma_max = {} to sigma_min = {} (sigma^(1/rho) over- or underflows)",
            c.rho, ends[0], ends[1], c.sigma_max, c.sigma_min
        ));
    }
    if c.sample_steps == 0 || c.sample_steps > c.scales {
        return Err(format!(
            "consistency.sample_steps: must lie in 1..={}, got {}",
            c.scales, c.sample_steps
        ));
    }
    Ok(())
}

/// A policy network: MLP widths, its time embedding, the U-Net settings.
fn check_denoiser(key: &str, net: &DenoiserConfig) -> Result<(), String> {
    check_widths(&format!("{key}.hidden"), &net.hidden)?;
    check_embedding_dim(&format!("{key}.time_dim"), net.time_dim)?;
    check_unet(&format!("{key}.unet"), &net.unet)
}

/// The critic: head and state-encoder widths, the state embedding's width
/// (the U-Net encoder's conditioning, at least 1), the encoder's settings.
fn check_critic(critic: &CriticConfig) -> Result<(), String> {
    check_widths("critic.hidden", &critic.hidden)?;
    check_widths("critic.state_hidden", &critic.state_hidden)?;
    check_dim("critic.state_dim", critic.state_dim, 1)?;
    check_unet("critic.unet", &critic.unet)
}

/// Ranges of the U-Net's numbers, then [`UnetConfig::validate`]'s rules
/// (levels, widths divisible by n_groups, odd kernel).
fn check_unet(key: &str, unet: &UnetConfig) -> Result<(), String> {
    check_widths(&format!("{key}.down_dims"), &unet.down_dims)?;
    check_dim(&format!("{key}.kernel_size"), unet.kernel_size, 1)?;
    check_dim(&format!("{key}.n_groups"), unet.n_groups, 1)?;
    check_embedding_dim(&format!("{key}.time_embed_dim"), unet.time_embed_dim)?;
    unet.validate().map_err(|message| {
        let message = message.strip_prefix("unet: ").unwrap_or(&message);
        format!("{key}: {message}")
    })
}

#[cfg(test)]
mod tests;
