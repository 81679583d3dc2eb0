//! Mish, x tanh(softplus(x)), fast on the CPU.
//!
//! Profiling the update step (docs/benchmarks.md) showed libtorch's CPU Mish
//! (vectorised tanh and log1p per element, and a backward that evaluates them
//! again) taking about a third of the time, more than the matrix products.
//! Here tanh(softplus(x)) = n / (n + 2) with n = e^x (e^x + 2), one exp per
//! element; when x needs a gradient, the exact derivative
//! g = t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)), is computed in the
//! same pass and the result is built as value + (x - x.detach()) g: the value
//! of Mish, and a backward pass of one multiply. First derivatives are exact;
//! nothing here differentiates twice. On other devices libtorch's fused kernel
//! is used.

use tch::{Device, Tensor};

/// Beyond this, e^x (e^x + 2) would overflow f32 and Mish(x) = x to f32
/// precision.
const CLAMP: f64 = 20.0;

/// Mish(x), elementwise, any shape.
pub fn mish(x: &Tensor) -> Tensor {
    if x.device() != Device::Cpu {
        return x.mish();
    }
    let (value, slope) = tch::no_grad(|| {
        let mut e = x.clamp_max(CLAMP);
        let _ = e.exp_();
        let mut n = &e + 2.0;
        let _ = n.g_mul_(&e);
        let mut t = &n + 2.0;
        let _ = t.reciprocal_();
        let _ = t.g_mul_(&n);
        let value = x * &t;
        if !x.requires_grad() {
            return (value, None);
        }
        // sigmoid(x) = e / (1 + e); g = t + x sigmoid(x) (1 - t^2)
        let mut sigmoid = &e + 1.0;
        let _ = sigmoid.reciprocal_();
        let _ = sigmoid.g_mul_(&e);
        let mut slope = t.square();
        let _ = slope.neg_();
        let _ = slope.g_add_scalar_(1.0);
        let _ = slope.g_mul_(&sigmoid);
        let _ = slope.g_mul_(x);
        let _ = slope.g_add_(&t);
        (value, Some(slope))
    });
    match slope {
        None => value,
        Some(slope) => value + (x - x.detach()) * slope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn inputs() -> Tensor {
        Tensor::from_slice(&[
            -60.0f32, -20.0, -5.0, -1.5, -0.3, 0.0, 0.2, 1.0, 3.0, 19.0, 21.0, 80.0,
        ])
    }

    #[test]
    fn value_matches_libtorch() {
        let x = inputs();
        let diff = (mish(&x) - x.mish()).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
        let x = Tensor::randn([4096], (Kind::Float, Device::Cpu)) * 6.0;
        assert!(mish(&x).allclose(&x.mish(), 1e-5, 1e-6, false));
    }

    #[test]
    fn gradient_matches_libtorch() {
        let x = inputs().set_requires_grad(true);
        let ours = tch::Tensor::run_backward(&[mish(&x).sum(Kind::Float)], &[&x], false, false);
        let theirs = tch::Tensor::run_backward(&[x.mish().sum(Kind::Float)], &[&x], false, false);
        let diff = (&ours[0] - &theirs[0]).abs().max().double_value(&[]);
        assert!(
            diff < 1e-5,
            "max gradient difference {diff}: {ours:?} vs {theirs:?}"
        );
    }

    #[test]
    fn no_gradient_work_without_requires_grad() {
        let x = inputs();
        assert!(!mish(&x).requires_grad());
        let x = x.set_requires_grad(true);
        assert!(mish(&x).requires_grad());
        tch::no_grad(|| assert!(!mish(&x).requires_grad()));
    }
}
