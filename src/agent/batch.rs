//! `TensorBatch`: a `ChunkBatch` on the agent's device, normalised: observation
//! histories standardised and flattened, action chunks scaled to [-1, 1],
//! rewards scaled. Built once per update; every tensor on one device.

use tch::{Device, Kind, Tensor};

use crate::chunk::ChunkBatch;
use crate::data::Normalizer;

/// The normaliser's vectors as device tensors.
#[derive(Debug)]
pub struct DeviceNormalizer {
    obs_mean: Tensor,
    obs_std: Tensor,
    action_center: Tensor,
    action_half_range: Tensor,
}

impl DeviceNormalizer {
    pub fn new(norm: &Normalizer, device: Device) -> Self {
        let t = |v: Vec<f32>| Tensor::from_slice(&v).to_device(device);
        let center = norm
            .action_low
            .iter()
            .zip(&norm.action_high)
            .map(|(l, h)| 0.5 * (l + h))
            .collect();
        let half = norm
            .action_low
            .iter()
            .zip(&norm.action_high)
            .map(|(l, h)| 0.5 * (h - l))
            .collect();
        DeviceNormalizer {
            obs_mean: t(norm.obs_mean.clone()),
            obs_std: t(norm.obs_std.clone()),
            action_center: t(center),
            action_half_range: t(half),
        }
    }

    /// Raw histories `[B, To, O]` -> standardised, flattened `[B, To*O]`.
    pub fn observations(&self, raw: &Tensor) -> Tensor {
        let b = raw.size()[0];
        ((raw - &self.obs_mean) / &self.obs_std).view([b, -1])
    }

    /// Raw chunks `[B, H, A]` -> [-1, 1].
    pub fn scale_actions(&self, raw: &Tensor) -> Tensor {
        (raw - &self.action_center) / &self.action_half_range
    }

    /// Chunks in [-1, 1] `[B, H, A]` -> raw action units.
    pub fn unscale_actions(&self, scaled: &Tensor) -> Tensor {
        scaled * &self.action_half_range + &self.action_center
    }
}

/// The one-step fields, for the naive-target ablation.
#[derive(Debug)]
pub struct OneStepTensors {
    /// `[B]`.
    pub reward: Tensor,
    /// `[B]`.
    pub done: Tensor,
    /// `[B]` gamma.
    pub discount: Tensor,
    /// `[B, To*O]`.
    pub next_obs: Tensor,
}

/// One batch on the device.
#[derive(Debug)]
pub struct TensorBatch {
    /// `[B, To*O]` standardised history at t.
    pub obs: Tensor,
    /// `[B, H, A]` in [-1, 1].
    pub actions: Tensor,
    /// `[B, H]`.
    pub mask: Tensor,
    /// `[B]` scaled sum_{i<tau} gamma^i r.
    pub reward: Tensor,
    /// `[B]` 1 if terminated inside the chunk.
    pub done: Tensor,
    /// `[B]` gamma^tau.
    pub discount: Tensor,
    /// `[B, To*O]` standardised history at the chunk's next state.
    pub next_obs: Tensor,
    pub one_step: Option<OneStepTensors>,
}

impl TensorBatch {
    pub fn new(
        batch: &ChunkBatch,
        norm: &DeviceNormalizer,
        device: Device,
        reward_scale: f64,
    ) -> Self {
        let dims = batch.dims();
        let (b, to, o) = (
            batch.len() as i64,
            dims.obs_horizon as i64,
            dims.obs_dim as i64,
        );
        let (h, a) = (dims.horizon as i64, dims.act_dim as i64);
        let put = |v: &[f32], shape: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
        let history = |v: &[f32]| norm.observations(&put(v, &[b, to, o]));
        let one_step = batch.one_step.as_ref().map(|one| OneStepTensors {
            reward: put(&one.reward, &[b]) * reward_scale,
            done: put(&one.done, &[b]),
            discount: Tensor::full([b], batch.spec.gamma, (Kind::Float, device)),
            next_obs: history(&one.next_observations),
        });
        TensorBatch {
            obs: history(&batch.observations),
            actions: norm.scale_actions(&put(&batch.actions, &[b, h, a])),
            mask: put(&batch.action_mask, &[b, h]),
            reward: put(&batch.cumulative_reward, &[b]) * reward_scale,
            done: put(&batch.chunk_done, &[b]),
            discount: put(&batch.discount_factor, &[b]),
            next_obs: history(&batch.next_observations),
            one_step,
        }
    }

    /// Batch size B.
    pub fn len(&self) -> i64 {
        self.reward.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `start..start + len` of every field, as views (no copy).
    pub fn rows(&self, start: i64, len: i64) -> TensorBatch {
        let cut = |t: &Tensor| t.narrow(0, start, len);
        TensorBatch {
            obs: cut(&self.obs),
            actions: cut(&self.actions),
            mask: cut(&self.mask),
            reward: cut(&self.reward),
            done: cut(&self.done),
            discount: cut(&self.discount),
            next_obs: cut(&self.next_obs),
            one_step: self.one_step.as_ref().map(|one| OneStepTensors {
                reward: cut(&one.reward),
                done: cut(&one.done),
                discount: cut(&one.discount),
                next_obs: cut(&one.next_obs),
            }),
        }
    }

    /// The batch cut into `parts` consecutive slices of rows whose sizes
    /// differ by at most one (fewer slices if there are fewer rows).
    pub fn split(&self, parts: usize) -> Vec<TensorBatch> {
        let b = self.len();
        let parts = (parts.max(1) as i64).min(b.max(1));
        let mut start = 0;
        (0..parts)
            .map(|i| {
                let len = b / parts + i64::from(i < b % parts);
                let slice = self.rows(start, len);
                start += len;
                slice
            })
            .collect()
    }

    /// Every tensor of the batch (for device checks).
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut all = vec![
            &self.obs,
            &self.actions,
            &self.mask,
            &self.reward,
            &self.done,
            &self.discount,
            &self.next_obs,
        ];
        if let Some(one) = &self.one_step {
            all.extend([&one.reward, &one.done, &one.discount, &one.next_obs]);
        }
        all
    }
}
