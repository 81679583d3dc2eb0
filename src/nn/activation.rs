//! Mish, x tanh(softplus(x)), fast on the CPU.
//!
//! Profiling the update step (docs/benchmarks.md) showed libtorch's CPU Mish
//! (vectorised tanh and log1p per element, and a backward that evaluates them
//! again) taking about a third of the time, more than the matrix products,
//! and a version built from libtorch's elementwise operations still about
//! twenty passes over the activations. Here one vectorised pass
//! ([`mish_slices`]) writes Mish(x) and, when x needs a gradient, the exact
//! derivative Mish'(x). The result enters the autograd graph as
//! y = x * Mish'(x) whose values are then replaced by Mish(x) without
//! gradient tracking: the forward value is Mish(x) and the recorded backward
//! is grad * Mish'(x), one multiply (a custom autograd function, in the two
//! operations libtorch offers from Rust). First derivatives are exact;
//! nothing here differentiates twice. Other devices and dtypes use libtorch's
//! own kernel.

use tch::{Device, Kind, Tensor};

use super::mish_kernel::mish_slices;

/// A contiguous f32 CPU tensor's elements.
///
/// SAFETY: `t` must be a contiguous f32 CPU tensor that no other code writes
/// while the slice lives.
unsafe fn as_slice(t: &Tensor) -> &[f32] {
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, n) }
}

/// A fresh contiguous f32 CPU tensor's elements, writable.
///
/// SAFETY: as [`as_slice`], and nothing else reads or writes `t` while the
/// slice lives.
#[allow(clippy::mut_from_ref)]
unsafe fn as_mut_slice(t: &Tensor) -> &mut [f32] {
    let n = t.numel();
    if n == 0 {
        return &mut [];
    }
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n) }
}

/// Mish(x), elementwise, any shape.
pub fn mish(x: &Tensor) -> Tensor {
    if x.device() != Device::Cpu || x.kind() != Kind::Float {
        return x.mish();
    }
    let x = x.contiguous();
    let value = crate::nn::no_grad(|| x.empty_like());
    // SAFETY: `x` is contiguous f32 on the CPU (checked and made so above),
    // `value` and `slope` are fresh tensors of its shape owned here.
    let xs = unsafe { as_slice(&x) };
    if !x.requires_grad() {
        mish_slices(xs, unsafe { as_mut_slice(&value) }, None);
        return value;
    }
    let slope = crate::nn::no_grad(|| x.empty_like());
    mish_slices(
        xs,
        unsafe { as_mut_slice(&value) },
        Some(unsafe { as_mut_slice(&slope) }),
    );
    // Records d y / d x = slope; `y` is not saved by the multiply's backward
    // (only `slope` is), so overwriting its values is invisible to autograd.
    let mut y = &x * &slope;
    crate::nn::no_grad(|| y.copy_(&value));
    y
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
        crate::nn::no_grad(|| assert!(!mish(&x).requires_grad()));
    }
}
