//! `Normalizer`: observation standardisation and action scaling to [-1, 1],
//! fitted on a dataset and stored with the agent so that acting uses the
//! same transform as training.

use serde::{Deserialize, Serialize};

use super::dataset::StepDataset;

/// Smallest standard deviation used for an observation dimension, so that a
/// constant dimension maps to 0 instead of dividing by zero.
pub const MIN_STD: f32 = 1e-3;

/// obs -> (obs - mean) / std; action -> 2 (a - low) / (high - low) - 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// `[O]`.
    pub obs_mean: Vec<f32>,
    /// `[O]`, each >= MIN_STD.
    pub obs_std: Vec<f32>,
    /// `[A]` action that maps to -1.
    pub action_low: Vec<f32>,
    /// `[A]` action that maps to +1; > action_low.
    pub action_high: Vec<f32>,
}

impl Normalizer {
    /// Mean/std of the observations and min/max of the actions of `data`
    /// (a dimension whose actions never vary gets the range [v - d, v + d],
    /// d = max(1, |v| / 1000), kept within float32's finite range). The std
    /// is the population one (numpy's default), summed in f64 in two passes
    /// so that values far from zero keep their spread.
    pub fn fit(data: &StepDataset) -> Self {
        let (o, a, n) = (data.obs_dim(), data.act_dim(), data.len() as f64);
        let mut sum = vec![0f64; o];
        for row in data.observations().chunks_exact(o) {
            for (k, &v) in row.iter().enumerate() {
                sum[k] += v as f64;
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let mut sum_sq = vec![0f64; o];
        for row in data.observations().chunks_exact(o) {
            for (k, &v) in row.iter().enumerate() {
                let d = v as f64 - mean[k];
                sum_sq[k] += d * d;
            }
        }
        let obs_mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let obs_std = sum_sq
            .iter()
            .map(|q| ((q / n).sqrt() as f32).max(MIN_STD))
            .collect();
        let mut low = vec![f32::INFINITY; a];
        let mut high = vec![f32::NEG_INFINITY; a];
        for row in data.actions().chunks_exact(a) {
            for (k, &v) in row.iter().enumerate() {
                low[k] = low[k].min(v);
                high[k] = high[k].max(v);
            }
        }
        for k in 0..a {
            if high[k] <= low[k] {
                let pad = 1f32.max(low[k].abs() * 1e-3);
                low[k] = (low[k] - pad).max(f32::MIN);
                high[k] = (high[k] + pad).min(f32::MAX);
            }
        }
        Normalizer {
            obs_mean,
            obs_std,
            action_low: low,
            action_high: high,
        }
    }

    /// No change: mean 0, std 1, actions already in [-1, 1].
    pub fn identity(obs_dim: usize, act_dim: usize) -> Self {
        Normalizer {
            obs_mean: vec![0.0; obs_dim],
            obs_std: vec![1.0; obs_dim],
            action_low: vec![-1.0; act_dim],
            action_high: vec![1.0; act_dim],
        }
    }

    /// Replaces the fitted action range with known bounds (an environment's
    /// action space).
    ///
    /// # Panics
    /// If `low` or `high` is not `[A]` wide, or some `low[i] >= high[i]`
    /// (bounds come from an environment's spec, not from user data).
    pub fn with_action_bounds(mut self, low: Vec<f32>, high: Vec<f32>) -> Self {
        assert_eq!(low.len(), self.action_low.len(), "action bound width");
        assert_eq!(high.len(), self.action_high.len(), "action bound width");
        assert!(
            low.iter().zip(&high).all(|(l, h)| l < h),
            "action bounds need low < high"
        );
        self.action_low = low;
        self.action_high = high;
        self
    }

    /// Checks what [`Normalizer::fit`] guarantees, for one read from a file:
    /// `[O]` means and stds, `[A]` lows and highs, all finite, each std at
    /// least [`MIN_STD`] and each low below its high.
    pub fn check(&self) -> Result<(), String> {
        if self.obs_std.len() != self.obs_mean.len()
            || self.action_high.len() != self.action_low.len()
        {
            return Err(format!(
                "normalizer widths disagree: obs_mean {}, obs_std {}, action_low {}, \
                 action_high {}",
                self.obs_mean.len(),
                self.obs_std.len(),
                self.action_low.len(),
                self.action_high.len()
            ));
        }
        let all = [
            &self.obs_mean,
            &self.obs_std,
            &self.action_low,
            &self.action_high,
        ];
        if all.iter().any(|v| v.iter().any(|x| !x.is_finite())) {
            return Err("normalizer holds a non-finite number".into());
        }
        if let Some(k) = self.obs_std.iter().position(|&s| s < MIN_STD) {
            return Err(format!(
                "normalizer obs_std[{k}] = {} is below {MIN_STD}",
                self.obs_std[k]
            ));
        }
        if let Some(k) = (0..self.act_dim()).find(|&k| self.action_low[k] >= self.action_high[k]) {
            return Err(format!(
                "normalizer action range {k} is empty: low {} >= high {}",
                self.action_low[k], self.action_high[k]
            ));
        }
        Ok(())
    }

    /// Observation width O.
    pub fn obs_dim(&self) -> usize {
        self.obs_mean.len()
    }

    /// Action width A.
    pub fn act_dim(&self) -> usize {
        self.action_low.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::StepColumns;
    use ndarray::{Array1, Array2, arr2};
    use proptest::prelude::*;

    fn dataset(observations: Array2<f32>, actions: Array2<f32>) -> StepDataset {
        let n = observations.nrows();
        let columns = StepColumns {
            observations: observations.into_dyn(),
            actions: actions.into_dyn(),
            rewards: Array1::<f32>::zeros(n).into_dyn(),
            terminals: Array1::from_elem(n, false).into_dyn(),
            timeouts: Array1::from_elem(n, false).into_dyn(),
            next_observations: None,
        };
        StepDataset::new("<t>", columns).unwrap()
    }

    #[test]
    fn fit_uses_the_population_std_with_min_std_as_a_floor() {
        // dim 0: [0, 3, 6]: mean 3, var (9 + 0 + 9) / 3 = 6 -> std sqrt(6) = 2.4494897
        //        (the sample std, /(n-1), would be 3);
        // dim 1: [1, 1.0003, 1.0006]: var (9e-8 + 0 + 9e-8) / 3 = 6e-8,
        //        std 2.45e-4 < MIN_STD -> 1e-3 (std + MIN_STD would be 1.245e-3);
        // dim 2: [-1, -1, 2]: mean 0, var (1 + 1 + 4) / 3 = 2 -> std sqrt(2) = 1.4142136.
        // actions: dim 0 [0.5, 0.25, 1] -> [0.25, 1];
        //          dim 1 constant -3 -> pad max(1, 3/1000) = 1 -> [-4, -2].
        let norm = Normalizer::fit(&dataset(
            arr2(&[[0.0f32, 1.0, -1.0], [3.0, 1.0003, -1.0], [6.0, 1.0006, 2.0]]),
            arr2(&[[0.5f32, -3.0], [0.25, -3.0], [1.0, -3.0]]),
        ));
        let want_mean = [3.0f32, 1.0003, 0.0];
        let want_std = [6f32.sqrt(), MIN_STD, 2f32.sqrt()];
        for k in 0..3 {
            assert!((norm.obs_mean[k] - want_mean[k]).abs() < 1e-6, "{norm:?}");
            assert!((norm.obs_std[k] - want_std[k]).abs() < 1e-6, "{norm:?}");
        }
        assert_eq!(norm.action_low, vec![0.25, -4.0]);
        assert_eq!(norm.action_high, vec![1.0, -2.0]);
        assert_eq!((norm.obs_dim(), norm.act_dim()), (3, 2));
    }

    #[test]
    fn check_accepts_fitted_and_refuses_broken_normalizers() {
        let fitted = Normalizer::fit(&dataset(
            arr2(&[[0.0f32, 5.0], [2.0, 5.0]]),
            arr2(&[[0.1f32], [0.1]]),
        ));
        assert_eq!(fitted.check(), Ok(()));
        let broken = |change: fn(&mut Normalizer)| {
            let mut n = fitted.clone();
            change(&mut n);
            n.check().unwrap_err()
        };
        assert_eq!(
            broken(|n| n.obs_std.pop().map(drop).unwrap_or(())),
            "normalizer widths disagree: obs_mean 2, obs_std 1, action_low 1, action_high 1"
        );
        assert_eq!(
            broken(|n| n.obs_mean[0] = f32::NAN),
            "normalizer holds a non-finite number"
        );
        assert_eq!(
            broken(|n| n.obs_std[1] = 0.0),
            "normalizer obs_std[1] = 0 is below 0.001"
        );
        assert_eq!(
            broken(|n| n.action_high[0] = n.action_low[0]),
            "normalizer action range 0 is empty: low -0.9 >= high -0.9"
        );
    }

    #[test]
    fn identity_and_known_bounds() {
        let id = Normalizer::identity(2, 1);
        assert_eq!(
            (id.obs_mean, id.obs_std, id.action_low, id.action_high),
            (vec![0.0, 0.0], vec![1.0, 1.0], vec![-1.0], vec![1.0])
        );
        let fitted = Normalizer::fit(&dataset(arr2(&[[0.0f32], [2.0]]), arr2(&[[0.1f32], [0.2]])));
        let bounded = fitted.clone().with_action_bounds(vec![-3.0], vec![5.0]);
        assert_eq!(
            (bounded.action_low, bounded.action_high),
            (vec![-3.0], vec![5.0])
        );
        assert_eq!(
            (bounded.obs_mean, bounded.obs_std),
            (fitted.obs_mean, fitted.obs_std)
        );
    }

    /// `n` rows of `o` observation columns, each `offset + spread * u` with
    /// u in [-1, 1] and spread 0 (constant), 1e-5 (below MIN_STD) or
    /// 0.01..10; actions on a quarter grid (ties and constant columns).
    fn random_data() -> impl Strategy<Value = (Array2<f32>, Array2<f32>)> {
        (1usize..12, 1usize..4, 1usize..3).prop_flat_map(|(n, o, a)| {
            let spread = prop_oneof![Just(0.0f32), Just(1e-5f32), 0.01f32..10.0];
            (
                prop::collection::vec((-100f32..100.0, spread), o),
                prop::collection::vec(-1f32..=1.0, n * o),
                prop::collection::vec((-8i32..8).prop_map(|k| k as f32 * 0.25), n * a),
            )
                .prop_map(move |(columns, u, actions)| {
                    let obs = Array2::from_shape_fn((n, o), |(r, c)| {
                        columns[c].0 + columns[c].1 * u[r * o + c]
                    });
                    (obs, Array2::from_shape_vec((n, a), actions).unwrap())
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn fit_matches_a_two_pass_f64_computation((obs, actions) in random_data()) {
            let norm = Normalizer::fit(&dataset(obs.clone(), actions.clone()));
            let n = obs.nrows() as f64;
            for (k, column) in obs.columns().into_iter().enumerate() {
                let mean = column.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
                let var = column.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
                let std = var.sqrt().max(f64::from(MIN_STD));
                let (got_mean, got_std) = (f64::from(norm.obs_mean[k]), f64::from(norm.obs_std[k]));
                prop_assert!((got_mean - mean).abs() <= 1e-6 * (1.0 + mean.abs()), "mean {} vs {}", got_mean, mean);
                // Only float32 rounding (6e-8 std) between them: no
                // cancellation, whatever the offset.
                prop_assert!((got_std - std).abs() <= 1e-6 * std, "std {} vs {}", got_std, std);
                prop_assert!(norm.obs_std[k] >= MIN_STD);
            }
            for (k, column) in actions.columns().into_iter().enumerate() {
                let low = column.iter().copied().fold(f32::INFINITY, f32::min);
                let high = column.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if low < high {
                    prop_assert_eq!((norm.action_low[k], norm.action_high[k]), (low, high));
                } else {
                    // Constant v (|v| <= 2 here): [v - 1, v + 1].
                    prop_assert_eq!((norm.action_low[k], norm.action_high[k]), (low - 1.0, high + 1.0));
                }
            }
        }
    }

    #[test]
    fn fit_gives_mean_std_and_action_range() {
        let columns = StepColumns {
            observations: arr2(&[[1.0f32, 5.0], [3.0, 5.0]]).into_dyn(),
            actions: arr2(&[[-0.5f32, 2.0], [0.5, 2.0]]).into_dyn(),
            rewards: Array1::<f32>::zeros(2).into_dyn(),
            terminals: Array1::from_elem(2, false).into_dyn(),
            timeouts: Array1::from_elem(2, false).into_dyn(),
            next_observations: Some(Array2::<f32>::zeros((2, 2)).into_dyn()),
        };
        let data = StepDataset::new("<t>", columns).unwrap();
        let norm = Normalizer::fit(&data);
        assert_eq!(norm.obs_mean, vec![2.0, 5.0]);
        assert_eq!(norm.obs_std, vec![1.0, MIN_STD]);
        assert_eq!(norm.action_low, vec![-0.5, 1.0]);
        assert_eq!(norm.action_high, vec![0.5, 3.0]);
    }

    #[test]
    fn the_std_of_values_far_from_zero_keeps_their_spread() {
        // 1e6, 1e6 + 0.0625, 1e6 + 0.125 (float32's spacing at 1e6 is
        // 0.0625): mean 1e6 + 0.0625, var 2 x 0.0625^2 / 3 = 0.00260416...,
        // std 0.0625 sqrt(2/3) = 0.051031036. Summing x^2 (1e12 each) in one
        // pass loses about 1e-4 of the variance to rounding: a std wrong in
        // its first digit, or floored at MIN_STD.
        let norm = Normalizer::fit(&dataset(
            arr2(&[[1e6f32], [1e6 + 0.0625], [1e6 + 0.125]]),
            arr2(&[[0.0f32], [1.0], [0.5]]),
        ));
        assert_eq!(norm.obs_mean, vec![1e6 + 0.0625]);
        assert!((norm.obs_std[0] - 0.051_031_036).abs() < 1e-8, "{norm:?}");
    }

    #[test]
    fn a_constant_action_at_the_edge_of_float32_gets_a_finite_range() {
        // 3.4e38 + 3.4e35 overflows float32: the range stops at f32::MAX
        // (and at f32::MIN on the other side), still of nonzero width.
        let norm = Normalizer::fit(&dataset(
            arr2(&[[0.0f32], [1.0]]),
            arr2(&[[3.4e38f32, -3.4e38], [3.4e38, -3.4e38]]),
        ));
        assert_eq!(norm.action_low, vec![3.4e38 - 3.4e35, f32::MIN]);
        assert_eq!(norm.action_high, vec![f32::MAX, -3.4e38 + 3.4e35]);
        assert_eq!(norm.check(), Ok(()));
    }

    #[test]
    fn a_constant_large_action_still_gets_a_range_of_nonzero_width() {
        // v +- 1 would round back to v in float32 at 1e8.
        let columns = StepColumns {
            observations: arr2(&[[0.0f32], [1.0]]).into_dyn(),
            actions: arr2(&[[1e8f32], [1e8]]).into_dyn(),
            rewards: Array1::<f32>::zeros(2).into_dyn(),
            terminals: Array1::from_elem(2, false).into_dyn(),
            timeouts: Array1::from_elem(2, false).into_dyn(),
            next_observations: None,
        };
        let norm = Normalizer::fit(&StepDataset::new("<t>", columns).unwrap());
        assert_eq!(norm.action_low, vec![1e8 - 1e5]);
        assert_eq!(norm.action_high, vec![1e8 + 1e5]);
    }
}
