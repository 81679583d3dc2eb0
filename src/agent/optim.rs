//! Adam with gradient-norm clipping, written out so that its moment estimates
//! are ours to checkpoint (tch's optimiser keeps them inside libtorch).
//! Same update as `torch.optim.Adam` (no weight decay, no amsgrad), run on
//! the store's packed buffers ([`FlatVariables`]): a few kernels per step
//! for the whole network.

use tch::{Tensor, nn};

use crate::nn::FlatVariables;

/// Adam over all variables of one `VarStore` (all trainable).
#[derive(Debug)]
pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Updates taken (for bias correction).
    step: i64,
    /// The variables, packed: values `[N]`.
    params: FlatVariables,
    /// All gradients `[N]` (each variable's gradient is a view of it).
    grads: Tensor,
    /// First and second moment estimates `[N]`, and their per-variable views.
    m: Tensor,
    v: Tensor,
    m_views: Vec<Tensor>,
    v_views: Vec<Tensor>,
    /// Working buffer `[N]` of a step (no allocation per update).
    scratch: Tensor,
}

impl Adam {
    /// betas (0.9, 0.999), eps 1e-8. Packs the store's variables (see
    /// [`FlatVariables`]) and binds their gradients to one buffer.
    pub fn new(vs: &nn::VarStore, lr: f64) -> Self {
        let params = FlatVariables::of(vs);
        let grads = params.bind_gradients();
        let m = grads.zeros_like();
        let v = grads.zeros_like();
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            scratch: grads.zeros_like(),
            m_views: params.views_of(&m),
            v_views: params.views_of(&v),
            m,
            v,
            grads,
            params,
        }
    }

    pub fn lr(&self) -> f64 {
        self.lr
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn steps_taken(&self) -> i64 {
        self.step
    }

    /// The variables, in the order of the packed gradient buffer (for
    /// [`packed_gradient`](crate::nn::packed_gradient)).
    pub fn variables(&self) -> Vec<Tensor> {
        self.params
            .variables()
            .iter()
            .map(|(_, v)| v.shallow_clone())
            .collect()
    }

    /// Sets the gradient to the sum of `parts` (each `[N]`, packed like the
    /// variables), added in the order given.
    pub fn set_gradient(&mut self, parts: &[Tensor]) {
        crate::nn::no_grad(|| {
            let (first, rest) = parts.split_first().expect("at least one gradient part");
            self.grads.copy_(first);
            for part in rest {
                let _ = self.grads.g_add_(part);
            }
        });
    }

    /// One optimiser step on the gradient sum of `parts` (see
    /// [`Adam::set_gradient`]), clipped to `max_norm`; returns the norm
    /// before clipping (one host read).
    pub fn step_on(&mut self, parts: &[Tensor], max_norm: f64) -> f64 {
        self.set_gradient(parts);
        let norm = self.clip_grad_norm(max_norm).double_value(&[]);
        self.step();
        norm
    }

    pub fn zero_grad(&mut self) {
        let _ = self.grads.zero_();
    }

    /// Scales all gradients so their joint 2-norm is at most `max_norm`
    /// (no-op when `max_norm` is 0); returns the norm before clipping, as a
    /// scalar tensor on the device (no host synchronisation).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Tensor {
        crate::nn::no_grad(|| {
            let total = self.grads.norm();
            if max_norm > 0.0 {
                let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
                let _ = self.grads.g_mul_(&coef);
            }
            total
        })
    }

    /// One Adam update: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,
    /// p <- p - lr/(1-b1^k) * m / (sqrt(v)/sqrt(1-b2^k) + eps); with lr 0
    /// p stays as it is.
    pub fn step(&mut self) {
        self.step += 1;
        let k = self.step as i32;
        let step_size = self.lr / (1.0 - self.beta1.powi(k));
        let bias2_sqrt = (1.0 - self.beta2.powi(k)).sqrt();
        crate::nn::no_grad(|| {
            let g = &self.grads;
            let d = &mut self.scratch;
            let _ = self.m.lerp_(g, 1.0 - self.beta1);
            let _ = g.square_out(d);
            let _ = self.v.lerp_(d, 1.0 - self.beta2);
            if step_size == 0.0 {
                // lr 0 (a cosine decay's end): the moments move, the
                // parameters stay (the division below would give 0 / 0).
                return;
            }
            // p + m / d with d = -(sqrt(v) / bias2_sqrt + eps) / step_size.
            let _ = self.v.sqrt_out(d);
            let _ = d
                .g_mul_scalar_(-1.0 / (step_size * bias2_sqrt))
                .g_add_scalar_(-self.eps / step_size);
            let _ = self.params.values().shallow_clone().addcdiv_(&self.m, d);
        });
    }

    /// Moment tensors named `m.<param>` and `v.<param>`.
    pub fn state(&self) -> Vec<(String, &Tensor)> {
        let names = || self.params.variables().iter().map(|(name, _)| name);
        let m = names()
            .zip(&self.m_views)
            .map(|(n, t)| (format!("m.{n}"), t));
        let v = names()
            .zip(&self.v_views)
            .map(|(n, t)| (format!("v.{n}"), t));
        m.chain(v).collect()
    }

    /// Restores the moments (by the names of [`Adam::state`]) and the step
    /// count; an error names the first missing or misshapen tensor.
    pub fn load_state(
        &mut self,
        step: i64,
        get: impl Fn(&str) -> Option<Tensor>,
    ) -> Result<(), String> {
        crate::nn::no_grad(|| {
            let vars = self.params.variables().iter();
            for ((name, p), (m, v)) in vars.zip(self.m_views.iter().zip(&self.v_views)) {
                for (prefix, slot) in [("m", m), ("v", v)] {
                    let key = format!("{prefix}.{name}");
                    let saved =
                        get(&key).ok_or_else(|| format!("missing optimiser tensor {key}"))?;
                    if saved.size() != p.size() {
                        return Err(format!(
                            "optimiser tensor {key} has shape {:?}, expected {:?}",
                            saved.size(),
                            p.size()
                        ));
                    }
                    slot.shallow_clone().copy_(&saved);
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn one_step_matches_the_adam_formula() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut adam = Adam::new(&vs, 0.1);
        // loss = sum(w^2) -> g = 2w = [2, -4]; first Adam step moves each
        // coordinate by lr * g / (|g| + eps) = 0.1 * sign(g).
        let loss = w.square().sum(Kind::Float);
        adam.zero_grad();
        loss.backward();
        adam.step();
        let got: Vec<f32> = Vec::try_from(&w).unwrap();
        assert!(
            (got[0] - 0.9).abs() < 1e-6 && (got[1] + 1.9).abs() < 1e-6,
            "{got:?}"
        );
    }

    #[test]
    fn clipping_rescales_to_the_max_norm_and_reports_the_norm_before() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[3.0f32, 4.0]));
        let mut adam = Adam::new(&vs, 0.1);
        (w.square().sum(Kind::Float) * 0.5).backward(); // g = w, norm 5
        let norm = adam.clip_grad_norm(1.0).double_value(&[]);
        assert!((norm - 5.0).abs() < 1e-5);
        let g: Vec<f32> = Vec::try_from(w.grad()).unwrap();
        assert!(
            (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
            "{g:?}"
        );
    }

    /// lr 0 (where a cosine decay to lr_min = 0 ends) leaves the parameters
    /// exactly as they are, even one whose gradient and moments are 0 (the
    /// update would be 0 / 0 there), and still moves the moments: the next
    /// step with lr > 0 is the second Adam step, as in torch.
    #[test]
    fn a_zero_learning_rate_leaves_parameters_unchanged() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 0.0]));
        let mut adam = Adam::new(&vs, 0.0);
        // loss = w0^2 -> g = [2, 0]: the second coordinate's v stays 0.
        adam.zero_grad();
        w.get(0).square().backward();
        adam.step();
        let got: Vec<f32> = Vec::try_from(&w).unwrap();
        assert_eq!(got, vec![1.0, 0.0]);
        let m: Vec<f32> = Vec::try_from(&adam.m).unwrap();
        assert!(
            (m[0] - 0.2).abs() < 1e-6 && m[1] == 0.0,
            "m = (1 - b1) g: {m:?}"
        );
    }

    #[test]
    fn minimises_a_quadratic() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[5.0f32, -3.0, 0.5]));
        let mut adam = Adam::new(&vs, 0.05);
        for _ in 0..500 {
            adam.zero_grad();
            (&w - 1.0).square().sum(Kind::Float).backward();
            adam.step();
        }
        let got: Vec<f32> = Vec::try_from(&w).unwrap();
        assert!(got.iter().all(|v| (v - 1.0).abs() < 0.05), "{got:?}");
    }
}
