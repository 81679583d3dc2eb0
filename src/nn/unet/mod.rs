//! Diffusion Policy's ConditionalUnet1D over an action chunk, and its down
//! path as a FiLM-conditioned sequence encoder for the critic.
//!
//! Blocks (docs/reference-notes.md 3.1): `Conv1dBlock` = Conv1d -> GroupNorm
//! -> Mish; `ResBlock` = Conv1dBlock, FiLM `scale * h + bias` from the
//! conditioning vector, Conv1dBlock, plus a residual; `Downsample1d` = Conv1d
//! (k 3, stride 2); `Upsample1d` = ConvTranspose1d (k 4, stride 2).
//!
//! Unlike DP, any chunk length H works: the chunk is padded inside the network
//! along time to the next multiple of 2^(L-1) (L = `down_dims.len()`) by
//! repeating its last step, and the U-Net's output is cropped back to H.
//! Tensors are `[B, H, C]` at the API and `[B, C, T]` inside.

use tch::{Tensor, nn, nn::Module};

use super::TimeEmbedding;

#[cfg(test)]
mod tests;

/// Widths and kernel of the U-Net / encoder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnetConfig {
    /// Channel widths per level (each a multiple of n_groups). Default [64, 128, 256] (small, for CPU).
    pub down_dims: Vec<i64>,
    /// Conv kernel size (odd). Default 5.
    pub kernel_size: i64,
    /// GroupNorm groups. Default 8.
    pub n_groups: i64,
    /// Width of the diffusion-step embedding (sinusoidal -> Linear 4x -> Mish -> Linear). Default 64.
    pub time_embed_dim: i64,
}

impl Default for UnetConfig {
    fn default() -> Self {
        UnetConfig {
            down_dims: vec![64, 128, 256],
            kernel_size: 5,
            n_groups: 8,
            time_embed_dim: 64,
        }
    }
}

/// Most levels a U-Net may have: the chunk is padded to 2^(levels - 1)
/// steps, 2048 at this many.
pub const MAX_LEVELS: usize = 12;

impl UnetConfig {
    /// Checks the config (1..=`MAX_LEVELS` levels in down_dims, widths divisible by n_groups, kernel odd >= 1, time_embed_dim even >= 4) and returns a one-line error message otherwise.
    pub fn validate(&self) -> Result<(), String> {
        if self.down_dims.is_empty() || self.down_dims.len() > MAX_LEVELS {
            return Err(format!(
                "unet: down_dims must name 1..={MAX_LEVELS} levels, got {}",
                self.down_dims.len()
            ));
        }
        if self.n_groups < 1 {
            return Err(format!(
                "unet: n_groups must be >= 1, got {}",
                self.n_groups
            ));
        }
        if let Some(&bad) = self
            .down_dims
            .iter()
            .find(|&&d| d < 1 || d % self.n_groups != 0)
        {
            return Err(format!(
                "unet: every width of down_dims {:?} must be a positive multiple of n_groups = {}, got {bad}",
                self.down_dims, self.n_groups
            ));
        }
        if self.kernel_size < 1 || self.kernel_size % 2 == 0 {
            return Err(format!(
                "unet: kernel_size must be odd and >= 1, got {}",
                self.kernel_size
            ));
        }
        if self.time_embed_dim < 4 || self.time_embed_dim % 2 != 0 {
            return Err(format!(
                "unet: time_embed_dim must be even and >= 4, got {}",
                self.time_embed_dim
            ));
        }
        Ok(())
    }

    /// The time axis is padded to a multiple of this: 2^(L-1), one halving per downsample.
    fn length_multiple(&self) -> i64 {
        1 << (self.down_dims.len() - 1)
    }

    fn validated(&self) -> &Self {
        if let Err(msg) = self.validate() {
            panic!("{msg}");
        }
        self
    }
}

/// `[B, in, T] -> [B, out, T]`: Conv1d(in, out, k, padding k/2) -> GroupNorm -> Mish.
#[derive(Debug)]
struct Conv1dBlock {
    conv: nn::Conv1D,
    norm: nn::GroupNorm,
}

impl Conv1dBlock {
    fn new(p: &nn::Path, cin: i64, cout: i64, cfg: &UnetConfig) -> Self {
        let k = cfg.kernel_size;
        let conv_cfg = nn::ConvConfig {
            padding: k / 2,
            ..Default::default()
        };
        Conv1dBlock {
            conv: nn::conv1d(p / "conv", cin, cout, k, conv_cfg),
            norm: nn::group_norm(p / "norm", cfg.n_groups, cout, Default::default()),
        }
    }
}

impl Module for Conv1dBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::nn::mish(&self.norm.forward(&self.conv.forward(x)))
    }
}

/// DP's ConditionalResidualBlock1D with `cond_predict_scale`:
/// `x: [B, in, T], cond: [B, cond_dim] -> [B, out, T]`,
/// `block1(scale * block0(x) + bias) + residual(x)` with
/// `[scale, bias] = Linear(Mish(cond))` (plain scale, not `1 + scale`).
#[derive(Debug)]
struct ResBlock {
    out: i64,
    block0: Conv1dBlock,
    block1: Conv1dBlock,
    film: nn::Linear,
    /// 1x1 conv when in != out, identity otherwise.
    residual: Option<nn::Conv1D>,
}

impl ResBlock {
    fn new(p: &nn::Path, cin: i64, cout: i64, cond_dim: i64, cfg: &UnetConfig) -> Self {
        ResBlock {
            out: cout,
            block0: Conv1dBlock::new(&(p / "block0"), cin, cout, cfg),
            block1: Conv1dBlock::new(&(p / "block1"), cout, cout, cfg),
            film: nn::linear(p / "film", cond_dim, 2 * cout, Default::default()),
            residual: (cin != cout)
                .then(|| nn::conv1d(p / "residual", cin, cout, 1, Default::default())),
        }
    }

    fn forward(&self, x: &Tensor, cond: &Tensor) -> Tensor {
        let film = self.film.forward(&crate::nn::mish(cond)).unsqueeze(-1); // [B, 2 out, 1]
        let scale = film.narrow(1, 0, self.out);
        let bias = film.narrow(1, self.out, self.out);
        let h = self
            .block1
            .forward(&(self.block0.forward(x) * scale + bias));
        match &self.residual {
            Some(conv) => h + conv.forward(x),
            None => h + x,
        }
    }
}

/// One level of the down path: two ResBlocks, then a stride-2 Conv1d
/// (`T -> ceil(T/2)`) except at the last level.
#[derive(Debug)]
struct DownLevel {
    res0: ResBlock,
    res1: ResBlock,
    downsample: Option<nn::Conv1D>,
}

/// Down path + the two mid blocks, shared by the U-Net and the encoder.
#[derive(Debug)]
struct DownMid {
    levels: Vec<DownLevel>,
    mid: [ResBlock; 2],
}

impl DownMid {
    /// Variables "down{i}.{res0,res1,downsample}" and "mid{0,1}" under `p`.
    fn new(p: &nn::Path, input_dim: i64, cond_dim: i64, cfg: &UnetConfig) -> Self {
        let n = cfg.down_dims.len();
        let mut din = input_dim;
        let levels = (0..n)
            .map(|i| {
                let q = p / format!("down{i}");
                let dout = cfg.down_dims[i];
                let stride2 = nn::ConvConfig {
                    stride: 2,
                    padding: 1,
                    ..Default::default()
                };
                let level = DownLevel {
                    res0: ResBlock::new(&(&q / "res0"), din, dout, cond_dim, cfg),
                    res1: ResBlock::new(&(&q / "res1"), dout, dout, cond_dim, cfg),
                    downsample: (i + 1 < n)
                        .then(|| nn::conv1d(&q / "downsample", dout, dout, 3, stride2)),
                };
                din = dout;
                level
            })
            .collect();
        let mid_dim = cfg.down_dims[n - 1];
        let mid = [0, 1]
            .map(|j| ResBlock::new(&(p / format!("mid{j}")), mid_dim, mid_dim, cond_dim, cfg));
        DownMid { levels, mid }
    }

    /// `x: [B, C, T] (T a multiple of 2^(L-1)), cond: [B, cond_dim]` ->
    /// (mid features `[B, down_dims[L-1], T / 2^(L-1)]`, the skip of each
    /// level `[B, down_dims[i], T / 2^i]`).
    fn forward(&self, x: &Tensor, cond: &Tensor) -> (Tensor, Vec<Tensor>) {
        let mut h = x.shallow_clone();
        let mut skips = Vec::with_capacity(self.levels.len());
        for level in &self.levels {
            h = level.res1.forward(&level.res0.forward(&h, cond), cond);
            skips.push(h.shallow_clone());
            if let Some(down) = &level.downsample {
                h = down.forward(&h);
            }
        }
        for block in &self.mid {
            h = block.forward(&h, cond);
        }
        (h, skips)
    }
}

/// One level of the up path: cat[x, skip] -> ResBlock(2 dout, din) ->
/// ResBlock(din, din) -> ConvTranspose1d (`T -> 2T`).
#[derive(Debug)]
struct UpLevel {
    res0: ResBlock,
    res1: ResBlock,
    upsample: nn::ConvTranspose1D,
}

/// `x: [B, H, C] -> [B, H', C]` with H' the next multiple of `multiple`,
/// the added steps repeating step H-1 (as chunks are padded in the data).
fn pad_time(x: &Tensor, multiple: i64) -> Tensor {
    let (b, h, c) = x.size3().expect("sequence input must be [B, H, C]");
    assert!(h >= 1, "sequence input must have at least one time step");
    let extra = (multiple - h % multiple) % multiple;
    if extra == 0 {
        x.shallow_clone()
    } else {
        let last = x.narrow(1, h - 1, 1).expand([b, extra, c], false);
        Tensor::cat(&[x.shallow_clone(), last], 1)
    }
}

/// Diffusion Policy's ConditionalUnet1D over an action chunk.
///
/// Conditioning vector `cat[time_embedding(time), cond]` (time first) drives
/// the FiLM of every ResBlock. Levels `(din, dout)` over `[input_dim] +
/// down_dims`: down (2 ResBlocks, skip, downsample except at the last level),
/// 2 mid ResBlocks, up over the levels 1..L-1 reversed (cat skip, 2
/// ResBlocks, upsample; the level-0 skip is unused, as in DP), then
/// Conv1dBlock(d0, d0) -> Conv1d(d0, input_dim, 1).
#[derive(Debug)]
pub struct TemporalUnet {
    length_multiple: i64,
    time_emb: TimeEmbedding,
    down_mid: DownMid,
    up: Vec<UpLevel>,
    final_block: Conv1dBlock,
    final_conv: nn::Conv1D,
}

impl TemporalUnet {
    /// input_dim = A (channels of the chunk), cond_dim = width of the global conditioning (flattened obs history).
    ///
    /// Panics on a config that fails [`UnetConfig::validate`] or on
    /// `input_dim < 1`, `cond_dim < 0`.
    pub fn new(p: &nn::Path, input_dim: i64, cond_dim: i64, cfg: &UnetConfig) -> Self {
        let cfg = cfg.validated();
        assert!(
            input_dim >= 1 && cond_dim >= 0,
            "unet: input_dim must be >= 1 and cond_dim >= 0"
        );
        let full_cond = cfg.time_embed_dim + cond_dim;
        let time_emb = TimeEmbedding::new(
            &(p / "time_emb"),
            cfg.time_embed_dim,
            4 * cfg.time_embed_dim,
        );
        let down_mid = DownMid::new(p, input_dim, full_cond, cfg);
        let dims = &cfg.down_dims;
        let up = (1..dims.len())
            .rev()
            .enumerate()
            .map(|(j, i)| {
                let q = p / format!("up{j}");
                let (din, dout) = (dims[i - 1], dims[i]);
                let up_cfg = nn::ConvTransposeConfig {
                    stride: 2,
                    padding: 1,
                    ..Default::default()
                };
                UpLevel {
                    res0: ResBlock::new(&(&q / "res0"), 2 * dout, din, full_cond, cfg),
                    res1: ResBlock::new(&(&q / "res1"), din, din, full_cond, cfg),
                    upsample: nn::conv_transpose1d(&q / "upsample", din, din, 4, up_cfg),
                }
            })
            .collect();
        let d0 = dims[0];
        let fin = p / "final";
        TemporalUnet {
            length_multiple: cfg.length_multiple(),
            time_emb,
            down_mid,
            up,
            final_block: Conv1dBlock::new(&(&fin / "block"), d0, d0, cfg),
            final_conv: nn::conv1d(&fin / "conv", d0, input_dim, 1, Default::default()),
        }
    }

    /// x: `[B, H, A]`, time: `[B]` float (the diffusion step or a noise-level feature; embedded with `crate::nn::TimeEmbedding`), cond: `[B, cond_dim]` -> `[B, H, A]`
    ///
    /// A 0-dim `time` is broadcast over the batch.
    pub fn forward(&self, x: &Tensor, time: &Tensor, cond: &Tensor) -> Tensor {
        let (b, h, _) = x.size3().expect("unet: x must be [B, H, A]");
        let time = if time.dim() == 0 {
            time.expand([b], false)
        } else {
            time.shallow_clone()
        };
        let cond = Tensor::cat(&[self.time_emb.forward(&time), cond.shallow_clone()], 1);

        let padded = pad_time(x, self.length_multiple).transpose(1, 2); // [B, A, H']
        let (mut y, mut skips) = self.down_mid.forward(&padded, &cond);
        for level in &self.up {
            let skip = skips.pop().expect("one skip per down level");
            y = Tensor::cat(&[y, skip], 1);
            y = level.res1.forward(&level.res0.forward(&y, &cond), &cond);
            y = level.upsample.forward(&y);
        }
        let y = self.final_conv.forward(&self.final_block.forward(&y));
        y.transpose(1, 2).narrow(1, 0, h)
    }
}

/// The U-Net's down path + mid blocks, FiLM-conditioned on `cond`, average-pooled over time: an encoder of an action sequence for the critic.
#[derive(Debug)]
pub struct TemporalEncoder {
    length_multiple: i64,
    output_dim: i64,
    down_mid: DownMid,
}

impl TemporalEncoder {
    /// input_dim = channels per time step (A, or A + 1 with the action mask as an extra channel), cond_dim = width of the conditioning vector (the critic's state embedding); no time embedding here.
    ///
    /// Panics on a config that fails [`UnetConfig::validate`] or on
    /// `input_dim < 1`, `cond_dim < 1`.
    pub fn new(p: &nn::Path, input_dim: i64, cond_dim: i64, cfg: &UnetConfig) -> Self {
        let cfg = cfg.validated();
        assert!(
            input_dim >= 1 && cond_dim >= 1,
            "encoder: input_dim and cond_dim must be >= 1"
        );
        TemporalEncoder {
            length_multiple: cfg.length_multiple(),
            output_dim: *cfg.down_dims.last().expect("validated: non-empty"),
            down_mid: DownMid::new(p, input_dim, cond_dim, cfg),
        }
    }

    /// x: [B, H, C], cond: [B, cond_dim] -> [B, output_dim()]
    ///
    /// The mean runs over the mid features of the padded sequence.
    pub fn forward(&self, x: &Tensor, cond: &Tensor) -> Tensor {
        let padded = pad_time(x, self.length_multiple).transpose(1, 2); // [B, C, H']
        let (mid, _skips) = self.down_mid.forward(&padded, cond);
        mid.mean_dim(2, false, mid.kind())
    }

    /// = *cfg.down_dims.last()
    pub fn output_dim(&self) -> i64 {
        self.output_dim
    }
}
