//! Sinusoidal embedding of a scalar (diffusion step or noise level) and the
//! small MLP that follows it in Diffusion-QL and Diffusion Policy.

use tch::{Kind, Tensor, nn, nn::Module};

/// `t: [B]` (any float values) -> `[B, dim]` = [sin(t f_0..), cos(t f_0..)]
/// with f_k = exp(-k ln(10000) / (dim/2 - 1)), k < dim/2 (dim even, >= 4).
pub fn sinusoidal(t: &Tensor, dim: i64) -> Tensor {
    assert!(
        dim >= 4 && dim % 2 == 0,
        "sinusoidal embedding width must be even and >= 4"
    );
    let half = dim / 2;
    let scale = -(10000f64.ln()) / (half - 1) as f64;
    let freqs = (Tensor::arange(half, (Kind::Float, t.device())) * scale).exp();
    let angles = t.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
    Tensor::cat(&[angles.sin(), angles.cos()], 1)
}

/// `t: [B] -> [B, dim]`: sinusoidal(dim) -> Linear(dim, hidden) -> Mish ->
/// Linear(hidden, dim).
#[derive(Debug)]
pub struct TimeEmbedding {
    dim: i64,
    l1: nn::Linear,
    l2: nn::Linear,
}

impl TimeEmbedding {
    pub fn new(p: &nn::Path, dim: i64, hidden: i64) -> Self {
        TimeEmbedding {
            dim,
            l1: nn::linear(p / "l1", dim, hidden, Default::default()),
            l2: nn::linear(p / "l2", hidden, dim, Default::default()),
        }
    }

    /// Output width.
    pub fn dim(&self) -> i64 {
        self.dim
    }
}

impl Module for TimeEmbedding {
    fn forward(&self, t: &Tensor) -> Tensor {
        self.l2
            .forward(&super::mish(&self.l1.forward(&sinusoidal(t, self.dim))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn sinusoidal_matches_hand_values() {
        // dim 4: half 2, f = [1, 1e-4]; t = 2 -> [sin 2, sin 2e-4, cos 2, cos 2e-4]
        let e = sinusoidal(&Tensor::from_slice(&[0.0f32, 2.0]), 4);
        assert_eq!(e.size(), vec![2, 4]);
        let row: Vec<f32> = Vec::try_from(e.get(1)).unwrap();
        let expected = [2f32.sin(), 2e-4f32.sin(), 2f32.cos(), 2e-4f32.cos()];
        for (a, b) in row.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{row:?} vs {expected:?}");
        }
        let row0: Vec<f32> = Vec::try_from(e.get(0)).unwrap();
        assert_eq!(row0, vec![0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn time_embedding_shape() {
        let vs = nn::VarStore::new(Device::Cpu);
        let emb = TimeEmbedding::new(&vs.root(), 16, 32);
        assert_eq!(
            emb.forward(&Tensor::from_slice(&[0.0f32, 1.0, 4.0])).size(),
            vec![3, 16]
        );
    }
}
