//! One agent update on chunk batches, issue 5's configuration (a): obs 17,
//! action 6, H = 4, batch 256, To = 1, T = 5 (DQL), MLP policy and twin
//! 3x256 Mish critics (default config, LayerNorm on); the same for CPQL
//! (configuration (c): the consistency-training loss); and
//! sampling + update together (the training loop). Threads: libtorch's
//! default (all cores). docs/benchmarks.md has the figures.

use std::hint::black_box;

mod common;

use common::{BATCH, agent, config_c, index};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use chunkql::agent::{AgentConfig, ChunkPolicy};
use chunkql::policy::{ConsistencyPolicy, DiffusionPolicy};
use tch::Device;

fn update_step<P: ChunkPolicy>(c: &mut Criterion, name: &str, cfg: AgentConfig) {
    let index = index(4);
    let mut agent = agent::<P>(&index, cfg, BATCH, None, Device::Cpu);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batch = index.sample(BATCH, &mut rng);
    for _ in 0..3 {
        agent.update(&batch);
    }
    let mut group = c.benchmark_group("update_step");
    group.sample_size(20);
    group.bench_function(name, |b| b.iter(|| black_box(agent.update(&batch))));
    group.finish();
}

fn train_loop(c: &mut Criterion) {
    let index = index(4);
    let mut agent =
        agent::<DiffusionPolicy>(&index, AgentConfig::default(), BATCH, None, Device::Cpu);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut batch = index.empty_batch(BATCH);
    let mut group = c.benchmark_group("train_loop");
    group.sample_size(20);
    group.bench_function("dql_mlp_h4_sample_and_update", |b| {
        b.iter(|| {
            index.sample_into(&mut batch, &mut rng);
            black_box(agent.update(&batch))
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    chunkql::device::allocator::keep_freed_memory(); // as the chunkql binary does
    update_step::<DiffusionPolicy>(c, "dql_mlp_h4", AgentConfig::default());
    update_step::<ConsistencyPolicy>(c, "cpql_mlp_h4", config_c());
    train_loop(c);
}

criterion_group!(update, benches);
criterion_main!(update);
