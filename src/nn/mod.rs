//! Network building blocks: MLP, sinusoidal/time embeddings, the 1-D temporal
//! U-Net with FiLM conditioning (and its down path as a sequence encoder), and
//! seeded initialisation.

mod activation;
mod embedding;
mod flat;
mod init;
mod mish_kernel;
mod mlp;
mod stacked;
mod unet;

pub use activation::mish;
pub use embedding::{TimeEmbedding, sinusoidal};
pub use flat::{FlatVariables, packed_gradient};
pub use init::{STACKED_WEIGHT, reset_parameters};
pub use mlp::Mlp;
pub use stacked::StackedMlp;
pub use unet::{TemporalEncoder, TemporalUnet, UnetConfig};
