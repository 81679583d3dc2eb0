//! Mish and its derivative over f32 slices in one pass, vectorised.
//!
//! tanh(softplus(x)) = n / (n + 2) with n = e^x (e^x + 2), so one exp per
//! element; e^x is Cephes' single-precision polynomial (relative error about
//! 1e-7), written with plain float and integer operations so that the loop
//! vectorises. The loop is compiled three times (AVX-512, AVX2 + FMA, and the
//! baseline) and the best one the CPU has is picked at run time.

/// Mish(x) is x to f32 precision above this, and e^x (e^x + 2) would
/// overflow f32 not far beyond it.
const HIGH: f32 = 20.0;
/// Below this e^x leaves the normal f32 range: it is taken as 0, and so
/// Mish(x) and Mish'(x) are 0 (their true sizes are below 1e-35).
const LOW: f32 = -87.0;

/// e^x, 0 below LOW, e^HIGH above HIGH.
#[inline(always)]
fn exp_clamped(x: f32) -> f32 {
    let e = exp(x.clamp(LOW, HIGH));
    if x < LOW { 0.0 } else { e }
}

/// e^x for x in [LOW, HIGH].
#[inline(always)]
fn exp(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds x log2(e) to an integer k held in the low
    // mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let shifted = x * std::f32::consts::LOG2_E + SHIFT;
    let k = shifted - SHIFT;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * (r * r) + r + 1.0;
    // 2^k from the integer in the low bits of `shifted`.
    let k_int = shifted.to_bits().wrapping_sub(SHIFT.to_bits()) as i32;
    let two_k = f32::from_bits(((k_int + 127) as u32) << 23);
    er * two_k
}

/// (Mish(x), Mish'(x)) with Mish'(x) = t + x sigmoid(x) (1 - t^2),
/// t = tanh(softplus(x)).
#[inline(always)]
fn mish_and_slope(x: f32) -> (f32, f32) {
    let e = exp_clamped(x);
    let n = e * (e + 2.0);
    let t = n / (n + 2.0);
    let sigmoid = e / (e + 1.0);
    (x * t, t + x * sigmoid * (1.0 - t * t))
}

#[inline(always)]
fn mish_value(x: f32) -> f32 {
    let e = exp_clamped(x);
    let n = e * (e + 2.0);
    x * (n / (n + 2.0))
}

#[inline(always)]
fn body(x: &[f32], value: &mut [f32], slope: Option<&mut [f32]>) {
    match slope {
        None => {
            for (v, &x) in value.iter_mut().zip(x) {
                *v = mish_value(x);
            }
        }
        Some(slope) => {
            for ((v, s), &x) in value.iter_mut().zip(slope.iter_mut()).zip(x) {
                (*v, *s) = mish_and_slope(x);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn body_avx512(x: &[f32], value: &mut [f32], slope: Option<&mut [f32]>) {
    body(x, value, slope)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn body_avx2(x: &[f32], value: &mut [f32], slope: Option<&mut [f32]>) {
    body(x, value, slope)
}

/// value[i] = Mish(x[i]) and, if given, slope[i] = Mish'(x[i]). All slices
/// have one length.
pub fn mish_slices(x: &[f32], value: &mut [f32], slope: Option<&mut [f32]>) {
    assert_eq!(
        x.len(),
        value.len(),
        "mish: input and output lengths differ"
    );
    if let Some(s) = &slope {
        assert_eq!(x.len(), s.len(), "mish: input and slope lengths differ");
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { body_avx512(x, value, slope) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { body_avx2(x, value, slope) };
        }
    }
    body(x, value, slope)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mish and its derivative in f64 from the definition.
    fn reference(x: f64) -> (f64, f64) {
        let softplus = if x > 30.0 { x } else { x.exp().ln_1p() };
        let t = softplus.tanh();
        let sigmoid = 1.0 / (1.0 + (-x).exp());
        (x * t, t + x * sigmoid * (1.0 - t * t))
    }

    fn grid() -> Vec<f32> {
        (-4000..=4000).map(|i| i as f32 * 0.025).collect()
    }

    #[test]
    fn exp_is_accurate_over_its_range() {
        for i in 0..=10_700 {
            let x = LOW + i as f32 * 0.01;
            let ours = exp(x) as f64;
            let exact = (x as f64).exp();
            assert!(
                ((ours - exact) / exact).abs() < 3e-7,
                "exp({x}) = {ours}, exactly {exact}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn values_and_slopes_match_the_definition() {
        let x = grid();
        let mut value = vec![0.0; x.len()];
        let mut slope = vec![0.0; x.len()];
        mish_slices(&x, &mut value, Some(&mut slope));
        let mut value_only = vec![0.0; x.len()];
        mish_slices(&x, &mut value_only, None);
        for (i, &xi) in x.iter().enumerate() {
            let (v, s) = reference(xi as f64);
            let tol = 2e-6 * (1.0 + v.abs());
            assert!(
                (value[i] as f64 - v).abs() < tol,
                "mish({xi}) = {} not {v}",
                value[i]
            );
            assert!(
                (slope[i] as f64 - s).abs() < 2e-6,
                "mish'({xi}) = {} not {s}",
                slope[i]
            );
            assert_eq!(value[i], value_only[i], "the two loops disagree at {xi}");
        }
    }

    #[test]
    fn extremes_are_finite_and_exact_in_the_limit() {
        let x = [-1e30f32, -1000.0, -87.5, 20.5, 1000.0, 1e30];
        let mut value = [0.0; 6];
        let mut slope = [0.0; 6];
        mish_slices(&x, &mut value, Some(&mut slope));
        assert_eq!(&value[..2], &[0.0, 0.0]);
        assert_eq!(&slope[..2], &[0.0, 0.0]);
        assert!(value[2] <= 0.0 && value[2] > -1e-35, "{value:?}");
        assert!(slope[2].abs() < 1e-35, "{slope:?}");
        for i in 3..6 {
            assert_eq!(value[i], x[i]);
            assert_eq!(slope[i], 1.0);
        }
    }

    #[test]
    fn every_compiled_variant_agrees() {
        let x = grid();
        type Kernel = dyn Fn(&[f32], &mut [f32], Option<&mut [f32]>);
        let run = |f: &Kernel| {
            let mut value = vec![0.0; x.len()];
            let mut slope = vec![0.0; x.len()];
            f(&x, &mut value, Some(&mut slope));
            (value, slope)
        };
        let baseline = run(&|x, v, s| body(x, v, s));
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: checked just above.
                let wide = run(&|x, v, s| unsafe { body_avx512(x, v, s) });
                assert_eq!(wide, baseline);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: checked just above.
                let avx2 = run(&|x, v, s| unsafe { body_avx2(x, v, s) });
                assert_eq!(avx2, baseline);
            }
        }
    }
}
