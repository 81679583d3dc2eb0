//! The VP schedule's tables against Ho et al. 2020 and Diffusion-QL's
//! numbers, in f64.

use proptest::prelude::*;

use super::*;

#[test]
fn vp_schedule_matches_diffusion_ql_numbers() {
    // docs/reference-notes.md 1.2, T = 5.
    let s = Schedule::new(vp_betas(5, 0.1, 10.0));
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 2e-6);
    assert!(
        close(
            &s.betas,
            &[0.195875, 0.458818, 0.635781, 0.754878, 0.835031]
        ),
        "{:?}",
        s.betas
    );
    assert!(close(
        &s.alphas_cumprod,
        &[0.804125, 0.435178, 0.158500, 0.038852, 0.006409]
    ));
    assert!(close(
        &s.posterior_mean_coef1,
        &[1.0, 0.728435, 0.498410, 0.312681, 0.165654]
    ));
    assert!(close(
        &s.posterior_mean_coef2,
        &[0.0, 0.255116, 0.405078, 0.433466, 0.392901]
    ));
    let var: Vec<f64> = s.posterior_log_variance.iter().map(|l| l.exp()).collect();
    assert!(close(&var[1..], &[0.159114, 0.426742, 0.660907, 0.807766]));
    assert!(var[0] < 1e-19, "step 0 has no posterior noise");
    assert_eq!(s.first_unusable(), None);
}

#[test]
fn schedules_that_overflow_float32_or_divide_by_zero_are_found() {
    // T = 20, alpha_bar_19 ~ exp(-180.5): finite in f64, but 1 / sqrt of
    // it is beyond float32 (alpha_bar_18 ~ exp(-162) still fits).
    let (name, i, value) = Schedule::new(vp_betas(20, 0.1, 400.0))
        .first_unusable()
        .expect("float32 overflow");
    assert_eq!((name, i), ("sqrt_recip_alphas_cumprod", 18));
    assert!(value.is_finite() && value > f32::MAX as f64, "{value}");
    // T = 5, beta_max = 500: alpha_3 = exp(-50) rounds beta_3 to 1, so
    // alpha_bar_3 = 0 and 1 / sqrt of it is inf.
    let (name, i, value) = Schedule::new(vp_betas(5, 0.1, 500.0))
        .first_unusable()
        .expect("overflow");
    assert_eq!((name, i), ("sqrt_recip_alphas_cumprod", 2));
    assert!(value.is_infinite(), "{value}");
    // beta_t rounds to 0: 1 - alpha_bar_1 = 0 and the posterior is 0 / 0.
    let (name, i, value) = Schedule::new(vp_betas(5, 1e-20, 2e-20))
        .first_unusable()
        .expect("0 / 0");
    assert_eq!((name, i), ("posterior_mean_coef1", 0));
    assert!(value.is_nan());
}

/// Ranges of the VP schedule the property tests draw: beta_max - beta_min up
/// to 18 keeps every table a finite float32 (alpha_bar_T >= e^-20).
fn vp_params() -> impl Strategy<Value = (usize, f64, f64)> {
    (1usize..=50, 0.01f64..2.0, 0.0f64..18.0)
        .prop_map(|(steps, beta_min, spread)| (steps, beta_min, beta_min + spread))
}

fn rel_close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1e-300)
}

proptest! {
    /// alpha_bar_t = prod_{s <= t} (1 - beta_s), a fresh product per t, and
    /// the closed form of the discretised VP SDE: ln(1 - beta_s) =
    /// -b_min / T - (b_max - b_min)(2s - 1) / (2 T^2) and sum_{s<=t} (2s - 1) =
    /// t^2, so ln alpha_bar_t = -(b_min t / T + (b_max - b_min) t^2 / (2 T^2)).
    #[test]
    fn vp_alpha_bar_is_the_product_of_one_minus_beta((steps, beta_min, beta_max) in vp_params()) {
        let betas = vp_betas(steps, beta_min, beta_max);
        prop_assert_eq!(betas.len(), steps);
        let s = Schedule::new(betas.clone());
        let t_max = steps as f64;
        for i in 0..steps {
            let abar: f64 = betas[..=i].iter().map(|b| 1.0 - b).product();
            prop_assert!(rel_close(s.alphas_cumprod[i], abar, 1e-12), "i {}: {} vs {}", i, s.alphas_cumprod[i], abar);
            let t = (i + 1) as f64;
            let log_abar = -(beta_min * t / t_max + (beta_max - beta_min) * t * t / (2.0 * t_max * t_max));
            prop_assert!(
                (s.alphas_cumprod[i].ln() - log_abar).abs() <= 1e-9 * (1.0 + log_abar.abs()),
                "i {}: ln {} vs {}", i, s.alphas_cumprod[i].ln(), log_abar
            );
            prop_assert!(betas[i] > 0.0 && betas[i] < 1.0);
            prop_assert!(rel_close(s.sqrt_alphas_cumprod[i].powi(2), abar, 1e-12));
            prop_assert!(rel_close(s.sqrt_one_minus_alphas_cumprod[i].powi(2), 1.0 - abar, 1e-9));
            prop_assert!(rel_close(s.sqrt_recip_alphas_cumprod[i].powi(2) * abar, 1.0, 1e-12));
            prop_assert!(rel_close(s.sqrt_recipm1_alphas_cumprod[i].powi(2), (1.0 - abar) / abar, 1e-9));
        }
        prop_assert_eq!(s.first_unusable(), None);
    }

    /// beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) (Ho et al. eq. 7):
    /// since 1 - abar_{t-1} < 1 - abar_t, 0 < beta~_t < beta_t for t >= 2 (step
    /// index i >= 1); at t = 1, abar_0 = 1 makes it 0, stored as the floor
    /// ln(1e-20).
    #[test]
    fn posterior_variance_lies_strictly_between_zero_and_beta((steps, beta_min, beta_max) in vp_params()) {
        let betas = vp_betas(steps, beta_min, beta_max);
        let s = Schedule::new(betas.clone());
        let abar = |i: usize| -> f64 { betas[..=i].iter().map(|b| 1.0 - b).product() };
        prop_assert_eq!(s.posterior_log_variance[0], 1e-20f64.ln());
        for (i, &beta) in betas.iter().enumerate().skip(1) {
            let variance = s.posterior_log_variance[i].exp();
            prop_assert!(variance > 0.0 && variance < beta, "i {}: {} vs beta {}", i, variance, beta);
            let want = beta * (1.0 - abar(i - 1)) / (1.0 - abar(i));
            prop_assert!(rel_close(variance, want, 1e-9), "i {}: {} vs {}", i, variance, want);
        }
    }

    /// Substituting x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) into the
    /// posterior mean coef1 x0 + coef2 x_t must give Ho et al. eq. 11,
    /// (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t): the x_t
    /// coefficients and the eps coefficients must agree.
    #[test]
    fn posterior_mean_in_terms_of_eps_is_ho_eq_11((steps, beta_min, beta_max) in vp_params()) {
        let betas = vp_betas(steps, beta_min, beta_max);
        let s = Schedule::new(betas.clone());
        for i in 0..steps {
            let alpha = 1.0 - betas[i];
            let abar: f64 = betas[..=i].iter().map(|b| 1.0 - b).product();
            let x_coef = s.posterior_mean_coef1[i] * s.sqrt_recip_alphas_cumprod[i] + s.posterior_mean_coef2[i];
            prop_assert!(rel_close(x_coef, 1.0 / alpha.sqrt(), 1e-9), "i {}: {} vs {}", i, x_coef, 1.0 / alpha.sqrt());
            let eps_coef = s.posterior_mean_coef1[i] * s.sqrt_recipm1_alphas_cumprod[i];
            let want = betas[i] / ((1.0 - abar).sqrt() * alpha.sqrt());
            prop_assert!(rel_close(eps_coef, want, 1e-9), "i {}: {} vs {}", i, eps_coef, want);
        }
        // At t = 1 the posterior mean is x0 itself: coef1 = 1, coef2 = 0.
        prop_assert!(rel_close(s.posterior_mean_coef1[0], 1.0, 1e-9));
        prop_assert_eq!(s.posterior_mean_coef2[0], 0.0);
    }
}
