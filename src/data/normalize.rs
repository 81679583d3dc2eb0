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
    /// d = max(1, |v| / 1000), wide enough to survive float32 at any v).
    pub fn fit(data: &StepDataset) -> Self {
        let (o, a, n) = (data.obs_dim(), data.act_dim(), data.len() as f64);
        let mut sum = vec![0f64; o];
        let mut sum_sq = vec![0f64; o];
        for row in data.observations().chunks_exact(o) {
            for (k, &v) in row.iter().enumerate() {
                sum[k] += v as f64;
                sum_sq[k] += (v as f64) * (v as f64);
            }
        }
        let obs_mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let obs_std = sum
            .iter()
            .zip(&sum_sq)
            .map(|(s, q)| (((q / n) - (s / n).powi(2)).max(0.0).sqrt() as f32).max(MIN_STD))
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
                low[k] -= pad;
                high[k] += pad;
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
