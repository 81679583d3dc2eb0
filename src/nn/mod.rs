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

/// Runs `f` without recording gradients and restores the previous mode on
/// the way out, also when `f` panics: `tch::no_grad` restores it only when
/// `f` returns, so a panic caught by a caller (a bad input to `act`, say)
/// left the thread without gradients, and every later update failed.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _guard = tch::no_grad_guard();
    f()
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    /// After a panic inside `no_grad`, caught, operations record gradients
    /// again (with `tch::no_grad` they did not: its closure never returned).
    #[test]
    fn no_grad_restores_gradient_recording_after_a_panic() {
        let x = Tensor::ones([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        assert!(!super::no_grad(|| (&x * 2.0).requires_grad()));
        let caught = std::panic::catch_unwind(|| super::no_grad(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(
            (&x * 2.0).requires_grad(),
            "recording left off after the panic"
        );
    }
}
