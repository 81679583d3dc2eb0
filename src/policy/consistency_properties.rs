//! The consistency policy's sampler and both BC losses against the f64
//! restatements of the formula tests above, over random known nets, noise
//! schedules (sigma range, rho, sigma_data, N), step counts, inputs and
//! noise streams.

use proptest::prelude::*;

use super::losses::{LOSS_TOL, LossFlaw, consistency_loss_f64, reconstruction_loss_f64};
use super::*;

/// Rows of a batch.
const B: usize = 5;

/// Known nets with small weights, so that most samples end inside the clip
/// box and carry the arithmetic.
fn known_nets() -> impl Strategy<Value = KnownNet> {
    (
        -0.8f64..0.8,
        -1.0f64..1.0,
        -0.5f64..0.5,
        proptest::collection::vec(-0.5f64..0.5, CHUNK),
    )
        .prop_map(|(k, w_t, u, bias)| KnownNet { k, w_t, u, bias })
}

/// Discretisations: sigma_min 0.002..0.5, sigma_max 2-200 times it, rho
/// 1..9, sigma_data 0.2..1.5, N 3..=12 levels.
fn schedules() -> impl Strategy<Value = ConsistencyConfig> {
    (
        0.002f64..0.5,
        2.0f64..200.0,
        1.0f64..9.0,
        0.2f64..1.5,
        3usize..=12,
    )
        .prop_map(
            |(sigma_min, ratio, rho, sigma_data, scales)| ConsistencyConfig {
                sigma_min,
                sigma_max: sigma_min * ratio,
                rho,
                sigma_data,
                scales,
                ..ConsistencyConfig::default()
            },
        )
}

fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-1.0f32..1.0, n)
}

/// A loss test's batch as tensors, `[B, H, A]` and `[B, O]`, the noise
/// stream of `seed` and a clone of it to replay the loss's draws.
fn loss_inputs(
    actions: &[f32],
    obs: &[f32],
    seed: u64,
) -> (Tensor, Tensor, NoiseSource, NoiseSource) {
    let noise = NoiseSource::new(seed, Device::Cpu);
    let replay = noise.clone();
    (
        Tensor::from_slice(actions).view([B as i64, 2, 2]),
        Tensor::from_slice(obs).view([B as i64, COND as i64]),
        noise,
        replay,
    )
}

/// The draws of a BC loss, replayed: the level n of each row (0..N-2) and
/// its noise z `[B * H * A]`.
fn loss_draws(replay: &mut NoiseSource, cfg: &ConsistencyConfig) -> (Vec<i64>, Vec<f64>) {
    let n = Vec::<i64>::try_from(replay.integers(B, cfg.scales as i64 - 1)).unwrap();
    (n, host(&replay.normal(&[B as i64, 2, 2])))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// `sample` against `sample_f64` at the levels k (N - 1) / steps
    /// (integer division), the noise replayed from a clone of the stream.
    #[test]
    fn sample_matches_the_f64_sampler_for_random_schedules(
        seed in any::<u64>(),
        schedule in schedules(),
        steps in 1usize..=4,
        net in known_nets(),
        obs in values(B * COND),
    ) {
        let steps = steps.min(schedule.scales - 1);
        let cfg = ConsistencyConfig { sample_steps: steps, ..schedule };
        let (_vs, policy) = known_policy(&net, &cfg);
        let obs_t = Tensor::from_slice(&obs).view([B as i64, COND as i64]);
        let mut noise = NoiseSource::new(seed, Device::Cpu);
        let mut replay = noise.clone();
        let got = host(&crate::nn::no_grad(|| policy.sample(&obs_t, &mut noise)));
        let draws: Vec<Vec<f64>> =
            (0..steps).map(|_| host(&replay.normal(&[B as i64, 2, 2]))).collect();
        let indices: Vec<usize> = (0..steps).map(|k| k * (cfg.scales - 1) / steps).collect();
        let obs: Vec<f64> = obs.iter().map(|&v| f64::from(v)).collect();
        let want = sample_f64(&net, &cfg, &obs, &draws, &indices, SampleFlaw::Correct);
        let err = max_abs_diff(&got, &want);
        prop_assert!(err <= 1e-4, "{}: {:?} vs {:?}", err, got, want);
    }

    /// Consistency training against `consistency_loss_f64` with distinct
    /// online and target nets: the loss and the online output bias's
    /// gradient.
    #[test]
    fn consistency_loss_and_its_gradient_match_f64_for_random_schedules(
        seed in any::<u64>(),
        schedule in schedules(),
        online in known_nets(),
        target in known_nets(),
        actions in values(B * CHUNK),
        obs in values(B * COND),
    ) {
        let cfg = ConsistencyConfig { loss: ConsistencyLoss::Consistency, ..schedule };
        let (online_vs, policy) = known_policy(&online, &cfg);
        let (_target_vs, target_policy) = known_policy(&target, &cfg);
        let (actions_t, obs_t, mut noise, mut replay) = loss_inputs(&actions, &obs, seed);
        let loss = policy.bc_loss(&obs_t, &actions_t, &target_policy, &mut noise);
        let (n, z) = loss_draws(&mut replay, &cfg);
        let (a, o) = (host(&actions_t), host(&obs_t));
        let (want, want_grad) = consistency_loss_f64(
            &online, &target, &cfg, &o, &a, &n, &z, LossFlaw::Correct,
        );
        let got = loss.double_value(&[]);
        prop_assert!((got - want).abs() <= LOSS_TOL * want.abs() + 1e-7, "n {:?}: {} vs {}", n, got, want);

        for mut v in online_vs.trainable_variables() {
            v.zero_grad();
        }
        loss.backward();
        let bias_grad = host(&online_vs.variables()["net.mlp.out.bias"].grad());
        let scale = want_grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        prop_assert!(
            max_abs_diff(&bias_grad, &want_grad) <= 2e-3 * scale + 1e-6,
            "online bias gradient {:?} vs {:?}", bias_grad, want_grad
        );
    }

    /// The reconstruction loss (the default) against `reconstruction_loss_f64`.
    #[test]
    fn reconstruction_loss_matches_f64_for_random_schedules(
        seed in any::<u64>(),
        schedule in schedules(),
        net in known_nets(),
        actions in values(B * CHUNK),
        obs in values(B * COND),
    ) {
        let cfg = ConsistencyConfig { loss: ConsistencyLoss::Reconstruction, ..schedule };
        let (_vs, policy) = known_policy(&net, &cfg);
        let (actions_t, obs_t, mut noise, mut replay) = loss_inputs(&actions, &obs, seed);
        let got = crate::nn::no_grad(|| policy.bc_loss(&obs_t, &actions_t, &policy, &mut noise))
            .double_value(&[]);
        let (n, z) = loss_draws(&mut replay, &cfg);
        let want = reconstruction_loss_f64(
            &net, &cfg, &host(&obs_t), &host(&actions_t), &n, &z, &|s| 250.0 * s.ln(),
        );
        prop_assert!((got - want).abs() <= LOSS_TOL * want.abs() + 1e-7, "n {:?}: {} vs {}", n, got, want);
    }
}
