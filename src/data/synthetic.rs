//! A small built-in dataset that needs no environment: a point on a line
//! walking to a goal, recorded from a noisy behaviour policy. It has both
//! episode ends (termination at the goal, timeouts at the step limit), so it
//! exercises the whole chunk table.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::dataset::{StepDataset, StepRows};

/// Settings of the line-walk data.
#[derive(Debug, Clone, Copy)]
pub struct LineWalk {
    pub episodes: usize,
    /// Steps before a timeout.
    pub max_steps: usize,
    /// Probability that a step's action is uniform noise instead of the
    /// goal-seeking action.
    pub noise: f64,
    pub seed: u64,
}

impl Default for LineWalk {
    fn default() -> Self {
        LineWalk {
            episodes: 200,
            max_steps: 50,
            noise: 0.5,
            seed: 0,
        }
    }
}

impl LineWalk {
    /// Position x in [-1, 1] starts uniform in [-1, 0]; the action a in
    /// [-1, 1] moves it by 0.1 a (clipped to the line). Reaching x >= 0.9 gives
    /// reward 1 and terminates; every other step gives -0.01. Observation
    /// `[x, goal - x]` with goal 0.9; action `[a]`.
    pub fn generate(&self) -> StepDataset {
        const GOAL: f32 = 0.9;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut rows = StepRows::new(2, 1);
        let next = rows.next_observations.as_mut().expect("recorded");
        for _ in 0..self.episodes {
            let mut x: f32 = rng.random_range(-1.0..0.0);
            for step in 0..self.max_steps {
                let a: f32 = if rng.random_bool(self.noise) {
                    rng.random_range(-1.0..=1.0)
                } else {
                    ((GOAL - x) * 5.0).clamp(-1.0, 1.0)
                };
                rows.observations.extend([x, GOAL - x]);
                x = (x + 0.1 * a).clamp(-1.0, 1.0);
                next.extend([x, GOAL - x]);
                rows.actions.push(a);
                let reached = x >= GOAL;
                rows.rewards.push(if reached { 1.0 } else { -0.01 });
                rows.terminals.push(reached);
                rows.timeouts.push(!reached && step + 1 == self.max_steps);
                if reached {
                    break;
                }
            }
        }
        StepDataset::new("<line-walk>", rows.into_columns()).expect("generated data is valid")
    }
}

/// Uniform random step data for benchmarks: observations, actions, rewards
/// and next observations in [-1, 1), episodes of `episode_len` steps ending in
/// a timeout.
#[derive(Debug, Clone, Copy)]
pub struct RandomSteps {
    pub rows: usize,
    pub obs_dim: usize,
    pub act_dim: usize,
    pub episode_len: usize,
    pub seed: u64,
}

impl RandomSteps {
    pub fn generate(&self) -> StepDataset {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut uniform =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (n, o, a) = (self.rows, self.obs_dim, self.act_dim);
        let rows = StepRows {
            obs_dim: o,
            act_dim: a,
            observations: uniform(n * o),
            actions: uniform(n * a),
            rewards: uniform(n),
            terminals: vec![false; n],
            timeouts: (0..n)
                .map(|r| r % self.episode_len == self.episode_len - 1)
                .collect(),
            next_observations: Some(uniform(n * o)),
        };
        StepDataset::new("<random>", rows.into_columns()).expect("generated data is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::EpisodeEnd;

    #[test]
    fn line_walk_has_both_episode_ends_and_is_seeded() {
        let data = LineWalk {
            episodes: 100,
            ..LineWalk::default()
        }
        .generate();
        let ends = |k| data.episodes().iter().filter(|e| e.end_kind == k).count();
        assert_eq!(data.episodes().len(), 100);
        assert!(
            ends(EpisodeEnd::Terminal) > 10,
            "{}",
            ends(EpisodeEnd::Terminal)
        );
        assert!(ends(EpisodeEnd::Timeout) > 0);
        assert_eq!(ends(EpisodeEnd::EndOfData), 0);
        let again = LineWalk {
            episodes: 100,
            ..LineWalk::default()
        }
        .generate();
        assert_eq!(data.observations(), again.observations());
        // next_observations[t] is observations[t+1] inside an episode.
        for ep in data.episodes() {
            for t in ep.start..ep.end {
                assert_eq!(data.next_observation(t).unwrap(), data.observation(t + 1));
            }
        }
    }
}
