//! An update split over worker threads is the whole-batch update: with
//! silent noise (every draw 0) one, two or three slices give the same
//! weights up to float rounding; with real noise, slices on threads give
//! bit-identical results to the same slices run one after another; and a
//! split agent still learns.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use super::*;
use crate::agent::{ChunkAgent, ChunkPolicy, Metrics, Workers};
use crate::chunk::ChunkBatch;
use crate::noise::NoiseSource;
use crate::policy::{ConsistencyPolicy, DiffusionPolicy};

fn setup<P: ChunkPolicy>(workers: Workers, silent: bool) -> (ChunkAgent<P>, Vec<ChunkBatch>) {
    one_thread();
    let (index, normalizer) = line_walk(30, 4, 2);
    let mut cfg = small_config(32);
    cfg.eta = 2.0;
    cfg.max_q_backup = true;
    cfg.max_q_samples = 3;
    let mut agent = ChunkAgent::<P>::new(cfg, index.dims(), normalizer, Device::Cpu, 5).unwrap();
    agent.workers = workers;
    if silent {
        agent.noise = NoiseSource::silent(Device::Cpu);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batches = (0..3).map(|_| index.sample(37, &mut rng)).collect();
    (agent, batches)
}

fn train<P: ChunkPolicy>(workers: Workers, silent: bool) -> (Vec<Tensor>, Vec<Metrics>) {
    let (mut agent, batches) = setup::<P>(workers, silent);
    let metrics = batches.iter().map(|b| agent.update(b)).collect();
    let weights = agent
        .variables()
        .into_iter()
        .map(|(_, _, t)| t.detach().copy())
        .collect();
    (weights, metrics)
}

fn initial_weights<P: ChunkPolicy>() -> Vec<Tensor> {
    let (agent, _) = setup::<P>(Workers::inline(), true);
    agent
        .variables()
        .into_iter()
        .map(|(_, _, t)| t.detach().copy())
        .collect()
}

fn max_difference(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

fn slices_match_the_whole_batch<P: ChunkPolicy>(name: &str) {
    let start = initial_weights::<P>();
    let (whole, whole_metrics) = train::<P>(Workers::inline(), true);
    let moved = max_difference(&start, &whole);
    for count in [2, 3] {
        let (split, metrics) = train::<P>(Workers::new(count, 1).unwrap(), true);
        let diff = max_difference(&whole, &split);
        assert!(
            diff < 1e-6 && moved > 5e-4,
            "{name}, {count} slices: weights differ by {diff} (training moved them by {moved})"
        );
        for (w, s) in whole_metrics.iter().zip(&metrics) {
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * (1.0 + a.abs());
            assert!(
                close(w.critic_loss, s.critic_loss)
                    && close(w.bc_loss, s.bc_loss)
                    && close(w.q_loss, s.q_loss)
                    && close(w.actor_loss, s.actor_loss)
                    && close(w.q_mean, s.q_mean)
                    && close(w.target_mean, s.target_mean)
                    && close(w.critic_grad_norm, s.critic_grad_norm)
                    && close(w.actor_grad_norm, s.actor_grad_norm),
                "{name}, {count} slices: {w:?} vs {s:?}"
            );
        }
    }
}

#[test]
fn diffusion_ql_slices_match_the_whole_batch() {
    slices_match_the_whole_batch::<DiffusionPolicy>("Diffusion-QL");
}

#[test]
fn cpql_slices_match_the_whole_batch() {
    slices_match_the_whole_batch::<ConsistencyPolicy>("CPQL");
}

fn threads_match_serial_slices<P: ChunkPolicy>() {
    let (threaded, threaded_metrics) = train::<P>(Workers::new(2, 1).unwrap(), false);
    let (serial, serial_metrics) = train::<P>(Workers::serial(2), false);
    assert_eq!(max_difference(&threaded, &serial), 0.0);
    assert_eq!(threaded_metrics, serial_metrics);
}

#[test]
fn diffusion_ql_threads_are_bit_identical_to_serial_slices() {
    threads_match_serial_slices::<DiffusionPolicy>();
}

#[test]
fn cpql_threads_are_bit_identical_to_serial_slices() {
    threads_match_serial_slices::<ConsistencyPolicy>();
}

#[test]
fn batch_slices_are_consecutive_rows_of_near_equal_size() {
    let (agent, batches) = setup::<DiffusionPolicy>(Workers::inline(), true);
    let b = agent.tensors(&batches[0]);
    let slices = b.split(3);
    assert_eq!(
        slices.iter().map(|s| s.len()).collect::<Vec<_>>(),
        vec![13, 12, 12]
    );
    let rejoined = Tensor::cat(
        &slices
            .iter()
            .map(|s| s.obs.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    );
    assert!(rejoined.equal(&b.obs));
    let actions: Vec<Tensor> = slices.iter().map(|s| s.actions.shallow_clone()).collect();
    assert!(Tensor::cat(&actions, 0).equal(&b.actions));
    assert_eq!(b.split(100).len(), 37, "never an empty slice");
    assert_eq!(b.split(0).len(), 1);
    let whole = b.split(1);
    assert_eq!(whole[0].obs.size(), b.obs.size());
    assert_eq!(
        whole[0].obs.data_ptr(),
        b.obs.data_ptr(),
        "one slice is the batch itself, not a copy"
    );
}
