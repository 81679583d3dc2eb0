//! `ChunkCritic`: Q(s, action chunk) = head(state encoder(s), action-sequence
//! encoder(chunk)), and `TwinCritic`, the pair the agents train.

mod chunk_critic;

pub use chunk_critic::{ChunkCritic, CriticConfig, CriticKind, TwinCritic, full_mask};
