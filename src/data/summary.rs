//! `DatasetSummary`: what `chunkql dataset info` prints about step data.

use std::fmt;

use super::dataset::{EpisodeEnd, StepDataset};

/// Min / mean / max / standard deviation of a list of numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub std: f64,
}

impl Stats {
    /// Stats of `values`; all zero for an empty list. The variance is
    /// Welford's running one, so that values far from zero with a small
    /// spread keep their digits (`E[x^2] - E[x]^2` would cancel them).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stats {
        let (mut n, mut mean, mut m2) = (0usize, 0.0f64, 0.0f64);
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            n += 1;
            let delta = v - mean;
            mean += delta / n as f64;
            m2 += delta * (v - mean);
            min = min.min(v);
            max = max.max(v);
        }
        if n == 0 {
            return Stats {
                min: 0.0,
                mean: 0.0,
                max: 0.0,
                std: 0.0,
            };
        }
        Stats {
            min,
            mean,
            max,
            std: (m2 / n as f64).max(0.0).sqrt(),
        }
    }
}

/// Episode structure and value ranges of a dataset.
#[derive(Debug, Clone)]
pub struct DatasetSummary {
    pub source: String,
    pub rows: usize,
    pub obs_dim: usize,
    pub act_dim: usize,
    pub has_next_observations: bool,
    pub episodes: usize,
    pub terminal_episodes: usize,
    pub timeout_episodes: usize,
    pub unfinished_episodes: usize,
    /// Episode lengths in steps.
    pub length: Stats,
    /// Undiscounted episode returns.
    pub episode_return: Stats,
    pub reward: Stats,
    pub action_min: f64,
    pub action_max: f64,
    pub notes: Vec<String>,
}

impl DatasetSummary {
    pub fn of(data: &StepDataset) -> DatasetSummary {
        let episodes = data.episodes();
        let count = |kind: EpisodeEnd| episodes.iter().filter(|e| e.end_kind == kind).count();
        let rewards = data.rewards();
        let returns = episodes.iter().map(|e| {
            rewards[e.start..=e.end]
                .iter()
                .map(|&r| r as f64)
                .sum::<f64>()
        });
        let actions = Stats::of(data.actions().iter().map(|&a| a as f64));
        DatasetSummary {
            source: data.source().to_string(),
            rows: data.len(),
            obs_dim: data.obs_dim(),
            act_dim: data.act_dim(),
            has_next_observations: data.next_observations().is_some(),
            episodes: episodes.len(),
            terminal_episodes: count(EpisodeEnd::Terminal),
            timeout_episodes: count(EpisodeEnd::Timeout),
            unfinished_episodes: count(EpisodeEnd::EndOfData),
            length: Stats::of(episodes.iter().map(|e| e.len() as f64)),
            episode_return: Stats::of(returns),
            reward: Stats::of(rewards.iter().map(|&r| r as f64)),
            action_min: actions.min,
            action_max: actions.max,
            notes: data.notes().to_vec(),
        }
    }
}

impl fmt::Display for DatasetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |st: &Stats| {
            format!(
                "min {}  mean {}  max {}  std {}",
                fixed3(st.min),
                fixed3(st.mean),
                fixed3(st.max),
                fixed3(st.std)
            )
        };
        // Lengths are whole steps: min and max print as integers.
        let lengths = format!(
            "min {:.0}  mean {}  max {:.0}  std {}",
            self.length.min,
            fixed3(self.length.mean),
            self.length.max,
            fixed3(self.length.std)
        );
        writeln!(f, "dataset            {}", self.source)?;
        writeln!(f, "rows               {}", self.rows)?;
        writeln!(
            f,
            "dims               observation {}  action {}  next_observations {}",
            self.obs_dim,
            self.act_dim,
            if self.has_next_observations {
                "yes"
            } else {
                "no"
            }
        )?;
        writeln!(
            f,
            "episodes           {} ({} terminal, {} timeout, {} cut by the end of the data)",
            self.episodes, self.terminal_episodes, self.timeout_episodes, self.unfinished_episodes
        )?;
        writeln!(f, "episode length     {lengths}")?;
        writeln!(f, "episode return     {}", s(&self.episode_return))?;
        writeln!(f, "reward             {}", s(&self.reward))?;
        write!(
            f,
            "action range       [{}, {}]",
            fixed3(self.action_min),
            fixed3(self.action_max)
        )?;
        for note in &self.notes {
            write!(f, "\nnote               {note}")?;
        }
        Ok(())
    }
}

/// `x` with three decimals, without the sign of a value that rounds to
/// zero (`-0.0001` and `-0.0` print `0.000`, not `-0.000`).
fn fixed3(x: f64) -> String {
    let text = format!("{x:.3}");
    match text.strip_prefix('-') {
        Some(magnitude) if magnitude.bytes().all(|b| b == b'0' || b == b'.') => {
            magnitude.to_string()
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_known_list() {
        let st = Stats::of([1.0, 2.0, 3.0, 6.0]);
        assert_eq!((st.min, st.mean, st.max), (1.0, 3.0, 6.0));
        // population variance: (4 + 1 + 0 + 9) / 4 = 3.5
        assert!((st.std - 3.5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn stats_keep_a_small_spread_far_from_zero() {
        // 1e8 + {-1, 0, +1}: std sqrt(2/3). E[x^2] - E[x]^2 in f64 is
        // 1e16 + 2/3 - 1e16, where doubles near 1e16 are 2 apart: 0.
        let st = Stats::of([1e8 - 1.0, 1e8, 1e8 + 1.0]);
        assert_eq!(st.mean, 1e8);
        assert!((st.std - (2.0f64 / 3.0).sqrt()).abs() < 1e-9, "{}", st.std);
    }

    #[test]
    fn fixed3_drops_the_sign_of_a_rounded_zero() {
        assert_eq!(fixed3(-0.0), "0.000");
        assert_eq!(fixed3(-0.0004), "0.000");
        assert_eq!(fixed3(-0.0005), "-0.001");
        assert_eq!(fixed3(-1.25), "-1.250");
        assert_eq!(fixed3(0.0), "0.000");
        assert_eq!(fixed3(f64::NEG_INFINITY), "-inf");
    }

    fn summary() -> DatasetSummary {
        DatasetSummary {
            source: "x.npz".into(),
            rows: 400,
            obs_dim: 3,
            act_dim: 1,
            has_next_observations: true,
            episodes: 2,
            terminal_episodes: 0,
            timeout_episodes: 2,
            unfinished_episodes: 0,
            length: Stats::of([200.0, 200.0]),
            episode_return: Stats::of([-3.5, -0.0001]),
            reward: Stats {
                min: -2.0,
                mean: -0.01,
                max: -0.00001,
                std: 0.5,
            },
            action_min: -0.0,
            action_max: 2.0,
            notes: vec![],
        }
    }

    #[test]
    fn lengths_print_min_and_max_as_integers() {
        let text = summary().to_string();
        assert!(
            text.contains("episode length     min 200  mean 200.000  max 200  std 0.000\n"),
            "{text}"
        );
    }

    #[test]
    fn values_that_round_to_zero_print_without_a_minus_sign() {
        let text = summary().to_string();
        assert!(!text.contains("-0.000"), "{text}");
        assert!(
            text.contains("reward             min -2.000  mean -0.010  max 0.000  std 0.500\n"),
            "{text}"
        );
        assert!(
            text.contains("episode return     min -3.500  mean -1.750  max 0.000  std 1.750\n"),
            "{text}"
        );
        assert!(
            text.ends_with("action range       [0.000, 2.000]"),
            "{text}"
        );
    }
}
