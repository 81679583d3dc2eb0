use super::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Kind, Reduction, nn::OptimizerConfig};

use crate::nn::reset_parameters;

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);
const HORIZONS: [i64; 8] = [1, 2, 3, 4, 5, 7, 8, 16];

/// A CPU VarStore; libtorch runs single-threaded in this test's thread.
/// With parallel test threads on a small machine, OpenMP's worker teams
/// oversubscribe the cores and make these tiny-tensor tests ~6x slower.
fn var_store() -> nn::VarStore {
    tch::set_num_threads(1);
    nn::VarStore::new(Device::Cpu)
}

fn cfg(down_dims: &[i64], n_groups: i64) -> UnetConfig {
    UnetConfig {
        down_dims: down_dims.to_vec(),
        kernel_size: 5,
        n_groups,
        time_embed_dim: 8,
    }
}

fn two_and_three_levels() -> [UnetConfig; 2] {
    [cfg(&[8, 16], 4), cfg(&[8, 16, 32], 8)]
}

fn param_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(Tensor::numel)
        .map(|n| n as i64)
        .sum()
}

/// Parameter count from the architecture, block by block.
fn expected_count(input_dim: i64, cond_dim: i64, cfg: &UnetConfig, unet: bool) -> i64 {
    let k = cfg.kernel_size;
    let conv_block = |i: i64, o: i64| i * o * k + o + 2 * o;
    let res = |i: i64, o: i64, c: i64| {
        conv_block(i, o) + conv_block(o, o) + c * 2 * o + 2 * o + if i != o { i * o + o } else { 0 }
    };
    let e = cfg.time_embed_dim;
    let c = if unet { e + cond_dim } else { cond_dim };
    let dims: Vec<i64> = std::iter::once(input_dim)
        .chain(cfg.down_dims.iter().copied())
        .collect();
    let n = cfg.down_dims.len();
    let mut total = 0;
    for i in 0..n {
        let (din, dout) = (dims[i], dims[i + 1]);
        total += res(din, dout, c) + res(dout, dout, c);
        if i + 1 < n {
            total += dout * dout * 3 + dout;
        }
    }
    total += 2 * res(dims[n], dims[n], c);
    if unet {
        total += e * 4 * e + 4 * e + 4 * e * e + e;
        for i in 1..n {
            let (din, dout) = (dims[i], dims[i + 1]);
            total += res(2 * dout, din, c) + res(din, din, c) + din * din * 4 + din;
        }
        total += conv_block(dims[1], dims[1]) + dims[1] * input_dim + input_dim;
    }
    total
}

#[test]
fn default_config_is_valid_and_bad_configs_are_rejected_with_a_reason() {
    assert_eq!(UnetConfig::default().validate(), Ok(()));
    let cases = [
        (
            UnetConfig {
                down_dims: vec![],
                ..Default::default()
            },
            "1..=12 levels, got 0",
        ),
        (
            UnetConfig {
                down_dims: vec![8; MAX_LEVELS + 1],
                ..Default::default()
            },
            "1..=12 levels, got 13",
        ),
        (
            UnetConfig {
                down_dims: vec![64, 100],
                ..Default::default()
            },
            "multiple of n_groups",
        ),
        (
            UnetConfig {
                down_dims: vec![0],
                ..Default::default()
            },
            "positive multiple",
        ),
        (
            UnetConfig {
                n_groups: 0,
                ..Default::default()
            },
            "n_groups must be >= 1",
        ),
        (
            UnetConfig {
                kernel_size: 4,
                ..Default::default()
            },
            "kernel_size must be odd",
        ),
        (
            UnetConfig {
                kernel_size: -1,
                ..Default::default()
            },
            "kernel_size must be odd",
        ),
        (
            UnetConfig {
                time_embed_dim: 7,
                ..Default::default()
            },
            "time_embed_dim must be even",
        ),
        (
            UnetConfig {
                time_embed_dim: 2,
                ..Default::default()
            },
            "time_embed_dim must be even",
        ),
    ];
    for (bad, reason) in cases {
        let msg = bad.validate().expect_err(reason);
        assert!(
            msg.contains(reason) && !msg.contains('\n'),
            "{msg:?} should say {reason:?}"
        );
    }
}

#[test]
fn config_reads_partial_json_with_defaults_and_rejects_unknown_keys() {
    let c: UnetConfig = serde_json::from_str(r#"{"down_dims": [16, 32]}"#).unwrap();
    assert_eq!(
        c,
        UnetConfig {
            down_dims: vec![16, 32],
            ..Default::default()
        }
    );
    assert!(serde_json::from_str::<UnetConfig>(r#"{"kernel": 3}"#).is_err());
}

#[test]
#[should_panic(expected = "kernel_size must be odd")]
fn building_from_an_invalid_config_panics_with_the_reason() {
    let vs = var_store();
    let bad = UnetConfig {
        kernel_size: 2,
        ..cfg(&[8], 4)
    };
    TemporalUnet::new(&vs.root(), 2, 3, &bad);
}

#[test]
fn parameter_counts_match_the_architecture() {
    for c in two_and_three_levels().iter().chain([&cfg(&[8], 4)]) {
        let vs = var_store();
        TemporalUnet::new(&vs.root(), 3, 5, c);
        assert_eq!(param_count(&vs), expected_count(3, 5, c, true), "{c:?}");
        let vs = var_store();
        TemporalEncoder::new(&vs.root(), 4, 6, c);
        assert_eq!(param_count(&vs), expected_count(4, 6, c, false), "{c:?}");
    }
    // The sizes the agents build by default.
    let d = UnetConfig::default();
    let vs = var_store();
    TemporalUnet::new(&vs.root(), 6, 34, &d);
    assert_eq!(param_count(&vs), expected_count(6, 34, &d, true));
    let vs = var_store();
    TemporalEncoder::new(&vs.root(), 7, 256, &d);
    assert_eq!(param_count(&vs), expected_count(7, 256, &d, false));
}

#[test]
fn parameter_names_follow_the_block_structure() {
    let vs = var_store();
    TemporalUnet::new(&vs.root(), 2, 3, &cfg(&[8, 16, 32], 8));
    let vars = vs.variables();
    for name in [
        "time_emb.l1.weight",
        "down0.res0.block0.conv.weight",
        "down0.res0.block0.norm.weight",
        "down0.res0.film.weight",
        "down0.res0.residual.weight",
        "down1.downsample.weight",
        "mid1.block1.conv.bias",
        "up0.res0.residual.weight",
        "up1.upsample.weight",
        "final.block.conv.weight",
        "final.conv.weight",
    ] {
        assert!(vars.contains_key(name), "missing {name}");
    }
    assert!(
        !vars.contains_key("down2.downsample.weight"),
        "no downsample at the last level"
    );
    assert!(
        !vars.contains_key("down0.res1.residual.weight"),
        "identity residual when in == out"
    );
    // ConvTranspose1d weight is [in, out, k], as in PyTorch (reset_parameters' fan_in = out * k).
    assert_eq!(vars["up1.upsample.weight"].size(), vec![8, 8, 4]);
}

#[test]
fn output_shapes_for_every_horizon_and_level_count() {
    for c in two_and_three_levels() {
        let vs = var_store();
        let unet = TemporalUnet::new(&vs.root(), 3, 5, &c);
        let encoder = TemporalEncoder::new(&(vs.root() / "enc"), 4, 6, &c);
        assert_eq!(encoder.output_dim(), *c.down_dims.last().unwrap());
        for h in HORIZONS {
            let y = unet.forward(
                &Tensor::randn([3, h, 3], CPU),
                &Tensor::rand([3], CPU),
                &Tensor::randn([3, 5], CPU),
            );
            assert_eq!(y.size(), vec![3, h, 3], "unet, H = {h}, {c:?}");
            let z = encoder.forward(&Tensor::randn([3, h, 4], CPU), &Tensor::randn([3, 6], CPU));
            assert_eq!(
                z.size(),
                vec![3, encoder.output_dim()],
                "encoder, H = {h}, {c:?}"
            );
            assert!(
                bool::try_from(y.isfinite().all()).unwrap()
                    && bool::try_from(z.isfinite().all()).unwrap()
            );
        }
    }
}

#[test]
fn a_single_level_unet_works_without_resampling() {
    let vs = var_store();
    let unet = TemporalUnet::new(&vs.root(), 2, 3, &cfg(&[8], 4));
    let y = unet.forward(
        &Tensor::randn([3, 5, 2], CPU),
        &Tensor::rand([3], CPU),
        &Tensor::randn([3, 3], CPU),
    );
    assert_eq!(y.size(), vec![3, 5, 2]);
}

#[test]
fn same_inputs_same_output_and_cond_and_time_change_it() {
    tch::manual_seed(0);
    let vs = var_store();
    let c = cfg(&[8, 16, 32], 8);
    let unet = TemporalUnet::new(&vs.root(), 3, 5, &c);
    let encoder = TemporalEncoder::new(&(vs.root() / "enc"), 3, 5, &c);
    let (x, t, cond) = (
        Tensor::randn([3, 6, 3], CPU),
        Tensor::from_slice(&[1.0f32, 5.0, 20.0]),
        Tensor::randn([3, 5], CPU),
    );
    let differs = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) > 1e-4;

    let y = unet.forward(&x, &t, &cond);
    assert!(y.equal(&unet.forward(&x, &t, &cond)));
    assert!(
        differs(&y, &unet.forward(&x, &(&t + 3.0), &cond)),
        "time must matter"
    );
    assert!(
        differs(&y, &unet.forward(&x, &t, &Tensor::randn([3, 5], CPU))),
        "cond must matter"
    );
    assert!(
        differs(&y, &unet.forward(&Tensor::randn([3, 6, 3], CPU), &t, &cond)),
        "x must matter"
    );
    // A 0-dim time is broadcast over the batch.
    let t_const = Tensor::from(7.0f32);
    assert!(unet.forward(&x, &t_const, &cond).allclose(
        &unet.forward(&x, &t_const.expand([3], false), &cond),
        1e-6,
        1e-6,
        false
    ));

    let z = encoder.forward(&x, &cond);
    assert!(z.equal(&encoder.forward(&x, &cond)));
    assert!(
        differs(&z, &encoder.forward(&x, &Tensor::randn([3, 5], CPU))),
        "cond must matter"
    );
    assert!(
        differs(&z, &encoder.forward(&Tensor::randn([3, 6, 3], CPU), &cond)),
        "x must matter"
    );
}

#[test]
fn rows_of_a_batch_are_independent() {
    let vs = var_store();
    let c = cfg(&[8, 16], 4);
    let unet = TemporalUnet::new(&vs.root(), 2, 3, &c);
    let encoder = TemporalEncoder::new(&(vs.root() / "enc"), 2, 3, &c);
    let (x, t, cond) = (
        Tensor::randn([3, 5, 2], CPU),
        Tensor::rand([3], CPU),
        Tensor::randn([3, 3], CPU),
    );
    let y = unet.forward(&x, &t, &cond);
    let y1 = unet.forward(
        &x.narrow(0, 1, 1),
        &t.narrow(0, 1, 1),
        &cond.narrow(0, 1, 1),
    );
    assert!(y.narrow(0, 1, 1).allclose(&y1, 1e-5, 1e-5, false));
    let z = encoder.forward(&x, &cond);
    let z1 = encoder.forward(&x.narrow(0, 1, 1), &cond.narrow(0, 1, 1));
    assert!(z.narrow(0, 1, 1).allclose(&z1, 1e-5, 1e-5, false));
}

#[test]
fn internal_padding_repeats_the_last_step_and_is_cropped() {
    for c in two_and_three_levels() {
        let vs = var_store();
        let unet = TemporalUnet::new(&vs.root(), 2, 3, &c);
        let encoder = TemporalEncoder::new(&(vs.root() / "enc"), 2, 3, &c);
        let multiple = 1i64 << (c.down_dims.len() - 1);
        for h in [1, 3, 5, 7] {
            let x = Tensor::randn([3, h, 2], CPU);
            let (t, cond) = (Tensor::rand([3], CPU), Tensor::randn([3, 3], CPU));
            let hp = (h + multiple - 1) / multiple * multiple;
            let padded = Tensor::cat(
                &[
                    x.shallow_clone(),
                    x.narrow(1, h - 1, 1).repeat([1, hp - h, 1]),
                ],
                1,
            );
            assert_eq!(pad_time(&x, multiple).size(), vec![3, hp, 2]);
            assert!(pad_time(&x, multiple).equal(&padded));
            let cropped = unet.forward(&padded, &t, &cond).narrow(1, 0, h);
            assert!(
                unet.forward(&x, &t, &cond)
                    .allclose(&cropped, 1e-6, 1e-6, false),
                "H = {h}"
            );
            assert!(encoder.forward(&x, &cond).allclose(
                &encoder.forward(&padded, &cond),
                1e-6,
                1e-6,
                false
            ));
        }
    }
}

#[test]
fn every_step_of_the_chunk_influences_the_output() {
    for c in two_and_three_levels() {
        let vs = var_store();
        let unet = TemporalUnet::new(&vs.root(), 2, 3, &c);
        let encoder = TemporalEncoder::new(&(vs.root() / "enc"), 2, 3, &c);
        for h in HORIZONS {
            let (t, cond) = (Tensor::rand([3], CPU), Tensor::randn([3, 3], CPU));
            let x = Tensor::randn([3, h, 2], CPU).set_requires_grad(true);
            let y = unet.forward(&x, &t, &cond);
            (&y * Tensor::randn(y.size().as_slice(), CPU))
                .sum(Kind::Float)
                .backward();
            let per_step = x
                .grad()
                .abs()
                .sum_dim_intlist(&[0i64, 2][..], false, Kind::Float);
            assert!(
                bool::try_from(per_step.gt(0.0).all()).unwrap(),
                "unet H = {h}: {per_step}"
            );

            let x = Tensor::randn([3, h, 2], CPU).set_requires_grad(true);
            let z = encoder.forward(&x, &cond);
            (&z * Tensor::randn(z.size().as_slice(), CPU))
                .sum(Kind::Float)
                .backward();
            let per_step = x
                .grad()
                .abs()
                .sum_dim_intlist(&[0i64, 2][..], false, Kind::Float);
            assert!(
                bool::try_from(per_step.gt(0.0).all()).unwrap(),
                "encoder H = {h}: {per_step}"
            );
        }
    }
}

#[test]
fn every_parameter_receives_a_gradient() {
    for c in two_and_three_levels() {
        let vs = var_store();
        let unet = TemporalUnet::new(&(vs.root() / "unet"), 2, 3, &c);
        let encoder = TemporalEncoder::new(&(vs.root() / "enc"), 3, 4, &c);
        let y = unet.forward(
            &Tensor::randn([3, 5, 2], CPU),
            &Tensor::rand([3], CPU),
            &Tensor::randn([3, 3], CPU),
        );
        let z = encoder.forward(&Tensor::randn([3, 5, 3], CPU), &Tensor::randn([3, 4], CPU));
        let loss = (&y * Tensor::randn(y.size().as_slice(), CPU)).sum(Kind::Float)
            + (&z * Tensor::randn(z.size().as_slice(), CPU)).sum(Kind::Float);
        loss.backward();
        for (name, var) in vs.variables() {
            let grad = var.grad();
            assert!(
                grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "{name} got no gradient ({c:?})"
            );
        }
    }
}

/// `[shape]` standard-normal tensor from a seeded RNG (deterministic even
/// while other tests draw from libtorch's global generator).
fn randn(shape: &[i64], rng: &mut ChaCha8Rng) -> Tensor {
    let n = shape.iter().product::<i64>() as usize;
    let values: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    Tensor::from_slice(&values).view(shape)
}

/// Runs `steps` Adam steps (lr 1e-3) on `loss`; returns (first, last) loss.
fn fit(vs: &nn::VarStore, steps: usize, mut loss: impl FnMut() -> Tensor) -> (f64, f64) {
    let mut opt = nn::Adam::default().build(vs, 1e-3).unwrap();
    let first = loss().double_value(&[]);
    let mut last = first;
    for _ in 0..steps {
        let l = loss();
        last = l.double_value(&[]);
        opt.backward_step(&l);
    }
    (first, last)
}

#[test]
fn unet_learns_a_target_that_only_cond_determines() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let vs = var_store();
    let unet = TemporalUnet::new(&vs.root(), 2, 6, &cfg(&[16, 32], 8));
    reset_parameters(&vs, &mut rng);
    // One noisy chunk and one step for the whole batch: only cond tells the rows apart.
    let x = randn(&[1, 4, 2], &mut rng).expand([16, 4, 2], false);
    let t = Tensor::full([16], 37.0, CPU);
    let cond = randn(&[16, 6], &mut rng);
    let target = cond
        .matmul(&randn(&[6, 8], &mut rng))
        .tanh()
        .view([16, 4, 2]);
    let (first, last) = fit(&vs, 200, || {
        unet.forward(&x, &t, &cond)
            .mse_loss(&target, Reduction::Mean)
    });
    assert!(last < 0.2 * first, "unet MSE {first} -> {last}");
}

#[test]
fn encoder_with_a_linear_head_learns_the_sum_of_a_sequence() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let vs = var_store();
    let encoder = TemporalEncoder::new(&(vs.root() / "enc"), 2, 4, &cfg(&[16, 32], 8));
    let head = nn::linear(
        vs.root() / "head",
        encoder.output_dim(),
        1,
        Default::default(),
    );
    reset_parameters(&vs, &mut rng);
    // One cond for the whole batch: the target must be read from the sequence.
    let cond = randn(&[1, 4], &mut rng).expand([64, 4], false);
    let sum = |x: &Tensor| {
        x.sum_dim_intlist(&[1i64, 2][..], false, Kind::Float)
            .unsqueeze(1)
    };
    let (x, x_test) = (randn(&[64, 5, 2], &mut rng), randn(&[64, 5, 2], &mut rng));
    let mse = |x: &Tensor| {
        head.forward(&encoder.forward(x, &cond))
            .mse_loss(&sum(x), Reduction::Mean)
    };
    let test_before = mse(&x_test).double_value(&[]);
    let (first, last) = fit(&vs, 200, || mse(&x));
    let test_after = mse(&x_test).double_value(&[]);
    assert!(last < 0.1 * first, "encoder train MSE {first} -> {last}");
    assert!(
        test_after < 0.2 * test_before,
        "encoder held-out MSE {test_before} -> {test_after}"
    );
}
