//! A chunk that ends the episode teaches the critic the value of the whole
//! chunk. Near a terminal state every chunk of the data is cut short by the
//! termination, yet the SMDP target and the actor ask the critic about
//! whole chunks (full mask) there. The steps after a termination change
//! nothing, so such a chunk's value is the whole chunk's value: the critic
//! must be fitted on it with a full mask, or the values it is asked for
//! near the goal were never supervised.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::agent::DiffusionQl;
use crate::critic::full_mask;

const CELLS: usize = 6; // positions 0..=5; entering 5 ends the episode with reward 1
const H: usize = 3;
const GAMMA: f64 = 0.9;
const UPDATES: u64 = 2000;

fn one_hot(s: usize) -> Vec<f32> {
    (0..CELLS).map(|k| if k == s { 1.0 } else { 0.0 }).collect()
}

/// The behaviour walks right from a random start until it reaches the goal,
/// so from positions 3 and 4 every chunk of the data ends the episode.
fn generate(episodes: usize, seed: u64) -> Vec<Recorded> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..episodes)
        .map(|_| {
            let start = rng.random_range(0..CELLS - 1);
            let path: Vec<usize> = (start..CELLS - 1).collect();
            Recorded {
                observations: path.iter().map(|&s| one_hot(s)).collect(),
                actions: path.iter().map(|_| vec![1.0]).collect(),
                rewards: path
                    .iter()
                    .map(|&s| f32::from(s + 1 == CELLS - 1))
                    .collect(),
                next_observations: path.iter().map(|&s| one_hot(s + 1)).collect(),
                terminated: true,
            }
        })
        .collect()
}

/// Q(s, [+1; H]) of the walk: the reward of entering the goal, 4 - s steps
/// away, discounted.
fn exact_value(s: usize) -> f64 {
    GAMMA.powi((CELLS - 2 - s) as i32)
}

/// Trains the critic by policy evaluation (the next chunk is the
/// behaviour's, all +1, with a full mask) and returns |Q - Q^pi| of the
/// whole chunk [+1; H] at every position.
fn full_chunk_errors() -> Vec<f64> {
    one_thread();
    let index = index(dataset(&generate(400, 0)), H, GAMMA, 1);
    let mut cfg = small_config(64);
    cfg.critic_lr = 1e-3;
    cfg.tau = 0.02;
    cfg.lr_decay_steps = UPDATES;
    cfg.critic.layer_norm = false;
    let dims = index.dims();
    let mut agent =
        DiffusionQl::new(cfg, dims, Normalizer::identity(CELLS, 1), Device::Cpu, 0).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut batch = index.empty_batch(256);
    let next = Tensor::ones([256, H as i64, 1], (Kind::Float, Device::Cpu));
    for _ in 0..UPDATES {
        index.sample_into(&mut batch, &mut rng);
        let b = agent.tensors(&batch);
        agent.critic_step(&b, &next);
        agent.update_targets();
        agent.step += 1;
        agent.set_learning_rates();
    }
    let positions = CELLS - 1;
    let obs = Tensor::from_slice(&(0..positions).flat_map(one_hot).collect::<Vec<_>>())
        .view([positions as i64, CELLS as i64]);
    let chunk = Tensor::ones([positions as i64, H as i64, 1], (Kind::Float, Device::Cpu));
    let mask = full_mask(positions as i64, H as i64, Device::Cpu);
    let q = crate::nn::no_grad(|| agent.critic.min(&obs, &chunk, &mask));
    let q: Vec<f32> = Vec::try_from(q).unwrap();
    (0..positions)
        .map(|s| (q[s] as f64 - exact_value(s)).abs())
        .collect()
}

#[test]
fn near_a_terminal_the_critic_knows_the_whole_chunk_value() {
    assert!((exact_value(4) - 1.0).abs() < 1e-12);
    assert!((exact_value(0) - GAMMA.powi(4)).abs() < 1e-12);
    let errors = full_chunk_errors();
    eprintln!("|Q(s, [+1; H]) - Q^pi| at s = 0..=4: {errors:.4?}");
    // Positions 3 and 4 only ever start chunks that end the episode;
    // 0 and 1 bootstrap from them.
    for (s, e) in errors.iter().enumerate() {
        assert!(
            *e < 0.01,
            "position {s}: |Q - Q^pi| = {e:.4} ({errors:.4?})"
        );
    }
}
