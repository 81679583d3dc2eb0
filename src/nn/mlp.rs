//! Multi-layer perceptron with Mish activations.

use tch::{Tensor, nn, nn::Module};

/// `[B, input] -> [B, output]`: (Linear -> (LayerNorm) -> Mish) per hidden
/// width, then a final Linear with no activation. With no hidden widths it
/// is one Linear layer.
#[derive(Debug)]
pub struct Mlp {
    hidden: Vec<(nn::Linear, Option<nn::LayerNorm>)>,
    out: nn::Linear,
}

impl Mlp {
    pub fn new(p: &nn::Path, input: i64, hidden: &[i64], output: i64, layer_norm: bool) -> Self {
        let mut width = input;
        let hidden = hidden
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                let linear = nn::linear(p / format!("l{i}"), width, h, Default::default());
                let norm = layer_norm
                    .then(|| nn::layer_norm(p / format!("n{i}"), vec![h], Default::default()));
                width = h;
                (linear, norm)
            })
            .collect();
        let out = nn::linear(p / "out", width, output, Default::default());
        Mlp { hidden, out }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (linear, norm) in &self.hidden {
            h = linear.forward(&h);
            if let Some(norm) = norm {
                h = norm.forward(&h);
            }
            h = super::mish(&h);
        }
        self.out.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn shapes_and_a_linear_special_case() {
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), 5, &[8, 8], 3, true);
        let y = mlp.forward(&Tensor::zeros([7, 5], (Kind::Float, Device::Cpu)));
        assert_eq!(y.size(), vec![7, 3]);
        assert_eq!(vs.variables().len(), 2 * 2 + 2 * 2 + 2);

        let vs = nn::VarStore::new(Device::Cpu);
        let linear = Mlp::new(&vs.root(), 2, &[], 1, false);
        let vars = vs.variables();
        let (w, b) = (&vars["out.weight"], &vars["out.bias"]);
        let x = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        let expected = (w.get(0).get(0) * 1.0 + w.get(0).get(1) * 2.0 + b.get(0)).double_value(&[]);
        assert!((linear.forward(&x).double_value(&[0, 0]) - expected).abs() < 1e-6);
    }
}
