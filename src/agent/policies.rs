//! `ChunkPolicy`: what an agent needs from its policy. Diffusion-QL and CPQL
//! differ only in the policy they train, so one agent serves both.

use tch::{Tensor, nn};

use super::config::{AgentConfig, Algorithm};
use crate::chunk::ChunkDims;
use crate::noise::NoiseSource;
use crate::policy::{ConsistencyPolicy, DiffusionPolicy};

pub trait ChunkPolicy: Sized + Send {
    const ALGORITHM: Algorithm;

    /// Builds the policy from its section of `cfg`.
    fn build(p: &nn::Path, dims: ChunkDims, cfg: &AgentConfig) -> Self;

    /// Behaviour-cloning loss: obs `[B, To*O]`, dataset chunks `[B, H, A]` in
    /// [-1, 1] -> scalar. `target` is the agent's EMA copy of the policy.
    fn bc_loss(
        &self,
        obs: &Tensor,
        actions: &Tensor,
        target: &Self,
        noise: &mut NoiseSource,
    ) -> Tensor;

    /// obs `[B, To*O]` -> chunks `[B, H, A]` in [-1, 1]; differentiable when
    /// grad mode is on.
    fn sample(&self, obs: &Tensor, noise: &mut NoiseSource) -> Tensor;
}

impl ChunkPolicy for DiffusionPolicy {
    const ALGORITHM: Algorithm = Algorithm::Dql;

    fn build(p: &nn::Path, dims: ChunkDims, cfg: &AgentConfig) -> Self {
        DiffusionPolicy::new(p, dims, &cfg.diffusion)
    }

    fn bc_loss(
        &self,
        obs: &Tensor,
        actions: &Tensor,
        _target: &Self,
        noise: &mut NoiseSource,
    ) -> Tensor {
        DiffusionPolicy::bc_loss(self, obs, actions, noise)
    }

    fn sample(&self, obs: &Tensor, noise: &mut NoiseSource) -> Tensor {
        DiffusionPolicy::sample(self, obs, noise)
    }
}

impl ChunkPolicy for ConsistencyPolicy {
    const ALGORITHM: Algorithm = Algorithm::Cpql;

    fn build(p: &nn::Path, dims: ChunkDims, cfg: &AgentConfig) -> Self {
        ConsistencyPolicy::new(p, dims, &cfg.consistency)
    }

    fn bc_loss(
        &self,
        obs: &Tensor,
        actions: &Tensor,
        target: &Self,
        noise: &mut NoiseSource,
    ) -> Tensor {
        ConsistencyPolicy::bc_loss(self, obs, actions, target, noise)
    }

    fn sample(&self, obs: &Tensor, noise: &mut NoiseSource) -> Tensor {
        ConsistencyPolicy::sample(self, obs, noise)
    }
}
