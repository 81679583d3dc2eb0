//! Reference returns for normalised scores: the mean undiscounted return of
//! the random and the expert behaviour policies of each task, measured by
//! this project (`chunkql reference ENV`, which prints these numbers).

use serde::Serialize;

use crate::data::DatasetSummary;
use crate::env::{Level, UnknownEnv, generate};

/// Mean returns of the random and expert behaviour policies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReferenceReturns {
    pub random: f64,
    pub expert: f64,
}

impl ReferenceReturns {
    /// 100 (R - R_random) / (R_expert - R_random).
    pub fn normalize(&self, episode_return: f64) -> f64 {
        100.0 * (episode_return - self.random) / (self.expert - self.random)
    }
}

/// The stored reference returns of a task, measured on 2026-11-25 with
/// `chunkql reference ENV --episodes 100 --seed 0` (episode seeds
/// `seed_for(0, k)`, k < 100; see docs/results.md). Rerun that command after
/// changing an environment or its behaviour policies.
pub fn reference_returns(env: &str) -> Option<ReferenceReturns> {
    let (random, expert) = match env {
        "pendulum" => (-1211.265, -155.501),
        "pointmaze-umaze" => (16.980, 232.000),
        "pointmaze-medium" => (6.310, 462.590),
        "pointmaze-large" => (8.510, 612.350),
        "pointmaze-umaze-terminal" => (0.130, 1.000),
        "pointmaze-medium-terminal" => (0.060, 1.000),
        "pointmaze-large-terminal" => (0.040, 1.000),
        _ => return None,
    };
    Some(ReferenceReturns { random, expert })
}

/// Measures the reference returns of `env` over `episodes` episodes.
///
/// # Panics
/// If `episodes` is 0.
pub fn measure_reference(
    env: &str,
    episodes: usize,
    seed: u64,
) -> Result<ReferenceReturns, UnknownEnv> {
    let mean_return = |level| -> Result<f64, UnknownEnv> {
        Ok(DatasetSummary::of(&generate(env, level, episodes, seed)?)
            .episode_return
            .mean)
    };
    Ok(ReferenceReturns {
        random: mean_return(Level::Random)?,
        expert: mean_return(Level::Expert)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_env_has_reference_returns() {
        for name in crate::env::ENV_NAMES {
            let refs = reference_returns(name).unwrap_or_else(|| panic!("{name}"));
            assert!(refs.expert > refs.random, "{name}");
        }
    }

    /// A drift check: the stored numbers are this code's own earlier output,
    /// so this fails when an environment or a behaviour policy changes
    /// without the table being remeasured (the command above).
    #[test]
    fn stored_references_match_a_fresh_measurement() {
        for name in crate::env::ENV_NAMES {
            let measured = measure_reference(name, 100, 0).unwrap();
            let stored = reference_returns(name).unwrap();
            // Stored to 3 decimals.
            assert!(
                (measured.random - stored.random).abs() < 1e-3
                    && (measured.expert - stored.expert).abs() < 1e-3,
                "{name}: measured {measured:?}, stored {stored:?}"
            );
        }
    }

    #[test]
    fn normalisation_maps_random_to_0_and_expert_to_100() {
        let r = ReferenceReturns {
            random: -1200.0,
            expert: -150.0,
        };
        assert_eq!(r.normalize(-1200.0), 0.0);
        assert_eq!(r.normalize(-150.0), 100.0);
        assert_eq!(r.normalize(-675.0), 50.0);
    }
}
