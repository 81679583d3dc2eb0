//! Adam with gradient-norm clipping, written out so that its moment estimates
//! are ours to checkpoint (tch's optimiser keeps them inside libtorch).
//! Same update as `torch.optim.Adam` (no weight decay, no amsgrad).

use std::collections::BTreeMap;

use tch::{Kind, Tensor, nn};

/// Adam over the trainable variables of one `VarStore`, in name order.
#[derive(Debug)]
pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Updates taken (for bias correction).
    step: i64,
    params: Vec<(String, Tensor)>,
    /// First and second moment estimates, one per parameter.
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// betas (0.9, 0.999), eps 1e-8.
    pub fn new(vs: &nn::VarStore, lr: f64) -> Self {
        let params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let zeros = |p: &Tensor| p.zeros_like().detach();
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            m: params.iter().map(|(_, p)| zeros(p)).collect(),
            v: params.iter().map(|(_, p)| zeros(p)).collect(),
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

    /// The optimised parameters, in name order.
    pub fn params(&self) -> impl Iterator<Item = &Tensor> {
        self.params.iter().map(|(_, p)| p)
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Scales all gradients so their joint 2-norm is at most `max_norm`
    /// (no-op when `max_norm` is 0); returns the norm before clipping, as a
    /// scalar tensor on the device (no host synchronisation).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Tensor {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .params
                .iter()
                .map(|(_, p)| p.grad())
                .filter(|g| g.defined())
                .collect();
            if grads.is_empty() {
                return Tensor::zeros([], (Kind::Float, tch::Device::Cpu));
            }
            let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
            let total = Tensor::stack(&norms, 0).norm();
            if max_norm > 0.0 {
                let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
                for mut g in grads {
                    let _ = g.g_mul_(&coef);
                }
            }
            total
        })
    }

    /// One Adam update: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,
    /// p <- p - lr/(1-b1^k) * m / (sqrt(v)/sqrt(1-b2^k) + eps).
    pub fn step(&mut self) {
        self.step += 1;
        let k = self.step as i32;
        let step_size = self.lr / (1.0 - self.beta1.powi(k));
        let bias2_sqrt = (1.0 - self.beta2.powi(k)).sqrt();
        tch::no_grad(|| {
            for (((_, p), m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.lerp_(&g, 1.0 - self.beta1);
                let _ = v.lerp_(&g.square(), 1.0 - self.beta2);
                let denom = v.sqrt() / bias2_sqrt + self.eps;
                let _ = p.g_sub_(&(&*m / denom * step_size));
            }
        });
    }

    /// Moment tensors named `m.<param>` and `v.<param>`.
    pub fn state(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for ((name, _), m) in self.params.iter().zip(&self.m) {
            out.push((format!("m.{name}"), m));
        }
        for ((name, _), v) in self.params.iter().zip(&self.v) {
            out.push((format!("v.{name}"), v));
        }
        out
    }

    /// Restores the moments (by the names of [`Adam::state`]) and the step
    /// count; an error names the first missing or misshapen tensor.
    pub fn load_state(
        &mut self,
        step: i64,
        get: impl Fn(&str) -> Option<Tensor>,
    ) -> Result<(), String> {
        tch::no_grad(|| {
            for ((name, p), (m, v)) in self
                .params
                .iter()
                .zip(self.m.iter_mut().zip(self.v.iter_mut()))
            {
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
                    slot.copy_(&saved);
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
    use tch::Device;

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
