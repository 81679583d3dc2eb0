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
        // In f64: l + h and h - l can overflow float32 (a range near
        // +-3.4e38), their halves cannot; otherwise the same numbers.
        let ranges = || {
            let pairs = norm.action_low.iter().zip(&norm.action_high);
            pairs.map(|(&l, &h)| (f64::from(l), f64::from(h)))
        };
        let center = ranges().map(|(l, h)| (0.5 * (l + h)) as f32).collect();
        let half = ranges().map(|(l, h)| (0.5 * (h - l)) as f32).collect();
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
    /// `[B, H]` the critic's view of the chunk's steps: the action mask (1
    /// for the tau real steps), but all ones for a chunk that terminated,
    /// whose steps after the termination change nothing (its value is the
    /// whole chunk's, which is what targets and the actor ask for).
    pub critic_mask: Tensor,
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
        let done = put(&batch.chunk_done, &[b]);
        TensorBatch {
            obs: history(&batch.observations),
            actions: norm.scale_actions(&put(&batch.actions, &[b, h, a])),
            critic_mask: put(&batch.action_mask, &[b, h]).maximum(&done.unsqueeze(1)),
            reward: put(&batch.cumulative_reward, &[b]) * reward_scale,
            done,
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
            critic_mask: cut(&self.critic_mask),
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
            &self.critic_mask,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkSpec;
    use crate::data::{MIN_STD, StepColumns, StepDataset};
    use ndarray::{Array1, arr2};
    use proptest::prelude::*;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::try_from(t.flatten(0, -1)).unwrap()
    }

    fn assert_close(got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() <= tol, "{got:?} vs {want:?}");
        }
    }

    /// Box [-2, 2] x [0, 10] x [10, 11]: centre (0, 5, 10.5), half-range
    /// (2, 5, 0.5); scaled = 2 (a - low) / (high - low) - 1.
    fn boxed() -> DeviceNormalizer {
        let norm = Normalizer::identity(1, 3)
            .with_action_bounds(vec![-2.0, 0.0, 10.0], vec![2.0, 10.0, 11.0]);
        DeviceNormalizer::new(&norm, Device::Cpu)
    }

    #[test]
    fn actions_map_low_to_minus_one_high_to_one_and_back() {
        let norm = boxed();
        let raw = Tensor::from_slice(&[
            -2.0f32, 0.0, 10.0, // low
            2.0, 10.0, 11.0, // high
            0.0, 5.0, 10.5, // midpoint
            1.0, 2.5, 10.25, // 2*3/4 - 1 = 0.5, 2*2.5/10 - 1 = -0.5, 2*0.25/1 - 1 = -0.5
        ])
        .view([1, 4, 3]);
        let scaled = norm.scale_actions(&raw);
        assert_eq!(scaled.size(), vec![1, 4, 3]);
        #[rustfmt::skip]
        let want = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.5, -0.5, -0.5];
        assert_close(&values(&scaled), &want, 1e-6);
        // Back: -1 -> low, 1 -> high, 0.5 -> 0 + 0.5 * 2 = 1, -0.5 -> 5 - 2.5 = 2.5,
        // -0.5 -> 10.5 - 0.25 = 10.25.
        let back = norm.unscale_actions(&scaled);
        assert_close(
            &values(&back),
            &values(&raw)
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
            1e-6,
        );
    }

    #[test]
    fn observations_are_standardised_with_the_population_std_floored_at_min_std() {
        // Fitted on three dimensions, two rows:
        //   dim 0: [0, 4]       mean 2, std sqrt(((0-2)^2 + (4-2)^2) / 2) = 2
        //          (the sample std would be 2.83, std + eps 2.001);
        //   dim 1: [5, 5]       mean 5, std 0 -> MIN_STD = 1e-3;
        //   dim 2: [7, 7.0002]  mean 7.0001, std 1e-4 -> MIN_STD (a floor,
        //          not an addition: 1e-4 + 1e-3 would give 1.1e-3).
        let columns = StepColumns {
            observations: arr2(&[[0.0f32, 5.0, 7.0], [4.0, 5.0, 7.0002]]).into_dyn(),
            actions: arr2(&[[0.0f32], [1.0]]).into_dyn(),
            rewards: Array1::<f32>::zeros(2).into_dyn(),
            terminals: Array1::from_elem(2, false).into_dyn(),
            timeouts: Array1::from_elem(2, false).into_dyn(),
            next_observations: None,
        };
        let fitted = Normalizer::fit(&StepDataset::new("<t>", columns).unwrap());
        assert_eq!(MIN_STD, 1e-3);
        let norm = DeviceNormalizer::new(&fitted, Device::Cpu);
        // One history of To = 2 rows, flattened to [1, 6]:
        //   [6, 5, 7.0001]     -> [(6-2)/2, (5-5)/1e-3, (7.0001-7.0001)/1e-3] = [2, 0, 0]
        //   [2, 5.004, 7.0021] -> [0, 0.004/1e-3, 0.002/1e-3]                = [0, 4, 2]
        let raw = Tensor::from_slice(&[6.0f32, 5.0, 7.0001, 2.0, 5.004, 7.0021]).view([1, 2, 3]);
        let got = values(&norm.observations(&raw));
        assert_eq!(norm.observations(&raw).size(), vec![1, 6]);
        // Dimension 0 is exact; dimensions 1 and 2 divide float32 rounding
        // (~5e-7 at 7) by 1e-3.
        assert_close(&[got[0], got[3]], &[2.0, 0.0], 1e-6);
        assert_close(
            &[got[1], got[2], got[4], got[5]],
            &[0.0, 0.0, 4.0, 2.0],
            1e-3,
        );
    }

    #[test]
    fn action_ranges_at_the_edge_of_float32_scale_to_finite_numbers() {
        // [-3e38, 3e38]: h - l = 6e38 overflows float32, its half 3e38 does
        // not; [3.4e38 - 3.4e35, f32::MAX] (a constant action's widened
        // range): l + h overflows, the centre does not. Raw 0 -> 0 and
        // 1.5e38 -> 0.5; 3.4e38 -> (3.4e38 - c) / half, about 0.09.
        let norm = Normalizer {
            obs_mean: vec![0.0],
            obs_std: vec![1.0],
            action_low: vec![-3e38, 3.4e38 - 3.4e35],
            action_high: vec![3e38, f32::MAX],
        };
        let device_norm = DeviceNormalizer::new(&norm, Device::Cpu);
        let raw = Tensor::from_slice(&[0.0f32, 3.4e38, 1.5e38, 3.4e38]).view([1, 2, 2]);
        let scaled = values(&device_norm.scale_actions(&raw));
        assert!(scaled.iter().all(|v| v.is_finite()), "{scaled:?}");
        assert_close(&[scaled[0], scaled[2]], &[0.0, 0.5], 1e-6);
        assert!(scaled[1].abs() < 0.2 && scaled[3].abs() < 0.2, "{scaled:?}");
    }

    #[test]
    fn a_tensor_batch_scales_rewards_and_nothing_else_by_reward_scale() {
        // H = 2, gamma 0.9, To = 1, O = A = 1, B = 2; obs mean 1 std 2,
        // actions in [0, 10].
        let norm = Normalizer {
            obs_mean: vec![1.0],
            obs_std: vec![2.0],
            action_low: vec![0.0],
            action_high: vec![10.0],
        };
        let mut batch =
            ChunkBatch::zeros(2, ChunkSpec::new(2, 0.9, 1).unwrap(), 1, 1).with_one_step();
        batch.observations = vec![3.0, -1.0];
        batch.next_observations = vec![5.0, 1.0];
        batch.actions = vec![0.0, 10.0, 5.0, 2.5];
        batch.action_mask = vec![1.0, 1.0, 1.0, 0.0];
        batch.cumulative_reward = vec![1.5, -4.0];
        batch.chunk_done = vec![0.0, 1.0];
        batch.discount_factor = vec![0.81, 0.9];
        let one = batch.one_step.as_mut().unwrap();
        one.reward = vec![2.0, -0.5];
        one.done = vec![0.0, 1.0];
        one.next_observations = vec![1.0, 7.0];
        let device_norm = DeviceNormalizer::new(&norm, Device::Cpu);
        let t = TensorBatch::new(&batch, &device_norm, Device::Cpu, 0.1);
        // obs (3-1)/2 = 1, (-1-1)/2 = -1; next (5-1)/2 = 2, (1-1)/2 = 0;
        // one-step next (1-1)/2 = 0, (7-1)/2 = 3.
        assert_close(&values(&t.obs), &[1.0, -1.0], 1e-6);
        assert_close(&values(&t.next_obs), &[2.0, 0.0], 1e-6);
        // actions 2 a / 10 - 1: 0 -> -1, 10 -> 1, 5 -> 0, 2.5 -> -0.5.
        assert_close(&values(&t.actions), &[-1.0, 1.0, 0.0, -0.5], 1e-6);
        assert_eq!(t.actions.size(), vec![2, 2, 1]);
        // The second chunk terminated after its first step: the critic
        // sees it whole.
        assert_eq!(values(&t.critic_mask), vec![1.0, 1.0, 1.0, 1.0]);
        // Rewards times 0.1: 1.5 -> 0.15, -4 -> -0.4; one-step 2 -> 0.2, -0.5 -> -0.05.
        assert_close(&values(&t.reward), &[0.15, -0.4], 1e-6);
        // done and gamma^tau are not rewards: unchanged.
        assert_eq!(values(&t.done), vec![0.0, 1.0]);
        assert_close(&values(&t.discount), &[0.81, 0.9], 1e-7);
        let one = t.one_step.as_ref().unwrap();
        assert_close(&values(&one.reward), &[0.2, -0.05], 1e-6);
        assert_eq!(values(&one.done), vec![0.0, 1.0]);
        assert_close(&values(&one.discount), &[0.9, 0.9], 1e-7);
        assert_close(&values(&one.next_obs), &[0.0, 3.0], 1e-6);
    }

    #[test]
    fn only_chunks_cut_short_without_a_termination_keep_a_partial_critic_mask() {
        // H = 3: a whole chunk, one cut by a time limit after 1 step, one
        // that terminated after 2 steps.
        let mut batch = ChunkBatch::zeros(3, ChunkSpec::new(3, 0.9, 1).unwrap(), 1, 1);
        batch.action_mask = vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        batch.chunk_done = vec![0.0, 0.0, 1.0];
        let norm = DeviceNormalizer::new(&Normalizer::identity(1, 1), Device::Cpu);
        let t = TensorBatch::new(&batch, &norm, Device::Cpu, 1.0);
        assert_eq!(t.critic_mask.size(), vec![3, 3]);
        #[rustfmt::skip]
        assert_eq!(values(&t.critic_mask), vec![
            1.0, 1.0, 1.0,
            1.0, 0.0, 0.0,
            1.0, 1.0, 1.0,
        ]);
    }

    /// A box of `a` dimensions with widths from 0.1 to 200 anywhere in
    /// [-100, 300], and `rows` points in [0, 1]^a.
    fn box_and_points() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, Vec<f32>)> {
        (1usize..5, 1usize..6).prop_flat_map(|(a, rows)| {
            (
                prop::collection::vec(-100f32..100.0, a),
                prop::collection::vec(0.1f32..200.0, a),
                prop::collection::vec(0f32..=1.0, a * rows),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn scaling_is_the_affine_map_and_unscaling_undoes_it((low, width, unit) in box_and_points()) {
            let a = low.len();
            let high: Vec<f32> = low.iter().zip(&width).map(|(l, w)| l + w).collect();
            let norm = DeviceNormalizer::new(
                &Normalizer::identity(1, a).with_action_bounds(low.clone(), high.clone()),
                Device::Cpu,
            );
            // Points inside the box, then the two corners.
            let mut raw: Vec<f32> = unit
                .iter()
                .enumerate()
                .map(|(i, u)| low[i % a] + u * (high[i % a] - low[i % a]))
                .collect();
            raw.extend(&low);
            raw.extend(&high);
            let rows = raw.len() / a;
            let raw_t = Tensor::from_slice(&raw).view([1, rows as i64, a as i64]);
            let scaled = values(&norm.scale_actions(&raw_t));
            let back = values(&norm.unscale_actions(&norm.scale_actions(&raw_t)));
            for (i, &x) in raw.iter().enumerate() {
                let (l, h, x) = (f64::from(low[i % a]), f64::from(high[i % a]), f64::from(x));
                let want = 2.0 * (x - l) / (h - l) - 1.0;
                let scale = x.abs() + l.abs() + h.abs();
                let got = f64::from(scaled[i]);
                prop_assert!((got - want).abs() <= 1e-6 * (1.0 + scale / (h - l)),
                    "a = {}, box [{}, {}]: scaled {} vs {}", x, l, h, got, want);
                prop_assert!((f64::from(back[i]) - x).abs() <= 1e-6 * (1.0 + scale),
                    "a = {}, box [{}, {}]: round trip {}", x, l, h, back[i]);
            }
            let corners = &scaled[scaled.len() - 2 * a..];
            for k in 0..a {
                let tol = 1e-6 * (1.0 + f64::from(low[k].abs() + high[k].abs()) / f64::from(width[k]));
                prop_assert!((f64::from(corners[k]) + 1.0).abs() <= tol, "low -> {}", corners[k]);
                prop_assert!((f64::from(corners[a + k]) - 1.0).abs() <= tol, "high -> {}", corners[a + k]);
            }
        }

        #[test]
        fn observations_are_x_minus_mean_over_std(
            (mean, std, x) in (1usize..5).prop_flat_map(|o| (
                prop::collection::vec(-100f32..100.0, o),
                prop::collection::vec(MIN_STD..50.0, o),
                prop::collection::vec(-300f32..300.0, 3 * o),
            ))
        ) {
            let o = mean.len();
            let norm = DeviceNormalizer::new(
                &Normalizer { obs_mean: mean.clone(), obs_std: std.clone(), ..Normalizer::identity(o, 1) },
                Device::Cpu,
            );
            // B = 1, To = 3.
            let got = values(&norm.observations(&Tensor::from_slice(&x).view([1, 3, o as i64])));
            for (i, &xi) in x.iter().enumerate() {
                let (m, s) = (f64::from(mean[i % o]), f64::from(std[i % o]));
                let want = (f64::from(xi) - m) / s;
                let tol = 1e-6 * (1.0 + (f64::from(xi).abs() + m.abs()) / s);
                prop_assert!((f64::from(got[i]) - want).abs() <= tol, "{} -> {} vs {}", xi, got[i], want);
            }
        }
    }
}
