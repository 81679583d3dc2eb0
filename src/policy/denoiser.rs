//! The network a policy denoises chunks with: the flattened-chunk MLP of
//! Diffusion-QL, or the temporal U-Net of Diffusion Policy.

use serde::{Deserialize, Serialize};
use tch::{Tensor, nn, nn::Module};

use crate::chunk::ChunkDims;
use crate::nn::{Mlp, TemporalUnet, TimeEmbedding, UnetConfig};

/// Which network denoises the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetKind {
    /// MLP over [flattened chunk, time embedding, flattened obs history].
    Mlp,
    /// 1-D temporal U-Net over the chunk, FiLM-conditioned on [time, obs].
    Unet,
}

/// Network of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenoiserConfig {
    pub net: NetKind,
    /// MLP hidden widths (Mish). Diffusion-QL: 3 x 256.
    pub hidden: Vec<i64>,
    /// Width of the MLP's time embedding (sinusoidal -> 2x -> Mish -> 1x).
    pub time_dim: i64,
    /// U-Net widths, kernel, groups, time embedding.
    pub unet: UnetConfig,
}

impl Default for DenoiserConfig {
    fn default() -> Self {
        DenoiserConfig {
            net: NetKind::Mlp,
            hidden: vec![256, 256, 256],
            time_dim: 16,
            unet: UnetConfig::default(),
        }
    }
}

/// `(x [B,H,A], time [B], cond [B, To*O]) -> [B,H,A]`.
// Built once per network: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Denoiser {
    Mlp {
        time: TimeEmbedding,
        mlp: Mlp,
        horizon: i64,
        act_dim: i64,
    },
    Unet(TemporalUnet),
}

impl Denoiser {
    pub fn new(p: &nn::Path, dims: ChunkDims, cfg: &DenoiserConfig) -> Self {
        let (h, a) = (dims.horizon as i64, dims.act_dim as i64);
        let cond = dims.cond_dim() as i64;
        match cfg.net {
            NetKind::Mlp => {
                let time = TimeEmbedding::new(&(p / "time"), cfg.time_dim, 2 * cfg.time_dim);
                let input = h * a + cfg.time_dim + cond;
                let mlp = Mlp::new(&(p / "mlp"), input, &cfg.hidden, h * a, false);
                Denoiser::Mlp {
                    time,
                    mlp,
                    horizon: h,
                    act_dim: a,
                }
            }
            NetKind::Unet => Denoiser::Unet(TemporalUnet::new(&(p / "unet"), a, cond, &cfg.unet)),
        }
    }

    /// x: `[B, H, A]`, time: `[B]` (step index or noise-level feature),
    /// cond: `[B, To*O]` -> `[B, H, A]`.
    pub fn forward(&self, x: &Tensor, time: &Tensor, cond: &Tensor) -> Tensor {
        match self {
            Denoiser::Mlp {
                time: embed,
                mlp,
                horizon,
                act_dim,
            } => {
                let b = x.size()[0];
                let input = Tensor::cat(
                    &[x.view([b, -1]), embed.forward(time), cond.shallow_clone()],
                    1,
                );
                mlp.forward(&input).view([b, *horizon, *act_dim])
            }
            Denoiser::Unet(unet) => unet.forward(x, time, cond),
        }
    }
}
