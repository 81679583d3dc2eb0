//! Means with 95% confidence intervals: Student's t for means, Wilson's score
//! interval for success rates.

use std::fmt;

use serde::Serialize;

/// A mean and the half-width of its 95% interval (`low`/`high` for
/// asymmetric intervals).
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

/// Two-sided 95% critical value of Student's t with `df` degrees of freedom.
pub fn t_critical(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
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
    MeanCi {
        mean: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
