//! Short Diffusion-QL and CPQL runs on the built-in line-walk data lower the
//! critic loss and learn that moving towards the goal is worth more than
//! moving away, and the policy's chunks move towards the goal (Diffusion-QL
//! also with each batch split over two threads, CPQL with either BC loss).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::agent::{AgentConfig, ChunkAgent, ChunkPolicy, Metrics};
use crate::noise::NoiseSource;
use crate::policy::{ConsistencyLoss, ConsistencyPolicy, DiffusionPolicy};

const H: usize = 4;

/// Observation histories `[n, 1, 2]` at positions `xs` ([x, goal - x]).
fn states(xs: &[f32]) -> Tensor {
    let obs: Vec<f32> = xs.iter().flat_map(|&x| [x, 0.9 - x]).collect();
    Tensor::from_slice(&obs).view([xs.len() as i64, 1, 2])
}

/// Mean over `xs` of Q(s, [+1]*H) - Q(s, [-1]*H) (min of the twins).
fn preference<P: ChunkPolicy>(agent: &ChunkAgent<P>, xs: &[f32]) -> f64 {
    let n = xs.len() as i64;
    let q = |a: f64| {
        let chunk = Tensor::full([n, H as i64, 1], a, (Kind::Float, Device::Cpu));
        let (q1, q2) = agent.q_values(&states(xs), &chunk);
        q1.minimum(&q2)
    };
    (q(1.0) - q(-1.0)).mean(Kind::Float).double_value(&[])
}

fn mean(ms: &[Metrics], f: impl Fn(&Metrics) -> f64) -> f64 {
    ms.iter().map(f).sum::<f64>() / ms.len() as f64
}

fn short_run<P: ChunkPolicy>(name: &str, workers: usize) {
    short_run_with::<P>(name, workers, |_| {});
}

fn short_run_with<P: ChunkPolicy>(
    name: &str,
    workers: usize,
    change: impl FnOnce(&mut AgentConfig),
) {
    one_thread();
    let (index, normalizer) = line_walk(300, H, 1);
    let mut cfg = small_config(64);
    cfg.actor_lr = 1e-3;
    cfg.critic_lr = 1e-3;
    change(&mut cfg);
    let mut agent =
        ChunkAgent::<P>::new(cfg, index.empty_batch(1).dims(), normalizer, Device::Cpu, 0).unwrap();
    agent.set_workers(workers, 1).unwrap();
    let xs = [-0.2f32, 0.2, 0.5, 0.7];
    let before = preference(&agent, &xs);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut batch = index.empty_batch(128);
    let metrics: Vec<Metrics> = (0..500)
        .map(|_| {
            index.sample_into(&mut batch, &mut rng);
            agent.update(&batch)
        })
        .collect();
    let after = preference(&agent, &xs);
    let (first, last) = (
        mean(&metrics[..50], |m| m.critic_loss),
        mean(&metrics[450..], |m| m.critic_loss),
    );
    let chunks = agent.act(&states(&xs), &mut NoiseSource::new(3, Device::Cpu));
    let mean_action = chunks.mean(Kind::Float).double_value(&[]);
    eprintln!(
        "{name}: critic loss {first:.5} -> {last:.5}, Q(+1) - Q(-1) {before:.4} -> {after:.4}, \
         mean action {mean_action:.3}, bc {:.4}",
        mean(&metrics[450..], |m| m.bc_loss)
    );
    assert!(
        metrics
            .iter()
            .all(|m| m.critic_loss.is_finite() && m.actor_loss.is_finite())
    );
    assert!(last < 0.5 * first, "{name}: critic loss {first} -> {last}");
    assert!(
        after > 0.05 && after > before + 0.05,
        "{name}: Q preference {before} -> {after}"
    );
    assert!(
        mean_action > 0.3,
        "{name}: the policy should move towards the goal, mean action {mean_action}"
    );
}

#[test]
fn diffusion_ql_learns_to_prefer_moving_to_the_goal() {
    short_run::<DiffusionPolicy>("Diffusion-QL", 1);
}

#[test]
fn diffusion_ql_learns_with_the_batch_split_over_two_threads() {
    short_run::<DiffusionPolicy>("Diffusion-QL, 2 slices", 2);
}

#[test]
fn cpql_learns_to_prefer_moving_to_the_goal() {
    short_run::<ConsistencyPolicy>("CPQL", 1);
}

#[test]
fn cpql_with_consistency_training_learns_to_prefer_moving_to_the_goal() {
    short_run_with::<ConsistencyPolicy>("CPQL, consistency loss", 1, |c| {
        c.consistency.loss = ConsistencyLoss::Consistency;
    });
}
