//! The README's library example: chunk transitions from step data, one agent,
//! a few updates. Run with `cargo run --release --example quickstart`.

use std::sync::Arc;

use chunkql::agent::{AgentConfig, DiffusionQl};
use chunkql::chunk::{ChunkIndex, ChunkSpec};
use chunkql::data::Normalizer;
use chunkql::env::{Level, generate};
use rand::SeedableRng;

fn main() -> anyhow::Result<()> {
    // The README loads data/pendulum-medium.npz and runs 100 updates; here the
    // data is generated in memory and 20 updates keep the example quick.
    let data = Arc::new(generate("pendulum", Level::Medium, 10, 0)?);
    let index = ChunkIndex::new(data.clone(), ChunkSpec::new(4, 0.99, 1)?)?;
    println!("{}", index.summary());
    let dims = index.dims();
    let mut agent = DiffusionQl::new(
        AgentConfig::default(),
        dims,
        Normalizer::fit(&data),
        tch::Device::Cpu,
        0,
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut batch = index.sample(256, &mut rng);
    for step in 0..20 {
        index.sample_into(&mut batch, &mut rng);
        let metrics = agent.update(&batch);
        if step % 5 == 4 {
            println!(
                "update {}: critic loss {:.3}, bc loss {:.3}",
                metrics.step, metrics.critic_loss, metrics.bc_loss
            );
        }
    }
    Ok(())
}
