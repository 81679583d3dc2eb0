//! Network building blocks: MLP, sinusoidal/time embeddings, the 1-D temporal
//! U-Net with FiLM conditioning (and its down path as a sequence encoder), and
//! seeded initialisation.

mod embedding;
mod init;
mod mlp;
mod unet;

pub use embedding::{TimeEmbedding, sinusoidal};
pub use init::reset_parameters;
pub use mlp::Mlp;
pub use unet::{TemporalEncoder, TemporalUnet, UnetConfig};
