//! Chunk index build and batch sampling over 1M steps (obs 17, action 6,
//! episodes of 1000 ending in a timeout, next_observations present), batches
//! of 256 chunks, To = 2, H = 4 and 16. bench/numpy_sampling.py does the same
//! with numpy fancy indexing; docs/benchmarks.md has the figures.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use chunkql::chunk::{ChunkIndex, ChunkSpec};
use chunkql::data::{RandomSteps, StepDataset};

const ROWS: usize = 1_000_000;
const EPISODE: usize = 1000;
const OBS: usize = 17;
const ACT: usize = 6;
const BATCH: usize = 256;

fn dataset() -> Arc<StepDataset> {
    Arc::new(
        RandomSteps {
            rows: ROWS,
            obs_dim: OBS,
            act_dim: ACT,
            episode_len: EPISODE,
            seed: 0,
        }
        .generate(),
    )
}

fn benches(c: &mut Criterion) {
    let data = dataset();

    let mut build = c.benchmark_group("index_build");
    build.sample_size(20);
    build.throughput(Throughput::Elements(ROWS as u64));
    build.bench_function("1M_rows_H4", |b| {
        let spec = ChunkSpec::new(4, 0.99, 2).unwrap();
        b.iter(|| ChunkIndex::new(black_box(data.clone()), spec).unwrap())
    });
    build.finish();

    let mut sample = c.benchmark_group("sample_batch256_To2");
    sample.throughput(Throughput::Elements(1));
    for horizon in [4, 16] {
        let index =
            ChunkIndex::new(data.clone(), ChunkSpec::new(horizon, 0.99, 2).unwrap()).unwrap();
        let mut batch = index.empty_batch(BATCH);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        sample.bench_function(format!("H{horizon}"), |b| {
            b.iter(|| {
                index.sample_into(&mut batch, &mut rng);
                black_box(&batch);
            })
        });
    }
    sample.finish();
}

criterion_group!(sampling, benches);
criterion_main!(sampling);
