//! Tests of the agents that can fail: exact targets, policy evaluation against
//! an analytic value, multimodal behaviour cloning, learning on a small task,
//! checkpoints and devices.

mod act;
mod bc_term;
mod bimodal;
mod checkpoint;
mod evaluation;
mod learning;
mod losses;
mod split;
mod target;
mod target_random;
mod terminal_mask;

use std::sync::Arc;

use ndarray::{Array1, Array2};
use tch::{Tensor, nn};

use crate::chunk::{ChunkIndex, ChunkSpec};
use crate::critic::CriticConfig;
use crate::data::{LineWalk, Normalizer, StepColumns, StepDataset};
use crate::nn::UnetConfig;
use crate::policy::DenoiserConfig;

use super::AgentConfig;

/// One recorded episode (next_observations always recorded).
pub struct Recorded {
    pub observations: Vec<Vec<f32>>,
    pub actions: Vec<Vec<f32>>,
    pub rewards: Vec<f32>,
    pub next_observations: Vec<Vec<f32>>,
    /// The last step ended in a termination (else a timeout).
    pub terminated: bool,
}

/// Concatenates episodes into step data.
pub fn dataset(episodes: &[Recorded]) -> Arc<StepDataset> {
    let rows = |pick: &dyn Fn(&Recorded) -> &Vec<Vec<f32>>| -> Array2<f32> {
        let flat: Vec<Vec<f32>> = episodes
            .iter()
            .flat_map(|e| pick(e).iter().cloned())
            .collect();
        let width = flat[0].len();
        Array2::from_shape_vec((flat.len(), width), flat.concat()).unwrap()
    };
    let (mut terminals, mut timeouts) = (vec![], vec![]);
    for e in episodes {
        let n = e.rewards.len();
        terminals.extend((0..n).map(|i| i + 1 == n && e.terminated));
        timeouts.extend((0..n).map(|i| i + 1 == n && !e.terminated));
    }
    let columns = StepColumns {
        observations: rows(&|e| &e.observations).into_dyn(),
        actions: rows(&|e| &e.actions).into_dyn(),
        rewards: Array1::from_vec(episodes.iter().flat_map(|e| e.rewards.clone()).collect())
            .into_dyn(),
        terminals: Array1::from_vec(terminals).into_dyn(),
        timeouts: Array1::from_vec(timeouts).into_dyn(),
        next_observations: Some(rows(&|e| &e.next_observations).into_dyn()),
    };
    Arc::new(StepDataset::new("<test>", columns).unwrap())
}

pub fn index(data: Arc<StepDataset>, horizon: usize, gamma: f64, obs_horizon: usize) -> ChunkIndex {
    ChunkIndex::new(data, ChunkSpec::new(horizon, gamma, obs_horizon).unwrap()).unwrap()
}

/// `episodes` of the line-walk task (`data::LineWalk`), chunked with
/// horizon H, gamma 0.99 and `obs_horizon`, and its normaliser.
pub fn line_walk(episodes: usize, horizon: usize, obs_horizon: usize) -> (ChunkIndex, Normalizer) {
    let data = Arc::new(
        LineWalk {
            episodes,
            ..LineWalk::default()
        }
        .generate(),
    );
    let normalizer = Normalizer::fit(&data);
    (index(data, horizon, 0.99, obs_horizon), normalizer)
}

/// Small networks for fast tests: MLP policies and critics of the given
/// width, tiny U-Nets, EMA copying from the start.
pub fn small_config(width: i64) -> AgentConfig {
    let net = DenoiserConfig {
        hidden: vec![width, width],
        unet: UnetConfig {
            down_dims: vec![16, 32],
            n_groups: 8,
            time_embed_dim: 16,
            ..UnetConfig::default()
        },
        ..DenoiserConfig::default()
    };
    let mut cfg = AgentConfig {
        critic: CriticConfig {
            hidden: vec![width, width],
            state_hidden: vec![width],
            state_dim: 32,
            unet: UnetConfig {
                down_dims: vec![16, 32],
                n_groups: 8,
                ..UnetConfig::default()
            },
            ..CriticConfig::default()
        },
        ema_start: 0,
        ema_every: 1,
        ..AgentConfig::default()
    };
    cfg.diffusion.net = net.clone();
    cfg.consistency.net = net;
    cfg
}

/// The device the device tests run on: `CHUNKQL_TEST_DEVICE` (`cpu`, the
/// default, or `cuda`), so that a GPU machine runs
/// `CHUNKQL_TEST_DEVICE=cuda cargo test on_the_agent_device`.
pub fn test_device() -> tch::Device {
    match std::env::var("CHUNKQL_TEST_DEVICE").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => tch::Device::Cpu,
        Ok("cuda") => crate::device::cuda(0).expect("CHUNKQL_TEST_DEVICE=cuda"),
        Ok(other) => panic!("CHUNKQL_TEST_DEVICE={other}: use cpu or cuda"),
    }
}

/// Runs with one intra-op thread: test threads already share the 2 cores.
pub fn one_thread() {
    tch::set_num_threads(1);
}

/// Linear twin critics: no hidden layer (hence no LayerNorm) and no mask
/// input, so that `set_linear_critics` can give them known weights.
pub fn linear_critics(cfg: &mut AgentConfig) {
    cfg.critic.hidden = vec![];
    cfg.critic.use_mask = false;
}

/// Sets the twin critic of `vs` (an `mlp` critic under [`linear_critics`])
/// to Q1(s, c) = q1.0 . [s, vec(c)] + q1.1 and Q2 likewise from `q2`; the
/// input is the flattened history followed by the flattened chunk.
pub fn set_linear_critics(vs: &nn::VarStore, q1: (&[f32], f32), q2: (&[f32], f32)) {
    let vars = vs.variables();
    let (weight, bias) = (
        &vars["heads.out.stacked_weight"],
        &vars["heads.out.stacked_bias"],
    );
    let n = q1.0.len() as i64;
    assert_eq!(weight.size(), vec![2, n, 1], "critic input width");
    assert_eq!(q2.0.len() as i64, n);
    crate::nn::no_grad(|| {
        let w = Tensor::from_slice(&[q1.0, q2.0].concat()).view([2, n, 1]);
        weight.shallow_clone().copy_(&w);
        let b = Tensor::from_slice(&[q1.1, q2.1]).view([2, 1, 1]);
        bias.shallow_clone().copy_(&b);
    });
}

/// Multiplies the output layer of an `mlp` policy network in `vs` by
/// `factor`. With 0 the network's output is 0 for every input, so that with
/// silent noise both policies sample the all-zero chunk: DDPM from x = 0
/// predicts eps = 0, so x0 = 0 and every posterior mean is 0; the
/// consistency model returns c_skip * 0 + c_out * 0.
pub fn scale_policy_output(vs: &nn::VarStore, factor: f64) {
    let vars = vs.variables();
    crate::nn::no_grad(|| {
        for name in ["net.mlp.out.weight", "net.mlp.out.bias"] {
            let _ = vars[name].shallow_clone().g_mul_scalar_(factor);
        }
    });
}

#[test]
fn the_first_measurement_that_is_not_finite_is_named() {
    use crate::agent::Metrics;
    assert_eq!(Metrics::default().first_non_finite(), None);
    let m = Metrics {
        actor_grad_norm: f64::INFINITY,
        actor_lr: f64::NAN,
        ..Metrics::default()
    };
    assert_eq!(
        m.first_non_finite(),
        Some(("actor_grad_norm", f64::INFINITY))
    );
}
