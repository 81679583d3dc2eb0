//! Deterministic parameter initialisation from an explicit RNG.
//!
//! tch initialises variables from libtorch's process-wide generator; chunkql
//! re-draws them from the agent's own seeded RNG instead, so that building an
//! agent from a seed gives the same weights whatever else runs in the process.
//! Bounds follow PyTorch's defaults for Linear / Conv / ConvTranspose.

use std::collections::BTreeMap;

use rand::{Rng, RngExt};
use tch::{Tensor, nn};

/// Name suffix of a weight that holds K layers side by side, `[K, in, out]`
/// (K critics evaluated in one batched matmul); its bias is `stacked_bias`,
/// `[K, 1, out]`. Each of the K layers is initialised like a Linear(in, out).
pub const STACKED_WEIGHT: &str = "stacked_weight";

/// Re-draws every variable of `vs` whose name ends in `weight` (rank >= 2) or
/// `bias` (next to such a weight) from U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
/// with fan_in = product of the weight's dims after the first (PyTorch's
/// kaiming_uniform(a=sqrt 5) and bias rule). Rank-1 weights (LayerNorm,
/// GroupNorm) keep their ones/zeros. Stacked weights `[K, in, out]` use
/// fan_in = in. Variables are visited in name order.
pub fn reset_parameters<R: Rng + ?Sized>(vs: &nn::VarStore, rng: &mut R) {
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let fan_in = |name: &str, weight: &Tensor| -> Option<i64> {
        let size = weight.size();
        if name.ends_with(STACKED_WEIGHT) {
            (size.len() == 3).then(|| size[1])
        } else {
            (size.len() >= 2).then(|| size[1..].iter().product())
        }
    };
    crate::nn::no_grad(|| {
        for (name, var) in &vars {
            let fan = if name.ends_with("weight") {
                fan_in(name, var)
            } else if let Some(prefix) = name.strip_suffix("bias") {
                let weight = format!("{prefix}weight");
                vars.get(&weight).and_then(|w| fan_in(&weight, w))
            } else {
                None
            };
            if let Some(fan) = fan {
                let bound = 1.0 / (fan as f64).sqrt();
                let values: Vec<f32> = (0..var.numel())
                    .map(|_| rng.random_range(-bound..bound) as f32)
                    .collect();
                let drawn = Tensor::from_slice(&values)
                    .view(var.size().as_slice())
                    .to_device(var.device());
                let mut var = var.shallow_clone();
                var.copy_(&drawn);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tch::Device;

    fn build(seed: u64) -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        let _l = nn::linear(vs.root() / "lin", 9, 4, Default::default());
        let _n = nn::layer_norm(vs.root() / "norm", vec![4], Default::default());
        reset_parameters(&vs, &mut ChaCha8Rng::seed_from_u64(seed));
        vs
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        let (a, b, c) = (build(1), build(1), build(2));
        let get = |vs: &nn::VarStore, k: &str| vs.variables()[k].shallow_clone();
        assert!(get(&a, "lin.weight").equal(&get(&b, "lin.weight")));
        assert!(get(&a, "lin.bias").equal(&get(&b, "lin.bias")));
        assert!(!get(&a, "lin.weight").equal(&get(&c, "lin.weight")));
    }

    #[test]
    fn stacked_weights_use_the_input_width_as_fan_in() {
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = vs.root() / "l";
        let w = layer.var(STACKED_WEIGHT, &[2, 16, 3], nn::Init::Const(9.0));
        let b = layer.var("stacked_bias", &[2, 1, 3], nn::Init::Const(9.0));
        reset_parameters(&vs, &mut ChaCha8Rng::seed_from_u64(0));
        let bound = 0.25; // 1 / sqrt(16)
        for t in [&w, &b] {
            let max = t.abs().max().double_value(&[]);
            assert!(max <= bound && max > 0.5 * bound, "{max}");
        }
    }

    #[test]
    fn bounds_follow_fan_in_and_norms_keep_ones() {
        let vs = build(3);
        let w = vs.variables()["lin.weight"].shallow_clone();
        let bound = 1.0 / 3.0; // fan_in 9
        assert!(w.abs().max().double_value(&[]) <= bound);
        assert!(w.abs().max().double_value(&[]) > 0.5 * bound);
        let bias = vs.variables()["lin.bias"].shallow_clone();
        assert!(bias.abs().max().double_value(&[]) <= bound);
        let norm = vs.variables()["norm.weight"].shallow_clone();
        assert!(norm.equal(&Tensor::ones([4], (tch::Kind::Float, Device::Cpu))));
    }
}
