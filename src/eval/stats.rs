//! Means with 95% confidence intervals: Student's t for means, Wilson's score
//! interval for success rates.

use std::fmt;

use serde::Serialize;

/// A mean, the bounds of its 95% interval (`low`, `high`; asymmetric for a
/// Wilson interval) and the sample count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanCi {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    pub n: usize,
}

impl MeanCi {
    /// Half the interval's width.
    pub fn half_width(&self) -> f64 {
        0.5 * (self.high - self.low)
    }
}

impl fmt::Display for MeanCi {
    /// `mean [low, high]`, or `mean (n = 1, no interval)` when the interval
    /// is not finite.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low.is_finite() && self.high.is_finite() {
            write!(f, "{:.2} [{:.2}, {:.2}]", self.mean, self.low, self.high)
        } else {
            write!(f, "{:.2} (n = {}, no interval)", self.mean, self.n)
        }
    }
}

/// Two-sided 95% critical value of Student's t with `df` degrees of freedom:
/// the table to three decimals up to 30, then the Cornish-Fisher expansion
/// of t in powers of 1/df around the normal quantile (Abramowitz & Stegun
/// 26.7.5; within 1e-6 of the exact quantile from df = 30 on).
pub fn t_critical(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            const Z: f64 = 1.959_963_984_540_054; // the normal 0.975 quantile
            let (v, z2) = (df as f64, Z * Z);
            let g1 = Z * (z2 + 1.0) / 4.0;
            let g2 = Z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
            let g3 = Z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
            let g4 =
                Z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
            Z + (g1 + (g2 + (g3 + g4 / v) / v) / v) / v
        }
    }
}

/// Mean with a 95% t interval (sample standard deviation); a single value has
/// an infinite interval.
pub fn mean_ci(values: &[f64]) -> MeanCi {
    let n = values.len();
    if n == 0 {
        return MeanCi {
            mean: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
            n,
        };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return MeanCi {
            mean,
            low: f64::NEG_INFINITY,
            high: f64::INFINITY,
            n,
        };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t_critical(n - 1) * (var / n as f64).sqrt();
    MeanCi {
        mean,
        low: mean - half,
        high: mean + half,
        n,
    }
}

/// Success rate `successes / n` with Wilson's 95% score interval.
pub fn wilson(successes: usize, n: usize) -> MeanCi {
    if n == 0 {
        return MeanCi {
            mean: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
            n,
        };
    }
    let z = 1.96f64;
    let (p, nf) = (successes as f64 / n as f64, n as f64);
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / denom;
    // At p = 0 and p = 1 one bound is exactly p; rounding in centre -/+ half
    // would leave it an ulp off, outside [0, 1] or not containing p.
    MeanCi {
        mean: p,
        low: (centre - half).clamp(0.0, p),
        high: (centre + half).clamp(p, 1.0),
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// P(|T| <= t) for Student's t with `df` degrees of freedom, by the
    /// closed forms of Abramowitz & Stegun 26.7.3 (odd df) and 26.7.4 (even
    /// df), with theta = atan(t / sqrt(df)):
    ///   odd:  (2/pi) (theta + sin(theta) (c + 2/3 c^3 + 2*4/(3*5) c^5 + ..
    ///         + 2*4..(df-3)/(3*5..(df-2)) c^(df-2)))   (df = 1: 2 theta / pi)
    ///   even: sin(theta) (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ..
    ///         + 1*3..(df-3)/(2*4..(df-2)) c^(df-2)),   c = cos(theta).
    fn t_two_sided_probability(t: f64, df: usize) -> f64 {
        let theta = (t / (df as f64).sqrt()).atan();
        let (s, c) = (theta.sin(), theta.cos());
        let mut sum = 0.0;
        if df % 2 == 1 {
            let mut term = c;
            for j in 1..=(df - 1) / 2 {
                sum += term;
                term *= c * c * (2 * j) as f64 / (2 * j + 1) as f64;
            }
            2.0 / std::f64::consts::PI * (theta + s * sum)
        } else {
            let mut term = 1.0;
            for j in 0..df / 2 {
                sum += term;
                term *= c * c * (2 * j + 1) as f64 / (2 * j + 2) as f64;
            }
            s * sum
        }
    }

    /// t_{df, 0.975}: the t with P(|T| <= t) = 0.95, by bisection.
    fn naive_t_quantile(df: usize) -> f64 {
        let (mut low, mut high) = (0.0f64, 100.0f64);
        for _ in 0..200 {
            let mid = 0.5 * (low + high);
            if t_two_sided_probability(mid, df) < 0.95 {
                low = mid;
            } else {
                high = mid;
            }
        }
        0.5 * (low + high)
    }

    #[test]
    fn the_naive_t_quantile_matches_closed_forms() {
        // df = 1 (Cauchy): P(|T| <= t) = 2 atan(t) / pi = 0.95
        //   -> t = tan(0.475 pi) = tan(85.5 deg) = 12.7062047.
        assert!((naive_t_quantile(1) - (0.475 * std::f64::consts::PI).tan()).abs() < 1e-9);
        // df = 2: P = t / sqrt(2 + t^2) = 0.95 -> t^2 (1 - 0.9025) = 2 * 0.9025
        //   -> t = sqrt(1.805 / 0.0975) = sqrt(18.512820...) = 4.3026527.
        assert!((naive_t_quantile(2) - (1.805f64 / 0.0975).sqrt()).abs() < 1e-9);
        // Large df tends to the normal quantile 1.959964: at df = 10000 the
        // first correction is (z^3 + z) / (4 df) = (7.5291 + 1.96) / 40000
        //   = 0.000237 -> 1.960201.
        assert!((naive_t_quantile(10_000) - 1.960201).abs() < 2e-6);
    }

    #[test]
    fn the_t_table_holds_the_quantiles_to_its_three_decimals() {
        // The table's entries are t_{df, 0.975} rounded to 3 decimals.
        for df in 1..=30 {
            let (table, exact) = (t_critical(df), naive_t_quantile(df));
            assert!(
                (table - exact).abs() <= 5e-4,
                "t_critical({df}) = {table}, exact {exact}"
            );
        }
        assert_eq!(t_critical(0), f64::INFINITY);
    }

    /// Beyond the table (the bug this caught: a step function returning the
    /// quantile at the end of each range, 2.000 for 31..=60, so t_{31} =
    /// 2.0395 came out 2% narrow).
    #[test]
    fn the_t_quantile_is_right_beyond_the_table() {
        for df in (31..=200).chain([500, 1000]) {
            let (table, exact) = (t_critical(df), naive_t_quantile(df));
            assert!(
                (table - exact).abs() <= 1e-5,
                "t_critical({df}) = {table}, exact {exact}"
            );
        }
    }

    #[test]
    fn one_value_has_an_infinite_interval_and_none_has_nan() {
        let one = mean_ci(&[-3.25]);
        assert_eq!(one.mean, -3.25);
        assert_eq!(
            (one.low, one.high, one.n),
            (f64::NEG_INFINITY, f64::INFINITY, 1)
        );
        assert_eq!(one.half_width(), f64::INFINITY);
        assert_eq!(one.to_string(), "-3.25 (n = 1, no interval)");
        let none = mean_ci(&[]);
        assert!(none.mean.is_nan() && none.low.is_nan() && none.high.is_nan());
        assert_eq!(none.n, 0);
        assert_eq!(none.to_string(), "NaN (n = 0, no interval)");
        assert!(wilson(0, 0).mean.is_nan());
        // Two values: [1, 3], mean 2, s^2 = (1 + 1) / 1 = 2, se = sqrt(2 / 2) = 1,
        // half = t_1 = 12.706 -> [-10.706, 14.706].
        assert_eq!(mean_ci(&[1.0, 3.0]).to_string(), "2.00 [-10.71, 14.71]");
    }

    /// `n` is the case count: each case builds a vector and bisects 200 times.
    fn samples() -> impl Strategy<Value = Vec<f64>> {
        prop_oneof![
            // Quarter-integers: ties and all-equal vectors (s = 0) happen.
            prop::collection::vec((-8i32..8).prop_map(|k| f64::from(k) * 0.25), 2..=31),
            prop::collection::vec(-1e3f64..1e3, 2..=31),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn mean_ci_is_the_t_interval_of_a_naive_computation(values in samples()) {
            let n = values.len();
            let ci = mean_ci(&values);
            // Naive: mean, then s^2 = sum (x - mean)^2 / (n - 1), in the other
            // order (from the back) so that a summation bug shows.
            let mean = values.iter().rev().sum::<f64>() / n as f64;
            let ss: f64 = values.iter().rev().map(|v| (v - mean) * (v - mean)).sum();
            let se = (ss / (n - 1) as f64).sqrt() / (n as f64).sqrt();
            let expected_half = naive_t_quantile(n - 1) * se;
            prop_assert_eq!(ci.n, n);
            prop_assert!((ci.mean - mean).abs() <= 1e-9 * (1.0 + mean.abs()), "{:?} vs mean {}", ci, mean);
            prop_assert!(ci.low <= ci.mean && ci.mean <= ci.high, "{:?}", ci);
            // Symmetric about the mean.
            prop_assert!(((ci.high - ci.mean) - (ci.mean - ci.low)).abs() <= 1e-9 * (1.0 + ci.mean.abs()));
            // The table rounds t to 3 decimals: |t_table - t| <= 5e-4.
            prop_assert!(
                (ci.half_width() - expected_half).abs() <= 5e-4 * se + 1e-9 * (1.0 + mean.abs()),
                "{:?}: half {} vs t * se = {} (se {})", ci, ci.half_width(), expected_half, se
            );
        }

        #[test]
        fn wilson_lies_in_0_1_contains_p_and_solves_the_score_equation(
            (n, successes) in (1usize..5000).prop_flat_map(|n| (Just(n), prop_oneof![Just(0), Just(n), 0..=n])),
        ) {
            let ci = wilson(successes, n);
            let p = successes as f64 / n as f64;
            prop_assert_eq!(ci.n, n);
            prop_assert_eq!(ci.mean, p);
            prop_assert!(0.0 <= ci.low && ci.high <= 1.0, "{:?}", ci);
            prop_assert!(ci.low <= p && p <= ci.high, "{:?}", ci);
            // Wilson's bounds are the roots q of the score equation
            // (p - q)^2 = z^2 q (1 - q) / n, i.e. of
            // (1 + z^2/n) q^2 - (2p + z^2/n) q + p^2 = 0.
            let z2n = 1.96f64 * 1.96 / n as f64;
            let (a, b, c) = (1.0 + z2n, -(2.0 * p + z2n), p * p);
            let root = (b * b - 4.0 * a * c).sqrt();
            let (low, high) = ((-b - root) / (2.0 * a), (-b + root) / (2.0 * a));
            prop_assert!((ci.low - low.max(0.0)).abs() < 1e-9, "{:?} vs low {}", ci, low);
            prop_assert!((ci.high - high.min(1.0)).abs() < 1e-9, "{:?} vs high {}", ci, high);
        }
    }

    /// The bug this caught: 0 of 11 gave low = 2.8e-17 > 0 = p, and 6 of 6
    /// high = 0.9999999999999999 < 1 = p (centre -/+ half rounding away from
    /// the exact 0 and 1).
    #[test]
    fn wilson_contains_p_exactly_at_0_and_1() {
        for n in 1..=1000 {
            // p = 0: the score equation q^2 (1 + z^2/n) - q z^2/n = 0 has
            // roots 0 and (z^2/n) / (1 + z^2/n); p = 1: roots by symmetry.
            let none = wilson(0, n);
            assert_eq!(none.low, 0.0, "0 of {n}: {none:?}");
            let all = wilson(n, n);
            assert_eq!(all.high, 1.0, "{n} of {n}: {all:?}");
        }
    }

    #[test]
    fn t_interval_by_hand() {
        // [1, 2, 3, 4]: mean 2.5, sample var 5/3, se = sqrt(5/12) = 0.645497,
        // t(3) = 3.182 -> half width 2.05397.
        let ci = mean_ci(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ci.mean, 2.5);
        assert!((ci.half_width() - 3.182 * (5.0f64 / 12.0).sqrt()).abs() < 1e-12);
        assert!(mean_ci(&[7.0]).high.is_infinite());
    }

    #[test]
    fn wilson_by_hand() {
        // 8 of 10: centre (0.8 + 0.19208) / 1.38416 = 0.716738,
        // half 1.96 sqrt(0.016 + 0.009604) / 1.38416 = 0.226581.
        let ci = wilson(8, 10);
        assert!(
            (ci.low - 0.490157).abs() < 1e-5 && (ci.high - 0.943319).abs() < 1e-5,
            "{ci:?}"
        );
        let all = wilson(10, 10);
        assert_eq!(all.high, 1.0);
        assert!(all.low > 0.69 && all.low < 0.73);
    }
}
