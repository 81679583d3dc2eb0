//! `StackedMlp`: K MLPs of the same shape evaluated together, one batched
//! matmul per layer (the twin critics run as one network of K = 2).

use tch::{Tensor, nn};

use super::init::STACKED_WEIGHT;

/// K Linear layers side by side: weight `[K, in, out]`, bias `[K, 1, out]`.
#[derive(Debug)]
struct StackedLinear {
    weight: Tensor,
    bias: Tensor,
}

impl StackedLinear {
    fn new(p: &nn::Path, k: i64, input: i64, output: i64) -> Self {
        // PyTorch's Linear bounds, so the layer is usable before
        // `reset_parameters` (which redraws it from the agent's seed).
        let bound = 1.0 / (input as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        StackedLinear {
            weight: p.var(STACKED_WEIGHT, &[k, input, output], init),
            bias: p.var("stacked_bias", &[k, 1, output], init),
        }
    }

    /// `[K, B, in] -> [K, B, out]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.bias.baddbmm(x, &self.weight, 1.0, 1.0)
    }
}

/// K LayerNorms: normalise over the features, then a per-network gain and
/// shift `[K, 1, out]`.
#[derive(Debug)]
struct StackedNorm {
    width: i64,
    gain: Tensor,
    shift: Tensor,
}

impl StackedNorm {
    fn new(p: &nn::Path, k: i64, width: i64) -> Self {
        StackedNorm {
            width,
            gain: p.var("ln_gain", &[k, 1, width], nn::Init::Const(1.0)),
            shift: p.var("ln_shift", &[k, 1, width], nn::Init::Const(0.0)),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm([self.width], None::<Tensor>, None::<Tensor>, 1e-5, false) * &self.gain
            + &self.shift
    }
}

/// K MLPs `[B, input] -> [K, B, output]`: (Linear -> (LayerNorm) -> Mish)
/// per hidden width, then a final Linear, each network with its own weights.
#[derive(Debug)]
pub struct StackedMlp {
    k: i64,
    hidden: Vec<(StackedLinear, Option<StackedNorm>)>,
    out: StackedLinear,
}

impl StackedMlp {
    pub fn new(
        p: &nn::Path,
        k: i64,
        input: i64,
        hidden: &[i64],
        output: i64,
        layer_norm: bool,
    ) -> Self {
        let mut width = input;
        let hidden = hidden
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                let linear = StackedLinear::new(&(p / format!("l{i}")), k, width, h);
                let norm = layer_norm.then(|| StackedNorm::new(&(p / format!("n{i}")), k, h));
                width = h;
                (linear, norm)
            })
            .collect();
        StackedMlp {
            k,
            hidden,
            out: StackedLinear::new(&(p / "out"), k, width, output),
        }
    }

    /// Number of networks K.
    pub fn count(&self) -> i64 {
        self.k
    }

    /// x: `[B, input]` (shared by the K networks) -> `[K, B, output]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let mut h = x.unsqueeze(0).expand([self.k, size[0], size[1]], false);
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
    use crate::nn::Mlp;
    use tch::{Device, Kind, nn::Module};

    #[test]
    fn equals_k_separate_mlps_with_the_same_weights() {
        for layer_norm in [false, true] {
            let vs = nn::VarStore::new(Device::Cpu);
            let stacked = StackedMlp::new(&vs.root(), 2, 5, &[8, 8], 1, layer_norm);
            let vars = vs.variables();
            crate::nn::no_grad(|| {
                // Non-trivial norm parameters, different per network.
                for i in 0..2 {
                    if layer_norm {
                        let _ = vars[&format!("n{i}.ln_gain")]
                            .shallow_clone()
                            .uniform_(0.5, 1.5);
                        let _ = vars[&format!("n{i}.ln_shift")]
                            .shallow_clone()
                            .uniform_(-0.5, 0.5);
                    }
                }
            });
            let x = Tensor::randn([7, 5], (Kind::Float, Device::Cpu));
            let together = stacked.forward(&x);
            assert_eq!(together.size(), vec![2, 7, 1]);
            for k in 0..2i64 {
                let single_vs = nn::VarStore::new(Device::Cpu);
                let single = Mlp::new(&single_vs.root(), 5, &[8, 8], 1, layer_norm);
                let singles = single_vs.variables();
                crate::nn::no_grad(|| {
                    for (name, from) in [("l0", "l0"), ("l1", "l1"), ("out", "out")] {
                        let w = vars[&format!("{from}.{STACKED_WEIGHT}")].get(k);
                        let b = vars[&format!("{from}.stacked_bias")].get(k).view([-1]);
                        singles[&format!("{name}.weight")]
                            .shallow_clone()
                            .copy_(&w.transpose(0, 1));
                        singles[&format!("{name}.bias")].shallow_clone().copy_(&b);
                    }
                    if layer_norm {
                        for i in 0..2 {
                            singles[&format!("n{i}.weight")]
                                .shallow_clone()
                                .copy_(&vars[&format!("n{i}.ln_gain")].get(k).view([-1]));
                            singles[&format!("n{i}.bias")]
                                .shallow_clone()
                                .copy_(&vars[&format!("n{i}.ln_shift")].get(k).view([-1]));
                        }
                    }
                });
                let alone = single.forward(&x);
                assert!(
                    together.get(k).allclose(&alone, 1e-5, 1e-6, false),
                    "network {k}, layer_norm {layer_norm}"
                );
            }
        }
    }
}
