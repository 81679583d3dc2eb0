//! The chunk critic in two variants:
//! - `mlp`: the state encoder and the action-sequence encoder are the
//!   identity on the flattened history and chunk (+ mask), the head an MLP:
//!   Diffusion-QL's critic with a chunk in place of an action.
//! - `unet`: an MLP state encoder, the temporal U-Net's down path (FiLM on the
//!   state embedding, mean-pooled over time) as the action-sequence encoder,
//!   and an MLP head on [state embedding, sequence embedding].

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn, nn::Module};

use crate::chunk::ChunkDims;
use crate::nn::{Mlp, StackedMlp, TemporalEncoder, UnetConfig};

/// Which action-sequence encoder the critic uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticKind {
    Mlp,
    Unet,
}

/// Critic settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriticConfig {
    pub kind: CriticKind,
    /// Head hidden widths (Mish). Diffusion-QL: 3 x 256.
    pub hidden: Vec<i64>,
    /// LayerNorm after each hidden layer of the head (CPQL's offline critic;
    /// on by default: without it Q drifted up and the policy degraded on the
    /// mazes, see docs/agents.md).
    pub layer_norm: bool,
    /// Give the critic the action mask (which chunk steps are real).
    pub use_mask: bool,
    /// `unet`: state-encoder hidden widths and output width.
    pub state_hidden: Vec<i64>,
    pub state_dim: i64,
    /// `unet`: widths of the action-sequence encoder.
    pub unet: UnetConfig,
}

impl Default for CriticConfig {
    fn default() -> Self {
        CriticConfig {
            kind: CriticKind::Mlp,
            hidden: vec![256, 256, 256],
            layer_norm: true,
            use_mask: true,
            state_hidden: vec![256],
            state_dim: 128,
            unet: UnetConfig::default(),
        }
    }
}

/// Q(s, chunk): obs `[B, To*O]`, chunk `[B, H, A]`, mask `[B, H]` -> `[B]`.
// Built once per network: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ChunkCritic {
    Mlp {
        head: Mlp,
        use_mask: bool,
    },
    Unet {
        state: Mlp,
        sequence: TemporalEncoder,
        head: Mlp,
        use_mask: bool,
    },
}

impl ChunkCritic {
    pub fn new(p: &nn::Path, dims: ChunkDims, cfg: &CriticConfig) -> Self {
        let (h, a) = (dims.horizon as i64, dims.act_dim as i64);
        let cond = dims.cond_dim() as i64;
        let mask_width = if cfg.use_mask { 1 } else { 0 };
        match cfg.kind {
            CriticKind::Mlp => {
                let input = cond + h * a + h * mask_width;
                let head = Mlp::new(&(p / "head"), input, &cfg.hidden, 1, cfg.layer_norm);
                ChunkCritic::Mlp {
                    head,
                    use_mask: cfg.use_mask,
                }
            }
            CriticKind::Unet => {
                let state = Mlp::new(
                    &(p / "state"),
                    cond,
                    &cfg.state_hidden,
                    cfg.state_dim,
                    false,
                );
                let sequence = TemporalEncoder::new(
                    &(p / "sequence"),
                    a + mask_width,
                    cfg.state_dim,
                    &cfg.unet,
                );
                let input = cfg.state_dim + sequence.output_dim();
                let head = Mlp::new(&(p / "head"), input, &cfg.hidden, 1, cfg.layer_norm);
                ChunkCritic::Unet {
                    state,
                    sequence,
                    head,
                    use_mask: cfg.use_mask,
                }
            }
        }
    }

    /// obs `[B, To*O]`, chunk `[B, H, A]`, mask `[B, H]` -> `[B]`.
    pub fn forward(&self, obs: &Tensor, chunk: &Tensor, mask: &Tensor) -> Tensor {
        let b = chunk.size()[0];
        match self {
            ChunkCritic::Mlp { head, use_mask } => head
                .forward(&flat_input(obs, chunk, mask, *use_mask))
                .view([b]),
            ChunkCritic::Unet {
                state,
                sequence,
                head,
                use_mask,
            } => {
                let state_embedding = crate::nn::mish(&state.forward(obs));
                let steps = if *use_mask {
                    Tensor::cat(&[chunk.shallow_clone(), mask.unsqueeze(2)], 2)
                } else {
                    chunk.shallow_clone()
                };
                let sequence_embedding = sequence.forward(&steps, &state_embedding);
                head.forward(&Tensor::cat(&[state_embedding, sequence_embedding], 1))
                    .view([b])
            }
        }
    }
}

/// Two independent critics (Q1, Q2) under one variable path. The `mlp` kind
/// runs both heads as one stacked network (one batched matmul per layer);
/// the `unet` kind keeps two `ChunkCritic`s.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TwinCritic {
    Stacked { heads: StackedMlp, use_mask: bool },
    Pair { q1: ChunkCritic, q2: ChunkCritic },
}

impl TwinCritic {
    pub fn new(p: &nn::Path, dims: ChunkDims, cfg: &CriticConfig) -> Self {
        match cfg.kind {
            CriticKind::Mlp => {
                let (h, a) = (dims.horizon as i64, dims.act_dim as i64);
                let mask_width = if cfg.use_mask { h } else { 0 };
                let input = dims.cond_dim() as i64 + h * a + mask_width;
                let heads =
                    StackedMlp::new(&(p / "heads"), 2, input, &cfg.hidden, 1, cfg.layer_norm);
                TwinCritic::Stacked {
                    heads,
                    use_mask: cfg.use_mask,
                }
            }
            CriticKind::Unet => TwinCritic::Pair {
                q1: ChunkCritic::new(&(p / "q1"), dims, cfg),
                q2: ChunkCritic::new(&(p / "q2"), dims, cfg),
            },
        }
    }

    /// (Q1, Q2), each `[B]`.
    pub fn forward(&self, obs: &Tensor, chunk: &Tensor, mask: &Tensor) -> (Tensor, Tensor) {
        match self {
            TwinCritic::Stacked { heads, use_mask } => {
                let b = chunk.size()[0];
                let q = heads
                    .forward(&flat_input(obs, chunk, mask, *use_mask))
                    .view([2, b]);
                (q.get(0), q.get(1))
            }
            TwinCritic::Pair { q1, q2 } => {
                (q1.forward(obs, chunk, mask), q2.forward(obs, chunk, mask))
            }
        }
    }

    /// (Q1, Q2) as the actor's Q term uses them: Q1 with its graph, Q2
    /// without one (it enters only through mean |Q2|, held constant). Each
    /// `[B]`, the numbers of [`forward`](Self::forward). The `unet` pair
    /// evaluates Q2 without recording a graph; the stacked `mlp` twin runs
    /// both heads as one network, so its backward pass still runs through
    /// both (running Q1 alone changes the float sums, and with them every
    /// run's numbers, for no speed-up we could measure: docs/benchmarks.md).
    pub fn q1_tracked(&self, obs: &Tensor, chunk: &Tensor, mask: &Tensor) -> (Tensor, Tensor) {
        match self {
            TwinCritic::Stacked { .. } => {
                let (q1, q2) = self.forward(obs, chunk, mask);
                (q1, q2.detach())
            }
            TwinCritic::Pair { q1, q2 } => (
                q1.forward(obs, chunk, mask),
                crate::nn::no_grad(|| q2.forward(obs, chunk, mask)),
            ),
        }
    }

    /// min(Q1, Q2): `[B]`.
    pub fn min(&self, obs: &Tensor, chunk: &Tensor, mask: &Tensor) -> Tensor {
        let (q1, q2) = self.forward(obs, chunk, mask);
        q1.minimum(&q2)
    }
}

/// The `mlp` critic's input: obs `[B, To*O]`, chunk `[B, H, A]` and, with
/// `use_mask`, mask `[B, H]` -> `[B, To*O + H*A (+ H)]`.
fn flat_input(obs: &Tensor, chunk: &Tensor, mask: &Tensor, use_mask: bool) -> Tensor {
    let b = chunk.size()[0];
    let mut parts = vec![obs.shallow_clone(), chunk.view([b, -1])];
    if use_mask {
        parts.push(mask.shallow_clone());
    }
    Tensor::cat(&parts, 1)
}

/// A mask of ones `[B, H]` for policy chunks (every step real).
pub fn full_mask(b: i64, h: i64, device: tch::Device) -> Tensor {
    Tensor::ones([b, h], (Kind::Float, device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn inputs(dims: ChunkDims, b: i64) -> (Tensor, Tensor, Tensor) {
        let (h, a, c) = (
            dims.horizon as i64,
            dims.act_dim as i64,
            dims.cond_dim() as i64,
        );
        (
            Tensor::randn([b, c], (Kind::Float, Device::Cpu)),
            Tensor::randn([b, h, a], (Kind::Float, Device::Cpu)),
            full_mask(b, h, Device::Cpu),
        )
    }

    #[test]
    fn both_variants_score_chunks_and_the_mask_matters() {
        let dims = ChunkDims {
            obs_dim: 3,
            act_dim: 2,
            horizon: 5,
            obs_horizon: 2,
        };
        for kind in [CriticKind::Mlp, CriticKind::Unet] {
            let cfg = CriticConfig {
                kind,
                hidden: vec![16, 16],
                state_hidden: vec![16],
                state_dim: 8,
                unet: UnetConfig {
                    down_dims: vec![8, 16],
                    n_groups: 4,
                    ..UnetConfig::default()
                },
                ..CriticConfig::default()
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let twin = TwinCritic::new(&vs.root(), dims, &cfg);
            let (obs, chunk, mask) = inputs(dims, 4);
            let (q1, q2) = twin.forward(&obs, &chunk, &mask);
            assert_eq!(q1.size(), vec![4]);
            assert!(!q1.equal(&q2), "{kind:?}: twins are independent");
            assert!(twin.min(&obs, &chunk, &mask).equal(&q1.minimum(&q2)));
            let short = mask.zeros_like().narrow(1, 0, 1).fill_(1.0);
            let short_mask = Tensor::cat(&[short, mask.zeros_like().narrow(1, 0, 4)], 1);
            assert!(
                !twin.forward(&obs, &chunk, &short_mask).0.equal(&q1),
                "{kind:?}: mask is an input"
            );
            // The actor's view: Q1 with its graph, Q2 without one.
            let chunk = chunk.set_requires_grad(true);
            let (q1, q2) = twin.forward(&obs, &chunk, &mask);
            let (t1, t2) = twin.q1_tracked(&obs, &chunk, &mask);
            assert!(t1.equal(&q1) && t2.equal(&q2), "{kind:?}: the same numbers");
            assert!(t1.requires_grad() && !t2.requires_grad(), "{kind:?}");
            let via_forward =
                Tensor::run_backward(&[&q1.sum(Kind::Float)], &[&chunk], false, false);
            let via_tracked =
                Tensor::run_backward(&[&t1.sum(Kind::Float)], &[&chunk], false, false);
            assert!(
                via_tracked[0].equal(&via_forward[0]),
                "{kind:?}: the same gradient"
            );
            // One critic alone (the library's single-critic type).
            let single = ChunkCritic::new(&(vs.root() / "single"), dims, &cfg);
            let q = single.forward(&obs, &chunk, &mask);
            assert_eq!(q.size(), vec![4]);
            assert!(
                !single.forward(&obs, &chunk, &short_mask).equal(&q),
                "{kind:?}: mask is an input of a single critic"
            );
        }
    }
}
