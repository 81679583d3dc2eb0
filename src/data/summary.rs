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
    /// Stats of `values`; all zero for an empty list.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stats {
        let (mut n, mut sum, mut sum_sq) = (0usize, 0.0f64, 0.0f64);
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            n += 1;
            sum += v;
            sum_sq += v * v;
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
        let mean = sum / n as f64;
        let var = (sum_sq / n as f64 - mean * mean).max(0.0);
        Stats {
            min,
            mean,
            max,
            std: var.sqrt(),
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
                "min {:.3}  mean {:.3}  max {:.3}  std {:.3}",
                st.min, st.mean, st.max, st.std
            )
        };
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
        writeln!(f, "episode length     {}", s(&self.length))?;
        writeln!(f, "episode return     {}", s(&self.episode_return))?;
        writeln!(f, "reward             {}", s(&self.reward))?;
        write!(
            f,
            "action range       [{:.3}, {:.3}]",
            self.action_min, self.action_max
        )?;
        for note in &self.notes {
            write!(f, "\nnote               {note}")?;
        }
        Ok(())
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
}
