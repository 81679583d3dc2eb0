//! Chunk policies pi(chunk [H, A] | obs history [To, O]): the DDPM diffusion
//! policy of Diffusion-QL and the consistency policy of CPQL, each with a
//! flattened-chunk MLP or temporal U-Net denoiser.

mod consistency;
mod denoiser;
mod diffusion;
#[cfg(test)]
mod test_nets;

pub use consistency::{
    ConsistencyConfig, ConsistencyLoss, ConsistencyPolicy, karras_sigmas, scalings,
};
pub use denoiser::{Denoiser, DenoiserConfig, NetKind};
pub use diffusion::{DiffusionConfig, DiffusionPolicy, Schedule, vp_betas};
