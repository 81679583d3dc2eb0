//! The setup of issue 5's update configurations, shared by `benches/update.rs`
//! and `examples/update_speed.rs`: random step data (obs 17, action 6,
//! 100k rows, episodes of 1000) and a fresh agent fitted to it.

use std::sync::Arc;

use tch::Device;

use chunkql::agent::{AgentConfig, ChunkAgent, ChunkPolicy, auto_workers};
use chunkql::chunk::{ChunkIndex, ChunkSpec};
use chunkql::data::{Normalizer, RandomSteps};

pub const OBS: usize = 17;
pub const ACT: usize = 6;
pub const BATCH: usize = 256;
const ROWS: usize = 100_000;

/// Configuration (c): CPQL with (a)'s shapes and the consistency-training
/// loss, the step bench/reference.py writes in PyTorch (the default loss is
/// the cheaper reconstruction loss, which evaluates no target network).
pub fn config_c() -> AgentConfig {
    let mut cfg = AgentConfig::default();
    cfg.consistency.loss = chunkql::policy::ConsistencyLoss::Consistency;
    cfg
}

/// Chunk index over the random data with chunk length `horizon`, To = 1.
pub fn index(horizon: usize) -> ChunkIndex {
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

/// A seed-0 agent with `cfg` on `device`, its normaliser fitted to `index`'s
/// data, its updates of `batch` chunks split as `chunkql train` splits them
/// by default (one slice per libtorch thread on the CPU, one on a GPU)
/// unless `workers` says otherwise.
pub fn agent<P: ChunkPolicy>(
    index: &ChunkIndex,
    cfg: AgentConfig,
    batch: usize,
    workers: Option<usize>,
    device: Device,
) -> ChunkAgent<P> {
    let dims = index.dims();
    let mut agent = ChunkAgent::new(cfg, dims, Normalizer::fit(index.data()), device, 0).unwrap();
    let threads = tch::get_num_threads().max(1) as usize;
    let count = workers.unwrap_or_else(|| auto_workers(device, threads, batch));
    agent.set_workers(count, (threads / count).max(1)).unwrap();
    agent
}
