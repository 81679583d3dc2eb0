//! The variables of a `VarStore` packed into one contiguous buffer, so that
//! whole-network updates (Adam, gradient clipping, EMA and soft target
//! updates, zeroing gradients) are a handful of kernels over one tensor
//! instead of several per variable. Each variable stays a tensor of its own
//! shape, used by the layers as before; it is a view of its slot in the
//! buffer (and its gradient, once bound, a view of a gradient buffer).

use tch::{Kind, Tensor, nn};

/// The variables of one store, in name order, and the buffer `[N]` they are
/// views of (N = total number of elements).
#[derive(Debug)]
pub struct FlatVariables {
    vars: Vec<(String, Tensor)>,
    values: Tensor,
}

impl FlatVariables {
    /// Packs the variables of `vs` into one buffer (values kept), or, when
    /// they are packed already (by an earlier call on the same store),
    /// returns a view of the same buffer. All variables must be f32.
    pub fn of(vs: &nn::VarStore) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in &vars {
            assert_eq!(var.kind(), Kind::Float, "variable {name} is not f32");
        }
        let total: i64 = vars.iter().map(|(_, v)| v.numel() as i64).sum();
        let values = match packed_buffer(&vars, total) {
            Some(values) => values,
            None => pack(&vars, total, vs.device()),
        };
        FlatVariables { vars, values }
    }

    /// The buffer `[N]` every variable is a view of.
    pub fn values(&self) -> &Tensor {
        &self.values
    }

    /// (name, variable) in name order.
    pub fn variables(&self) -> &[(String, Tensor)] {
        &self.vars
    }

    /// N, the number of scalars.
    pub fn numel(&self) -> i64 {
        self.values.numel() as i64
    }

    /// Views of `buffer` `[N]`, one per variable, shaped like it.
    pub fn views_of(&self, buffer: &Tensor) -> Vec<Tensor> {
        let mut offset = 0;
        self.vars
            .iter()
            .map(|(_, var)| {
                let n = var.numel() as i64;
                let view = buffer.narrow(0, offset, n).view(var.size().as_slice());
                offset += n;
                view
            })
            .collect()
    }

    /// Gives every variable a gradient that is a view of one zeroed buffer
    /// `[N]`, and returns that buffer. Backward passes then accumulate into
    /// it in place (autograd adds into a gradient that is already defined),
    /// so the buffer always holds all gradients. Every variable must
    /// require gradients.
    pub fn bind_gradients(&self) -> Tensor {
        let grads = Tensor::zeros([self.numel()], (Kind::Float, self.values.device()));
        if self.vars.is_empty() {
            return grads;
        }
        // Define every gradient once (a backward pass of zero), then point
        // each at its slot.
        let zero = self
            .vars
            .iter()
            .map(|(_, v)| v.sum(Kind::Float) * 0.0)
            .reduce(|a, b| a + b)
            .expect("at least one variable");
        zero.backward();
        for ((name, var), slot) in self.vars.iter().zip(self.views_of(&grads)) {
            let mut grad = var.grad();
            assert!(grad.defined(), "variable {name} does not require grad");
            grad.set_data(&slot);
        }
        grads
    }
}

/// d loss / d variables, packed `[N]` in the order of `variables` (a
/// variable the loss does not depend on gets zeros). Unlike a backward pass,
/// nothing accumulates into the variables' own gradients: several threads
/// can each take the gradient of their own loss, and the caller adds the
/// parts up in a fixed order, so the sum does not depend on timing.
pub fn packed_gradient(loss: &Tensor, variables: &[Tensor]) -> Tensor {
    let refs: Vec<&Tensor> = variables.iter().collect();
    let grads = Tensor::run_backward(&[loss], &refs, false, false);
    let flat: Vec<Tensor> = grads
        .iter()
        .zip(variables)
        .map(|(g, v)| {
            if g.defined() {
                g.view([-1])
            } else {
                v.zeros_like().view([-1])
            }
        })
        .collect();
    Tensor::cat(&flat, 0)
}

/// The buffer the variables already are consecutive views of, if they are.
fn packed_buffer(vars: &[(String, Tensor)], total: i64) -> Option<Tensor> {
    let (_, first) = vars.first()?;
    // as_strided checks the bounds of the first variable's storage: it only
    // holds `total` scalars from its offset when it is a packed buffer.
    let values = first.detach().f_as_strided([total], [1], None).ok()?;
    let base = first.data_ptr() as usize;
    let mut offset = 0usize;
    for (_, var) in vars {
        if !var.is_contiguous() || var.data_ptr() as usize != base + 4 * offset {
            return None;
        }
        offset += var.numel();
    }
    Some(values)
}

/// Copies the variables into a new buffer and makes each a view of its slot.
fn pack(vars: &[(String, Tensor)], total: i64, device: tch::Device) -> Tensor {
    let values = Tensor::zeros([total], (Kind::Float, device));
    crate::nn::no_grad(|| {
        let mut offset = 0;
        for (_, var) in vars {
            let n = var.numel() as i64;
            let slot = values.narrow(0, offset, n).view(var.size().as_slice());
            slot.shallow_clone().copy_(var);
            var.shallow_clone().set_data(&slot);
            offset += n;
        }
    });
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn store() -> (nn::VarStore, Tensor, Tensor) {
        let vs = nn::VarStore::new(Device::Cpu);
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[1.0f32, 2.0]));
        let a = vs.root().var_copy(
            "a",
            &Tensor::from_slice(&[3.0f32, 4.0, 5.0, 6.0]).view([2, 2]),
        );
        (vs, a, b)
    }

    #[test]
    fn packing_keeps_values_and_shapes_and_shares_memory() {
        let (vs, a, b) = store();
        let flat = FlatVariables::of(&vs);
        assert_eq!(
            Vec::<f32>::try_from(flat.values()).unwrap(),
            vec![3.0, 4.0, 5.0, 6.0, 1.0, 2.0],
            "name order: a then b"
        );
        assert_eq!(a.size(), vec![2, 2]);
        assert!(a.requires_grad() && b.requires_grad());
        crate::nn::no_grad(|| {
            let _ = flat.values().shallow_clone().g_mul_scalar_(10.0);
        });
        assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![10.0, 20.0]);
    }

    #[test]
    fn packing_twice_reuses_the_buffer() {
        let (vs, a, _) = store();
        let first = FlatVariables::of(&vs);
        let second = FlatVariables::of(&vs);
        assert_eq!(first.values().data_ptr(), second.values().data_ptr());
        crate::nn::no_grad(|| {
            let _ = second.values().shallow_clone().fill_(7.0);
        });
        assert_eq!(Vec::<f32>::try_from(first.values()).unwrap(), vec![7.0; 6]);
        assert_eq!(Vec::<f32>::try_from(a.view([-1])).unwrap(), vec![7.0; 4]);
    }

    #[test]
    fn backward_accumulates_into_the_gradient_buffer() {
        let (vs, a, b) = store();
        let flat = FlatVariables::of(&vs);
        let grads = flat.bind_gradients();
        assert_eq!(Vec::<f32>::try_from(&grads).unwrap(), vec![0.0; 6]);
        // loss = sum(a^2) + 3 sum(b): da = 2a, db = 3.
        (a.square().sum(Kind::Float) + b.sum(Kind::Float) * 3.0).backward();
        assert_eq!(
            Vec::<f32>::try_from(&grads).unwrap(),
            vec![6.0, 8.0, 10.0, 12.0, 3.0, 3.0]
        );
        // A second backward adds; zeroing the buffer zeroes every gradient.
        b.sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(b.grad()).unwrap(), vec![4.0, 4.0]);
        let _ = grads.shallow_clone().zero_();
        assert_eq!(
            Vec::<f32>::try_from(a.grad().view([-1])).unwrap(),
            vec![0.0; 4]
        );
    }

    #[test]
    fn packed_gradient_by_hand_and_without_touching_the_gradients() {
        let (vs, a, b) = store();
        let flat = FlatVariables::of(&vs);
        let grads = flat.bind_gradients();
        let vars: Vec<Tensor> = flat
            .variables()
            .iter()
            .map(|(_, v)| v.shallow_clone())
            .collect();
        // loss = sum(a * 0.5) + b0 * b1: da = 0.5, db = (b1, b0) = (2, 1).
        let loss = (&a * 0.5).sum(Kind::Float) + b.get(0) * b.get(1);
        let g = packed_gradient(&loss, &vars);
        assert_eq!(
            Vec::<f32>::try_from(&g).unwrap(),
            vec![0.5, 0.5, 0.5, 0.5, 2.0, 1.0]
        );
        assert_eq!(Vec::<f32>::try_from(&grads).unwrap(), vec![0.0; 6]);
        // A loss of `a` alone: zeros for `b`.
        let g = packed_gradient(&a.sum(Kind::Float), &vars);
        assert_eq!(
            Vec::<f32>::try_from(&g).unwrap(),
            vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
        );
    }

    #[test]
    fn views_follow_the_variables() {
        let (vs, _, _) = store();
        let flat = FlatVariables::of(&vs);
        let buffer = Tensor::arange(6, (Kind::Float, Device::Cpu));
        let views = flat.views_of(&buffer);
        assert_eq!(views[0].size(), vec![2, 2]);
        assert_eq!(Vec::<f32>::try_from(&views[1]).unwrap(), vec![4.0, 5.0]);
    }
}
