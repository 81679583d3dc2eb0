//! DDPM diffusion policy over `[H, A]` chunks (Diffusion-QL's, with its VP
//! schedule): epsilon prediction, x0 clipped to the action bounds [-1, 1] at
//! every reverse step, gradients through every step when grad mode is on.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

use super::denoiser::{Denoiser, DenoiserConfig};
use crate::chunk::ChunkDims;
use crate::noise::NoiseSource;

/// DDPM settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffusionConfig {
    /// T, denoising steps (Diffusion-QL: 5).
    pub steps: usize,
    /// VP schedule's beta_min and beta_max.
    pub beta_min: f64,
    pub beta_max: f64,
    pub net: DenoiserConfig,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        DiffusionConfig {
            steps: 5,
            beta_min: 0.1,
            beta_max: 10.0,
            net: DenoiserConfig::default(),
        }
    }
}

/// The VP schedule: for t = 1..=T,
/// alpha_t = exp(-b_min/T - (b_max - b_min)(2t - 1) / (2 T^2)), beta_t = 1 - alpha_t.
pub fn vp_betas(steps: usize, beta_min: f64, beta_max: f64) -> Vec<f64> {
    let t_max = steps as f64;
    (1..=steps)
        .map(|t| {
            let t = t as f64;
            let alpha = (-beta_min / t_max
                - 0.5 * (beta_max - beta_min) * (2.0 * t - 1.0) / (t_max * t_max))
                .exp();
            1.0 - alpha
        })
        .collect()
}

/// Every coefficient DDPM needs, per step index i = 0..T-1 (host, f64).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    pub sqrt_alphas_cumprod: Vec<f64>,
    pub sqrt_one_minus_alphas_cumprod: Vec<f64>,
    pub sqrt_recip_alphas_cumprod: Vec<f64>,
    pub sqrt_recipm1_alphas_cumprod: Vec<f64>,
    /// log(max(posterior variance, 1e-20)).
    pub posterior_log_variance: Vec<f64>,
    /// Posterior mean = coef1 * x0 + coef2 * x_t.
    pub posterior_mean_coef1: Vec<f64>,
    pub posterior_mean_coef2: Vec<f64>,
}

impl Schedule {
    pub fn new(betas: Vec<f64>) -> Self {
        let mut abar = Vec::with_capacity(betas.len());
        let mut acc = 1.0;
        for b in &betas {
            acc *= 1.0 - b;
            abar.push(acc);
        }
        let abar_prev: Vec<f64> = std::iter::once(1.0)
            .chain(abar.iter().copied())
            .take(betas.len())
            .collect();
        let each = |f: &dyn Fn(usize) -> f64| (0..betas.len()).map(f).collect::<Vec<f64>>();
        Schedule {
            sqrt_alphas_cumprod: each(&|i| abar[i].sqrt()),
            sqrt_one_minus_alphas_cumprod: each(&|i| (1.0 - abar[i]).sqrt()),
            sqrt_recip_alphas_cumprod: each(&|i| (1.0 / abar[i]).sqrt()),
            sqrt_recipm1_alphas_cumprod: each(&|i| (1.0 / abar[i] - 1.0).sqrt()),
            posterior_log_variance: each(&|i| {
                (betas[i] * (1.0 - abar_prev[i]) / (1.0 - abar[i]))
                    .max(1e-20)
                    .ln()
            }),
            posterior_mean_coef1: each(&|i| betas[i] * abar_prev[i].sqrt() / (1.0 - abar[i])),
            posterior_mean_coef2: each(&|i| {
                (1.0 - abar_prev[i]) * (1.0 - betas[i]).sqrt() / (1.0 - abar[i])
            }),
            alphas_cumprod: abar,
            betas,
        }
    }

    /// The first coefficient (name, step index, value) that is not a finite
    /// number representable in float32, the precision the policy computes
    /// in; `None` when every one is. Betas too large drive alpha_bar so
    /// close to 0 (or, once alpha_t = exp(...) is below f64's epsilon, to 0
    /// exactly: beta_t rounds to 1) that 1 / sqrt(alpha_bar) overflows; betas
    /// too small round alpha_t to 1 and 1 - alpha_bar to 0.
    pub fn first_unusable(&self) -> Option<(&'static str, usize, f64)> {
        let tables: [(&'static str, &[f64]); 9] = [
            ("betas", &self.betas),
            ("alphas_cumprod", &self.alphas_cumprod),
            ("sqrt_alphas_cumprod", &self.sqrt_alphas_cumprod),
            (
                "sqrt_one_minus_alphas_cumprod",
                &self.sqrt_one_minus_alphas_cumprod,
            ),
            ("sqrt_recip_alphas_cumprod", &self.sqrt_recip_alphas_cumprod),
            (
                "sqrt_recipm1_alphas_cumprod",
                &self.sqrt_recipm1_alphas_cumprod,
            ),
            ("posterior_log_variance", &self.posterior_log_variance),
            ("posterior_mean_coef1", &self.posterior_mean_coef1),
            ("posterior_mean_coef2", &self.posterior_mean_coef2),
        ];
        tables.into_iter().find_map(|(name, values)| {
            values
                .iter()
                .position(|v| !(v.is_finite() && v.abs() <= f32::MAX as f64))
                .map(|i| (name, i, values[i]))
        })
    }
}

/// DDPM policy pi(chunk | obs history).
#[derive(Debug)]
pub struct DiffusionPolicy {
    net: Denoiser,
    schedule: Schedule,
    /// `[T]` on the device, for the per-sample gather of the BC loss.
    sqrt_abar: Tensor,
    sqrt_one_minus_abar: Tensor,
    dims: ChunkDims,
}

impl DiffusionPolicy {
    pub fn new(p: &nn::Path, dims: ChunkDims, cfg: &DiffusionConfig) -> Self {
        let schedule = Schedule::new(vp_betas(cfg.steps, cfg.beta_min, cfg.beta_max));
        let on_device = |v: &[f64]| {
            Tensor::from_slice(v)
                .to_kind(Kind::Float)
                .to_device(p.device())
        };
        DiffusionPolicy {
            net: Denoiser::new(&(p / "net"), dims, &cfg.net),
            sqrt_abar: on_device(&schedule.sqrt_alphas_cumprod),
            sqrt_one_minus_abar: on_device(&schedule.sqrt_one_minus_alphas_cumprod),
            schedule,
            dims,
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Noise-prediction MSE at a uniform random step per sample:
    /// obs `[B, To*O]`, actions `[B, H, A]` in [-1, 1] -> scalar.
    pub fn bc_loss(&self, obs: &Tensor, actions: &Tensor, noise: &mut NoiseSource) -> Tensor {
        let b = actions.size()[0];
        let t = noise.integers(b as usize, self.schedule.betas.len() as i64);
        let eps = noise.normal(&actions.size());
        let coef = |table: &Tensor| table.index_select(0, &t).view([b, 1, 1]);
        let noisy = actions * coef(&self.sqrt_abar) + &eps * coef(&self.sqrt_one_minus_abar);
        let predicted = self.net.forward(&noisy, &t.to_kind(Kind::Float), obs);
        (predicted - eps).square().mean(Kind::Float)
    }

    /// Reverse diffusion from N(0, I): obs `[B, To*O]` -> chunks `[B, H, A]`
    /// in [-1, 1].
    pub fn sample(&self, obs: &Tensor, noise: &mut NoiseSource) -> Tensor {
        let b = obs.size()[0];
        let shape = [b, self.dims.horizon as i64, self.dims.act_dim as i64];
        let s = &self.schedule;
        let mut x = noise.normal(&shape);
        for i in (0..s.betas.len()).rev() {
            let t = Tensor::full([b], i as f64, (Kind::Float, obs.device()));
            let eps = self.net.forward(&x, &t, obs);
            let x0 = (&x * s.sqrt_recip_alphas_cumprod[i] - eps * s.sqrt_recipm1_alphas_cumprod[i])
                .clamp(-1.0, 1.0);
            let mean = x0 * s.posterior_mean_coef1[i] + &x * s.posterior_mean_coef2[i];
            x = if i > 0 {
                mean + noise.normal(&shape) * (0.5 * s.posterior_log_variance[i]).exp()
            } else {
                mean
            };
        }
        x.clamp(-1.0, 1.0)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod schedule_tests;
