//! `AnyAgent`: either agent, chosen at run time (from a config or from what a
//! checkpoint holds), for the training loop and the command line.

use std::path::Path;

use tch::{Device, Tensor};

use super::{
    AgentConfig, AgentError, Algorithm, ChunkAgent, Cpql, DiffusionQl, Metrics, checkpoint,
};
use crate::chunk::{ChunkBatch, ChunkDims};
use crate::data::Normalizer;
use crate::eval::ChunkActor;
use crate::noise::NoiseSource;

/// A Diffusion-QL or a CPQL agent.
pub enum AnyAgent {
    Dql(DiffusionQl),
    Cpql(Cpql),
}

macro_rules! each {
    ($self:expr, $agent:ident => $body:expr) => {
        match $self {
            AnyAgent::Dql($agent) => $body,
            AnyAgent::Cpql($agent) => $body,
        }
    };
}

impl AnyAgent {
    pub fn new(
        algorithm: Algorithm,
        config: AgentConfig,
        dims: ChunkDims,
        normalizer: Normalizer,
        device: Device,
        seed: u64,
    ) -> Result<Self, AgentError> {
        Ok(match algorithm {
            Algorithm::Dql => {
                AnyAgent::Dql(ChunkAgent::new(config, dims, normalizer, device, seed)?)
            }
            Algorithm::Cpql => {
                AnyAgent::Cpql(ChunkAgent::new(config, dims, normalizer, device, seed)?)
            }
        })
    }

    /// Loads whichever agent the checkpoint holds.
    pub fn load(path: &Path, device: Device) -> Result<Self, AgentError> {
        let bytes = checkpoint::read_bytes(path)?;
        Ok(match checkpoint::info_of(path, &bytes)?.algorithm {
            Algorithm::Dql => AnyAgent::Dql(ChunkAgent::load_bytes(path, &bytes, device)?),
            Algorithm::Cpql => AnyAgent::Cpql(ChunkAgent::load_bytes(path, &bytes, device)?),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            AnyAgent::Dql(_) => Algorithm::Dql,
            AnyAgent::Cpql(_) => Algorithm::Cpql,
        }
    }

    pub fn update(&mut self, batch: &ChunkBatch) -> Metrics {
        each!(self, a => a.update(batch))
    }

    /// See [`ChunkAgent::set_workers`].
    pub fn set_workers(&mut self, count: usize, intra_op_threads: usize) -> Result<(), AgentError> {
        each!(self, a => a.set_workers(count, intra_op_threads))
    }

    pub fn workers(&self) -> usize {
        each!(self, a => a.workers())
    }

    pub fn step(&self) -> u64 {
        each!(self, a => a.step())
    }

    pub fn config(&self) -> &AgentConfig {
        each!(self, a => a.config())
    }

    /// The chunk shape the networks were built for.
    pub fn dims(&self) -> ChunkDims {
        each!(self, a => a.dims())
    }

    pub fn save(&self, path: &Path, extra: serde_json::Value) -> Result<(), AgentError> {
        each!(self, a => a.save(path, extra))
    }
}

impl ChunkActor for AnyAgent {
    fn dims(&self) -> ChunkDims {
        each!(self, a => a.dims())
    }
    fn act(&self, obs_history: &Tensor, noise: &mut NoiseSource) -> Tensor {
        each!(self, a => a.act(obs_history, noise))
    }
    fn device(&self) -> Device {
        each!(self, a => a.device())
    }
}
