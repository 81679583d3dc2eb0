//! One agent update on chunk batches, issue 5's configuration (a): obs 17,
//! action 6, H = 4, batch 256, To = 1, T = 5 (DQL), MLP policy and twin
//! 3x256 Mish critics (default config, LayerNorm on); the same for CPQL; and
//! sampling + update together (the training loop). Threads: libtorch's
//! default (all cores). docs/benchmarks.md has the figures.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Device;

use chunkql::agent::{AgentConfig, ChunkAgent, ChunkPolicy};
use chunkql::chunk::{ChunkIndex, ChunkSpec};
use chunkql::data::{Normalizer, RandomSteps};
use chunkql::policy::{ConsistencyPolicy, DiffusionPolicy};

const ROWS: usize = 100_000;
const OBS: usize = 17;
const ACT: usize = 6;
const BATCH: usize = 256;

fn index(horizon: usize) -> ChunkIndex {
    let data = RandomSteps {
        rows: ROWS,
        obs_dim: OBS,
        act_dim: ACT,
        episode_len: 1000,
        seed: 0,
    }
    .generate();
    ChunkIndex::new(Arc::new(data), ChunkSpec::new(horizon, 0.99, 1).unwrap()).unwrap()
}

fn agent<P: ChunkPolicy>(index: &ChunkIndex) -> ChunkAgent<P> {
    let dims = index.empty_batch(1).dims();
    let normalizer = Normalizer::fit(index.data());
    ChunkAgent::new(AgentConfig::default(), dims, normalizer, Device::Cpu, 0).unwrap()
}

fn update_step<P: ChunkPolicy>(c: &mut Criterion, name: &str) {
    let index = index(4);
    let mut agent = agent::<P>(&index);
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
    let mut agent = agent::<DiffusionPolicy>(&index);
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
    update_step::<DiffusionPolicy>(c, "dql_mlp_h4");
    update_step::<ConsistencyPolicy>(c, "cpql_mlp_h4");
    train_loop(c);
}

criterion_group!(update, benches);
criterion_main!(update);
