//! Dataset generation: roll a task's scripted behaviour policy and record
//! step data (next_observations included, so chunks ending on a time limit
//! are usable), with terminations and timeouts as the environment reports.

use std::fmt;
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Env, UnknownEnv, make};
use crate::data::{StepDataset, StepRows};

/// Quality of the behaviour policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The scripted expert with a little action noise.
    Expert,
    /// The expert with much more action noise in every episode, and worse
    /// in varied ways (pendulum: weaker controller gains in half of the
    /// episodes; mazes: random detours, with a detour rate drawn per
    /// episode).
    Medium,
    /// Uniform random actions.
    Random,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Expert => "expert",
            Level::Medium => "medium",
            Level::Random => "random",
        })
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "expert" => Ok(Level::Expert),
            "medium" => Ok(Level::Medium),
            "random" => Ok(Level::Random),
            other => Err(format!(
                "unknown level `{other}` (known: expert, medium, random)"
            )),
        }
    }
}

/// A scripted data-collection policy.
pub trait Behaviour: Send {
    /// Called after every reset with the episode's first observation.
    fn reset(&mut self, obs: &[f32]);
    /// Writes the action for `obs` into `action: [A]` (the environment clips).
    fn act(&mut self, obs: &[f32], rng: &mut ChaCha8Rng, action: &mut [f32]);
}

/// Uniform random actions within the bounds.
#[derive(Debug, Clone)]
pub struct RandomBehaviour {
    pub low: Vec<f32>,
    pub high: Vec<f32>,
}

impl Behaviour for RandomBehaviour {
    fn reset(&mut self, _obs: &[f32]) {}
    fn act(&mut self, _obs: &[f32], rng: &mut ChaCha8Rng, action: &mut [f32]) {
        for ((a, lo), hi) in action.iter_mut().zip(&self.low).zip(&self.high) {
            *a = rng.random_range(*lo..=*hi);
        }
    }
}

/// Seed of episode `k` of a run seeded with `seed` (distinct, reproducible).
pub fn seed_for(seed: u64, k: u64) -> u64 {
    // SplitMix64 of (seed, k): nearby seeds give unrelated episodes.
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Records `episodes` episodes of `env_name`'s behaviour policy at `level`.
///
/// # Panics
/// If `episodes` is 0 (a dataset has at least one row).
pub fn generate(
    env_name: &str,
    level: Level,
    episodes: usize,
    seed: u64,
) -> Result<StepDataset, UnknownEnv> {
    let mut env = make(env_name)?;
    let mut behaviour = env.behaviour(level);
    Ok(record(
        env.as_mut(),
        behaviour.as_mut(),
        episodes,
        seed,
        &format!("<{env_name} {level}>"),
    ))
}

/// Rolls `behaviour` in `env` for `episodes` episodes (episode k reset with
/// `seed_for(seed, k)`, actions drawn from a stream seeded with `seed`).
///
/// # Panics
/// If `episodes` is 0 (a dataset has at least one row).
pub fn record(
    env: &mut dyn Env,
    behaviour: &mut dyn Behaviour,
    episodes: usize,
    seed: u64,
    source: &str,
) -> StepDataset {
    assert!(episodes > 0, "record: at least one episode");
    let spec = env.spec().clone();
    let (o, a) = (spec.obs_dim, spec.act_dim());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = StepRows::new(o, a);
    let mut current = vec![0f32; o];
    let mut after = vec![0f32; o];
    let mut action = vec![0f32; a];
    for k in 0..episodes {
        env.reset(seed_for(seed, k as u64), &mut current);
        behaviour.reset(&current);
        loop {
            behaviour.act(&current, &mut rng, &mut action);
            for ((x, lo), hi) in action
                .iter_mut()
                .zip(&spec.action_low)
                .zip(&spec.action_high)
            {
                *x = x.clamp(*lo, *hi);
            }
            let step = env.step(&action, &mut after);
            rows.observations.extend_from_slice(&current);
            rows.actions.extend_from_slice(&action);
            rows.next_observations
                .as_mut()
                .expect("recorded")
                .extend_from_slice(&after);
            rows.rewards.push(step.reward as f32);
            rows.terminals.push(step.terminated);
            rows.timeouts.push(step.truncated && !step.terminated);
            if step.terminated || step.truncated {
                break;
            }
            std::mem::swap(&mut current, &mut after);
        }
    }
    StepDataset::new(source, rows.into_columns()).expect("environments produce finite data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_print() {
        for level in [Level::Expert, Level::Medium, Level::Random] {
            assert_eq!(level.to_string().parse::<Level>().unwrap(), level);
        }
        assert!(
            "great"
                .parse::<Level>()
                .unwrap_err()
                .contains("unknown level")
        );
    }

    #[test]
    #[should_panic(expected = "record: at least one episode")]
    fn zero_episodes_is_a_named_panic() {
        let _ = generate("pendulum", Level::Random, 0, 0);
    }

    #[test]
    fn episode_seeds_differ_and_repeat() {
        assert_eq!(seed_for(1, 2), seed_for(1, 2));
        assert_ne!(seed_for(1, 2), seed_for(1, 3));
        assert_ne!(seed_for(1, 2), seed_for(2, 2));
    }

    /// Pendulum only ever truncates at step 200: each episode's last row is
    /// a timeout (never a terminal), its next observation is the state the
    /// last action led to (not the next episode's reset state), and inside
    /// an episode each row's next observation is the following row's.
    #[test]
    fn time_limits_are_recorded_as_timeouts_with_their_next_state() {
        let data = generate("pendulum", Level::Medium, 2, 3).unwrap();
        assert_eq!(data.len(), 400);
        let ends: Vec<usize> = (0..400).filter(|&t| data.timeouts()[t]).collect();
        assert_eq!(ends, vec![199, 399]);
        assert!(data.terminals().iter().all(|&d| !d));
        for t in 0..399 {
            let next = data.next_observation(t).unwrap();
            if t == 199 {
                assert_ne!(
                    next,
                    data.observation(200),
                    "the reset state is not the next state"
                );
            } else {
                assert_eq!(next, data.observation(t + 1), "row {t}");
            }
        }
    }

    /// `pointmaze-umaze-terminal`: the expert's episodes end on their first
    /// rewarded step, recorded as a terminal (not a timeout).
    #[test]
    fn reaching_a_terminal_goal_is_recorded_as_a_terminal() {
        let data = generate("pointmaze-umaze-terminal", Level::Expert, 3, 0).unwrap();
        assert_eq!(data.episodes().len(), 3);
        assert!(
            data.timeouts().iter().all(|&d| !d),
            "the expert reaches the goal in time"
        );
        for ep in data.episodes() {
            assert!(
                data.terminals()[ep.end],
                "episode {ep:?} ends in a terminal"
            );
            assert_eq!(data.rewards()[ep.end], 1.0);
            assert!(data.rewards()[ep.start..ep.end].iter().all(|&r| r == 0.0));
            assert!(data.terminals()[ep.start..ep.end].iter().all(|&d| !d));
        }
    }
}
