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

    /// The DDPM / Diffusion Policy `SinusoidalPosEmb` formula, in f64:
    /// half = dim / 2, f_k = 10000^(-k / (half - 1)), row(t) =
    /// [sin(t f_0), .., sin(t f_{half-1}), cos(t f_0), .., cos(t f_{half-1})].
    /// (Vaswani et al. use 10000^(-2i/dim) = 10000^(-i/half) and interleave
    /// sin/cos; the code follows the diffusion convention, as its doc says.)
    fn naive_row(t: f64, dim: usize) -> Vec<f64> {
        let half = dim / 2;
        let freq = |k: usize| 10000f64.powf(-(k as f64) / (half - 1) as f64);
        let sines = (0..half).map(|k| (t * freq(k)).sin());
        let cosines = (0..half).map(|k| (t * freq(k)).cos());
        sines.chain(cosines).collect()
    }

    #[test]
    fn sinusoidal_uses_the_diffusion_frequencies() {
        // dim 8: half 4, f_k = 10000^(-k/3):
        //   f_0 = 1, f_1 = 1 / 21.5443 = 0.0464159,
        //   f_2 = 1 / 464.159 = 0.00215443, f_3 = 1e-4.
        // t = 3: angles 3, 0.139248, 0.00646330, 3e-4.
        let angles = [3.0f64, 3.0 * 0.046415888, 3.0 * 0.0021544347, 3.0e-4];
        let mut by_hand: Vec<f64> = angles.iter().map(|a| a.sin()).collect();
        by_hand.extend(angles.iter().map(|a| a.cos()));
        let t = [0.0f32, 3.0, 0.5, 37.0, 999.0];
        let e = sinusoidal(&Tensor::from_slice(&t), 8);
        assert_eq!(e.size(), vec![5, 8]);
        let rows: Vec<Vec<f32>> = (0..5).map(|i| Vec::try_from(e.get(i)).unwrap()).collect();
        for (got, want) in rows[1].iter().zip(&by_hand) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{:?}", rows[1]);
        }
        // Every row against the formula; float32 angles of t <= 999 are good
        // to ~1e-4 in sin/cos.
        for (row, &ti) in rows.iter().zip(&t) {
            for (got, want) in row.iter().zip(naive_row(f64::from(ti), 8)) {
                assert!((f64::from(*got) - want).abs() < 2e-4, "t = {ti}: {row:?}");
            }
        }
    }

    #[test]
    fn different_steps_give_different_embeddings() {
        // Diffusion steps 0..100: every pair of rows differs; the fastest
        // frequency alone separates integers (sin, cos of t rad never repeat).
        let steps: Vec<f32> = (0..100).map(|k| k as f32).collect();
        let raw = sinusoidal(&Tensor::from_slice(&steps), 16);
        let vs = nn::VarStore::new(Device::Cpu);
        let emb = TimeEmbedding::new(&vs.root(), 16, 32);
        let out = emb.forward(&Tensor::from_slice(&steps));
        assert_eq!(out.size(), vec![100, 16]);
        for table in [&raw, &out] {
            let rows: Vec<Vec<f32>> = (0..100)
                .map(|i| Vec::try_from(table.get(i)).unwrap())
                .collect();
            for i in 0..100 {
                for j in 0..i {
                    let gap = rows[i]
                        .iter()
                        .zip(&rows[j])
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(gap > 1e-4, "steps {i} and {j} embed alike: {:?}", rows[i]);
                }
            }
        }
    }

    #[test]
    fn time_embedding_is_linear_mish_linear_of_the_sinusoid() {
        // Recompute the MLP in f64 from the stored weights:
        // out = W2 mish(W1 s + b1) + b2, mish(x) = x tanh(ln(1 + e^x)).
        let (dim, hidden) = (6usize, 5usize);
        let vs = nn::VarStore::new(Device::Cpu);
        let emb = TimeEmbedding::new(&vs.root(), dim as i64, hidden as i64);
        assert_eq!(emb.dim(), 6);
        let vars = vs.variables();
        let flat = |name: &str| -> Vec<f64> {
            let v: Vec<f32> = Vec::try_from(vars[name].flatten(0, -1)).unwrap();
            v.into_iter().map(f64::from).collect()
        };
        let (w1, b1, w2, b2) = (
            flat("l1.weight"),
            flat("l1.bias"),
            flat("l2.weight"),
            flat("l2.bias"),
        );
        let mish = |x: f64| x * x.exp().ln_1p().tanh();
        let t = [0.0f32, 1.0, 7.5];
        let out = emb.forward(&Tensor::from_slice(&t));
        for (i, &ti) in t.iter().enumerate() {
            let s = naive_row(f64::from(ti), dim);
            let h: Vec<f64> = (0..hidden)
                .map(|r| mish(b1[r] + (0..dim).map(|c| w1[r * dim + c] * s[c]).sum::<f64>()))
                .collect();
            let got: Vec<f32> = Vec::try_from(out.get(i as i64)).unwrap();
            for r in 0..dim {
                let want = b2[r] + (0..hidden).map(|c| w2[r * hidden + c] * h[c]).sum::<f64>();
                assert!(
                    (f64::from(got[r]) - want).abs() < 1e-5,
                    "t = {ti}, output {r}: {got:?} vs {want}"
                );
            }
        }
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
