//! The data of a run: the step data (loaded, or generated once for the
//! default), checked against the environment, and the normaliser fitted on
//! it.

use crate::data::{self, Normalizer, StepDataset};
use crate::env;

use super::{NO_ENV, TrainConfig, TrainError};

/// Loads the run's step data, generating the default dataset first if the
/// config names none and it is missing.
pub fn load_dataset(cfg: &TrainConfig, say: &dyn Fn(&str)) -> Result<StepDataset, TrainError> {
    let path = cfg.dataset_path();
    if cfg.dataset.is_empty() && !path.exists() {
        say(&format!(
            "generating {} ({} episode{} of {} {})",
            path.display(),
            cfg.dataset_episodes,
            if cfg.dataset_episodes == 1 { "" } else { "s" },
            cfg.env,
            cfg.level
        ));
        let generated = env::generate(&cfg.env, cfg.level, cfg.dataset_episodes, 0)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| TrainError::io("create", dir, e))?;
        }
        data::write_npz(&path, &generated)?;
    }
    let data = data::load(&path)?;
    if cfg.dataset.is_empty() && data.episodes().len() != cfg.dataset_episodes {
        return Err(TrainError::WrongEpisodeCount {
            path,
            episodes: data.episodes().len(),
            asked: cfg.dataset_episodes,
        });
    }
    for note in data.notes() {
        say(&format!("{}: note: {note}", data.source()));
    }
    Ok(data)
}

/// The normaliser of a run: observation mean/std from the data, and the
/// environment's action box (the data must fit it), or without an
/// environment the data's own action range.
pub(super) fn normalizer_for(
    cfg: &TrainConfig,
    data: &StepDataset,
    say: &dyn Fn(&str),
) -> Result<Normalizer, TrainError> {
    let fitted = Normalizer::fit(data);
    if !cfg.evaluates() {
        let range = fitted
            .action_low
            .iter()
            .zip(&fitted.action_high)
            .map(|(l, h)| format!("[{l:.4}, {h:.4}]"))
            .collect::<Vec<_>>()
            .join(" ");
        say(&format!(
            "env = {NO_ENV}: no evaluation; observation width {}, action width {}, \
             actions scaled from the data's range {range} (widened where an action never \
             varies)",
            data.obs_dim(),
            data.act_dim()
        ));
        return Ok(fitted);
    }
    let environment = env::make(&cfg.env)?;
    let spec = environment.spec();
    if spec.obs_dim != data.obs_dim() || spec.act_dim() != data.act_dim() {
        return Err(TrainError::DataDoesNotFitEnv {
            data: data.source().to_string(),
            obs_dim: data.obs_dim(),
            act_dim: data.act_dim(),
            env: spec.name.clone(),
            env_obs_dim: spec.obs_dim,
            env_act_dim: spec.act_dim(),
        });
    }
    check_action_bounds(data, spec)?;
    Ok(fitted.with_action_bounds(spec.action_low.clone(), spec.action_high.clone()))
}

/// The data's actions lie in the environment's action box (to 0.1% of its
/// width): the normaliser maps that box to [-1, 1], where the policies
/// sample, so actions outside it could never be reproduced and say that the
/// data was recorded for another environment or in other units.
fn check_action_bounds(data: &StepDataset, spec: &env::EnvSpec) -> Result<(), TrainError> {
    let (low, high) = (&spec.action_low, &spec.action_high);
    for (row, action) in data.actions().chunks(low.len()).enumerate() {
        for (j, &a) in action.iter().enumerate() {
            let slack = 1e-3 * (high[j] - low[j]) as f64;
            if (a as f64) < low[j] as f64 - slack || (a as f64) > high[j] as f64 + slack {
                return Err(TrainError::ActionOutsideRange {
                    data: data.source().to_string(),
                    row,
                    dim: j,
                    value: a,
                    env: spec.name.clone(),
                    low: low[j],
                    high: high[j],
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_outside_the_environment_box_are_refused_with_their_row() {
        let data = env::generate("pointmaze-umaze", env::Level::Medium, 2, 0).unwrap();
        let mut spec = env::make("pointmaze-umaze").unwrap().spec().clone();
        check_action_bounds(&data, &spec).unwrap();
        // A box half as wide: the data's full-scale actions now lie outside.
        spec.action_low = vec![-0.5, -0.5];
        spec.action_high = vec![0.5, 0.5];
        let error = check_action_bounds(&data, &spec).unwrap_err();
        let message = error.to_string();
        let (row, dim) = data
            .actions()
            .iter()
            .position(|a| a.abs() > 0.5 + 1e-3)
            .map(|i| (i / 2, i % 2))
            .unwrap();
        assert!(
            matches!(
                &error,
                TrainError::ActionOutsideRange { row: r, dim: d, low, high, .. }
                    if (*r, *d, *low, *high) == (row, dim, -0.5, 0.5)
            ),
            "{message}"
        );
        assert!(
            message.contains(&format!("key `actions` row {row}:"))
                && message.contains("outside pointmaze-umaze's action range [-0.5, 0.5]")
                && message.contains(&format!("(dimension {dim})")),
            "{message}"
        );
    }
}
