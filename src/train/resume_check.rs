//! A resumed run must continue the run its checkpoint was saved from: the
//! run folder's `config.toml` may change only what does not touch the
//! numbers (how long to train, where and on how many threads, how often to
//! log, evaluate and checkpoint; where the data lies, when its fingerprint,
//! checked by the resume, is the saved one). Anything else edited there would be
//! silently ignored (the checkpoint's agent wins) or crash inside libtorch
//! (a new H), so it is refused, naming the keys.

use serde::Serialize;
use serde_json::Value;

use super::TrainConfig;
use crate::agent::AnyAgent;
use crate::chunk::ChunkDims;

/// Top-level keys a resume may change.
/// Evaluation draws from its own seed ([`super::eval_seed`]), so its
/// settings leave the training numbers alone.
const MAY_CHANGE: [&str; 9] = [
    "steps",
    "threads",
    "device",
    "log_every",
    "eval_every",
    "eval_episodes",
    "execute",
    "ensemble",
    "checkpoint_every",
];

/// The keys (dotted paths) whose values differ between `saved` and `now`,
/// each as `key (saved, now)`, leaving out [`MAY_CHANGE`].
pub fn config_changes(saved: &TrainConfig, now: &TrainConfig) -> Vec<String> {
    let mut changes = Vec::new();
    diff("", &json(saved), &json(now), &mut changes);
    changes.retain(|c| !MAY_CHANGE.iter().any(|k| c.starts_with(&format!("{k} "))));
    changes
}

/// Settings of a run's final evaluation: a complete run's files record the
/// evaluation made with them.
const FINAL_EVAL: [&str; 3] = ["eval_episodes", "execute", "ensemble"];

/// The [`FINAL_EVAL`] settings whose values differ between `saved` and
/// `now`, each as `key (saved, now)`.
pub fn final_eval_changes(saved: &TrainConfig, now: &TrainConfig) -> Vec<String> {
    let mut changes = Vec::new();
    diff("", &json(saved), &json(now), &mut changes);
    changes.retain(|c| FINAL_EVAL.iter().any(|k| c.starts_with(&format!("{k} "))));
    changes
}

/// What the agent restored from the checkpoint disagrees with in `cfg`
/// (the algorithm, the `[agent]` section) or with the chunks the data and
/// `cfg` give (`dims`: widths, H, To). The only check for checkpoints that
/// predate the config stored with the loop state; for newer ones it still
/// catches a data file whose widths changed since the run started.
pub fn agent_changes(agent: &AnyAgent, cfg: &TrainConfig, dims: ChunkDims) -> Vec<String> {
    let mut changes = Vec::new();
    if agent.algorithm() != cfg.algorithm {
        changes.push(format!(
            "algorithm ({}, {})",
            agent.algorithm(),
            cfg.algorithm
        ));
    }
    diff(
        "agent",
        &json(agent.config()),
        &json(&cfg.agent),
        &mut changes,
    );
    if agent.dims() != dims {
        changes.push(format!(
            "chunk shape (H {} To {} O {} A {}, H {} To {} O {} A {})",
            agent.dims().horizon,
            agent.dims().obs_horizon,
            agent.dims().obs_dim,
            agent.dims().act_dim,
            dims.horizon,
            dims.obs_horizon,
            dims.obs_dim,
            dims.act_dim
        ));
    }
    changes
}

fn json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("configs serialise")
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let missing = Value::Null;
                diff(
                    &sub,
                    a.get(key).unwrap_or(&missing),
                    b.get(key).unwrap_or(&missing),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(format!("{path} ({a}, {b})")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(sets: &[&str]) -> TrainConfig {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        TrainConfig::default().with_overrides(&sets).unwrap()
    }

    #[test]
    fn only_the_numbers_of_the_run_are_refused() {
        let saved = with(&[]);
        assert!(config_changes(&saved, &saved).is_empty());
        let harmless = with(&[
            "steps=99",
            "threads=1",
            "device=\"cuda\"",
            "log_every=7",
            "eval_every=0",
            "eval_episodes=3",
            "execute=1",
            "ensemble=0.5",
            "checkpoint_every=5",
        ]);
        assert_eq!(config_changes(&saved, &harmless), Vec::<String>::new());
        assert_eq!(
            final_eval_changes(&saved, &harmless),
            vec![
                "ensemble (null, 0.5)".to_string(),
                "eval_episodes (10, 3)".to_string(),
                "execute (0, 1)".to_string(),
            ]
        );
        let edited = with(&["horizon=8", "gamma=0.9", "agent.critic.hidden=[64]"]);
        assert_eq!(
            config_changes(&saved, &edited),
            vec![
                "agent.critic.hidden ([256,256,256], [64])".to_string(),
                "gamma (0.99, 0.9)".to_string(),
                "horizon (4, 8)".to_string(),
            ]
        );
    }

    /// The checkpoint carries the run's config as JSON text; serde_json
    /// reads 17-digit floats exactly only with its `float_roundtrip`
    /// feature (without it 1 - 1/300 comes back one bit off and the resume
    /// is refused for an edit nobody made).
    #[test]
    fn configs_come_back_from_the_checkpoint_text_unchanged() {
        let awkward = with(&[
            "gamma=0.9966666666666667",
            "agent.actor_lr=9.999999999999999e-05",
            "agent.tau=0.9974905699336811",
        ]);
        let text = serde_json::to_string(&serde_json::to_value(&awkward).unwrap()).unwrap();
        let back: TrainConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(config_changes(&awkward, &back), Vec::<String>::new());
        assert_eq!(back.gamma.to_bits(), awkward.gamma.to_bits());
    }

    proptest::proptest! {
        #[test]
        fn any_gamma_comes_back_from_the_checkpoint_text_unchanged(gamma in 0.5f64..1.0) {
            let saved = with(&[&format!("gamma={gamma:?}")]);
            let text = serde_json::to_string(&serde_json::to_value(&saved).unwrap()).unwrap();
            let back: TrainConfig = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(back.gamma.to_bits(), gamma.to_bits());
        }
    }
}
