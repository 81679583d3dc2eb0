//! `ChunkSpec`: the three numbers that define a chunk transition, validated.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors in chunk parameters or in what they leave to sample.
#[derive(Debug, Error, PartialEq)]
pub enum ChunkError {
    #[error("chunk horizon H must be at least 1, got {0}")]
    Horizon(usize),
    #[error("discount gamma must lie in (0, 1], got {0}")]
    Gamma(f64),
    #[error("observation horizon To must be at least 1, got {0}")]
    ObsHorizon(usize),
    #[error("{name} must be at most {MAX_LENGTH}, got {value}")]
    TooLong { name: &'static str, value: usize },
    #[error("{file}: no chunk start can be sampled: {reason}")]
    NothingToSample { file: String, reason: String },
    #[error("{file}: {rows} rows are more than a chunk index holds (at most 2^32 - 2)")]
    TooManyRows { file: String, rows: usize },
    #[error(
        "{file}: key `rewards` row {row}: the discounted reward of the chunk starting \
         there is {sum:.3e}, beyond float32's range"
    )]
    RewardOverflow { file: String, row: usize, sum: f64 },
}

/// The longest chunk H and history To: far beyond any action chunk in use
/// (8-64 steps), and small enough that the index's per-row tables cannot
/// overflow. What a batch or an exported table of such chunks would take
/// in memory is checked where one is made ([`ChunkDims::bytes`](super::ChunkDims::bytes)).
pub const MAX_LENGTH: usize = 4096;

/// Chunk length `H`, discount `gamma` and observation-history length `To`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChunkSpec {
    /// H: actions per chunk.
    pub horizon: usize,
    /// gamma in (0, 1].
    pub gamma: f64,
    /// To: observations per history (the current one and To - 1 before it).
    pub obs_horizon: usize,
}

impl ChunkSpec {
    /// Checks H >= 1, gamma in (0, 1] and To >= 1.
    pub fn new(horizon: usize, gamma: f64, obs_horizon: usize) -> Result<Self, ChunkError> {
        let spec = ChunkSpec {
            horizon,
            gamma,
            obs_horizon,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The same checks as [`ChunkSpec::new`], for a spec built as a literal or
    /// read from a config.
    pub fn validate(&self) -> Result<(), ChunkError> {
        if self.horizon < 1 {
            return Err(ChunkError::Horizon(self.horizon));
        }
        // Written so that NaN fails too.
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(ChunkError::Gamma(self.gamma));
        }
        if self.obs_horizon < 1 {
            return Err(ChunkError::ObsHorizon(self.obs_horizon));
        }
        for (name, value) in [
            ("chunk horizon H", self.horizon),
            ("observation horizon To", self.obs_horizon),
        ] {
            if value > MAX_LENGTH {
                return Err(ChunkError::TooLong { name, value });
            }
        }
        Ok(())
    }

    /// `[gamma^0, gamma^1, ..., gamma^H]`, computed in f64.
    pub fn gamma_powers(&self) -> Vec<f64> {
        (0..=self.horizon)
            .map(|i| self.gamma.powi(i as i32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_rejected_with_their_value() {
        assert_eq!(ChunkSpec::new(0, 0.99, 1), Err(ChunkError::Horizon(0)));
        assert_eq!(ChunkSpec::new(4, 0.0, 1), Err(ChunkError::Gamma(0.0)));
        assert_eq!(ChunkSpec::new(4, 1.5, 1), Err(ChunkError::Gamma(1.5)));
        assert_eq!(ChunkSpec::new(4, -0.5, 1), Err(ChunkError::Gamma(-0.5)));
        assert!(matches!(
            ChunkSpec::new(4, f64::NAN, 1),
            Err(ChunkError::Gamma(_))
        ));
        assert_eq!(ChunkSpec::new(4, 0.99, 0), Err(ChunkError::ObsHorizon(0)));
        assert_eq!(
            ChunkError::Gamma(1.5).to_string(),
            "discount gamma must lie in (0, 1], got 1.5"
        );
        // Lengths that would overflow or exhaust memory in the index.
        assert!(ChunkSpec::new(MAX_LENGTH, 0.99, MAX_LENGTH).is_ok());
        assert_eq!(
            ChunkSpec::new(usize::MAX, 0.99, 1).unwrap_err().to_string(),
            format!("chunk horizon H must be at most 4096, got {}", usize::MAX)
        );
        assert_eq!(
            ChunkSpec::new(4, 0.99, MAX_LENGTH + 1),
            Err(ChunkError::TooLong {
                name: "observation horizon To",
                value: MAX_LENGTH + 1
            })
        );
    }

    #[test]
    fn gamma_one_and_h_one_are_allowed() {
        let spec = ChunkSpec::new(1, 1.0, 1).unwrap();
        assert_eq!(spec.gamma_powers(), vec![1.0, 1.0]);
        let spec = ChunkSpec::new(3, 0.5, 2).unwrap();
        assert_eq!(spec.gamma_powers(), vec![1.0, 0.5, 0.25, 0.125]);
    }
}
