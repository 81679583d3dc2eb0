//! Tests only: weights that give an MLP denoiser a closed-form output, so
//! that the policies' arithmetic can be checked against f64 formulas.

use tch::{Kind, Tensor, nn};

/// Mish(y) = y tanh(ln(1 + e^y)), in f64.
pub(crate) fn mish(y: f64) -> f64 {
    y * y.exp().ln_1p().tanh()
}

/// An MLP denoiser with no hidden layer (`hidden: []`) is one Linear over
/// `[x (H*A), time embedding (time_dim), obs (To*O)]`. With these weights its
/// output for chunk element j of a row is
///
///   k * x_j + w_t * mish(sin(time)) + u * sum(obs) + bias_j:
///
/// the time embedding's first Linear copies the sinusoidal feature
/// sin(time * f_0) (f_0 = e^0 = 1) to its first unit, Mish, its second Linear
/// copies that unit to the first embedding feature; every other weight is 0.
#[derive(Debug, Clone)]
pub(crate) struct KnownNet {
    pub k: f64,
    pub w_t: f64,
    pub u: f64,
    /// `[H*A]`
    pub bias: Vec<f64>,
}

/// `t[index] = value`, in place, outside the autograd graph.
fn set(t: &Tensor, index: &[i64], value: f64) {
    let mut element = t.shallow_clone();
    for &i in index {
        element = element.get(i);
    }
    let _ = element.fill_(value);
}

impl KnownNet {
    /// Writes the weights into the denoiser under `prefix` (e.g. "net") of
    /// `vs`, whose policy was built with `hidden: []`.
    pub fn install(&self, vs: &nn::VarStore, prefix: &str, time_dim: i64, cond_dim: i64) {
        let chunk_dim = self.bias.len() as i64;
        let vars = vs.variables();
        let mut names: Vec<&str> = vars.keys().map(String::as_str).collect();
        names.sort();
        let expected: Vec<String> = [
            "mlp.out.bias",
            "mlp.out.weight",
            "time.l1.bias",
            "time.l1.weight",
            "time.l2.bias",
            "time.l2.weight",
        ]
        .iter()
        .map(|n| format!("{prefix}.{n}"))
        .collect();
        assert_eq!(names, expected, "not a one-Linear MLP denoiser");
        let var = |n: &str| &vars[&format!("{prefix}.{n}")];
        assert_eq!(
            var("mlp.out.weight").size(),
            vec![chunk_dim, chunk_dim + time_dim + cond_dim]
        );
        crate::nn::no_grad(|| {
            for v in vars.values() {
                let _ = v.shallow_clone().zero_();
            }
            set(var("time.l1.weight"), &[0, 0], 1.0);
            set(var("time.l2.weight"), &[0, 0], 1.0);
            let w = var("mlp.out.weight");
            for j in 0..chunk_dim {
                set(w, &[j, j], self.k);
                set(w, &[j, chunk_dim], self.w_t);
                for m in 0..cond_dim {
                    set(w, &[j, chunk_dim + time_dim + m], self.u);
                }
                set(var("mlp.out.bias"), &[j], self.bias[j as usize]);
            }
        });
    }

    /// The output for one row: x `[H*A]`, obs `[To*O]` -> `[H*A]`.
    pub fn output(&self, x: &[f64], time: f64, obs: &[f64]) -> Vec<f64> {
        let shared = self.w_t * mish(time.sin()) + self.u * obs.iter().sum::<f64>();
        x.iter()
            .zip(&self.bias)
            .map(|(x, b)| self.k * x + shared + b)
            .collect()
    }
}

#[test]
fn mish_hand_values() {
    // mish(0) = 0 tanh(ln 2) = 0. mish(1) = tanh(ln(1 + e)), and
    // tanh(ln c) = (c^2 - 1) / (c^2 + 1) with c = 1 + e = 3.7182818:
    // c^2 = 13.825620, so (12.825620) / (14.825620) = 0.8650984.
    assert_eq!(mish(0.0), 0.0);
    assert!((mish(1.0) - 0.865_098_4).abs() < 1e-7, "{}", mish(1.0));
}

/// A tensor's values as f64, flattened.
pub(crate) fn host(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// The largest elementwise |a - b| (equal lengths).
pub(crate) fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
