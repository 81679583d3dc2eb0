//! Tests of `AgentConfig::validate`: every bad value is named, every
//! precondition of the networks and schedules is checked first.

use super::*;
use crate::chunk::ChunkDims;
use crate::critic::{CriticKind, TwinCritic, full_mask};
use crate::noise::NoiseSource;
use crate::policy::{DiffusionPolicy, NetKind};
use tch::{Device, Kind, Tensor, nn};

fn error_of(change: impl FnOnce(&mut AgentConfig)) -> String {
    let mut cfg = AgentConfig::default();
    change(&mut cfg);
    match cfg.validate() {
        Ok(()) => panic!("accepted: {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

type Widths = fn(&mut AgentConfig) -> &mut Vec<i64>;

/// A change to the default config and the error it must give.
type Case = (fn(&mut AgentConfig), &'static str);

const WIDTH_LISTS: [(&str, Widths); 7] = [
    ("critic.hidden", |c| &mut c.critic.hidden),
    ("critic.state_hidden", |c| &mut c.critic.state_hidden),
    ("diffusion.net.hidden", |c| &mut c.diffusion.net.hidden),
    ("consistency.net.hidden", |c| &mut c.consistency.net.hidden),
    ("critic.unet.down_dims", |c| &mut c.critic.unet.down_dims),
    ("diffusion.net.unet.down_dims", |c| {
        &mut c.diffusion.net.unet.down_dims
    }),
    ("consistency.net.unet.down_dims", |c| {
        &mut c.consistency.net.unet.down_dims
    }),
];

#[test]
fn widths_outside_one_to_the_ceiling_are_rejected_naming_the_key() {
    for (key, widths) in WIDTH_LISTS {
        for bad in [0, -4, 100_000_000_000] {
            assert_eq!(
                error_of(|c| *widths(c) = vec![64, bad]),
                format!(
                    "invalid agent config: {key}: every width must lie in 1..=65536, got {bad}"
                )
            );
        }
        // The ceiling itself is valid (and a multiple of n_groups = 8).
        let mut cfg = AgentConfig::default();
        *widths(&mut cfg) = vec![65536];
        assert!(cfg.validate().is_ok(), "{key}");
    }
}

#[test]
fn empty_hidden_lists_are_linear_networks_and_valid() {
    let mut cfg = AgentConfig::default();
    for (key, widths) in &WIDTH_LISTS[..4] {
        widths(&mut cfg).clear();
        assert!(cfg.validate().is_ok(), "{key}");
    }
}

#[test]
fn dimensions_the_networks_assert_on_are_rejected_first() {
    let cases: [Case; 12] = [
        (
            |c| {
                c.critic.kind = CriticKind::Unet;
                c.critic.state_dim = 0;
            },
            "critic.state_dim: must lie in 1..=65536, got 0",
        ),
        (
            |c| c.critic.state_dim = 1 << 40,
            "critic.state_dim: must lie in 1..=65536, got 1099511627776",
        ),
        (
            |c| c.diffusion.net.time_dim = 7,
            "diffusion.net.time_dim: must be even and lie in 4..=65536, got 7",
        ),
        (
            |c| c.consistency.net.time_dim = 1 << 20,
            "consistency.net.time_dim: must be even and lie in 4..=65536, got 1048576",
        ),
        (
            |c| c.critic.unet.time_embed_dim = 2,
            "critic.unet.time_embed_dim: must be even and lie in 4..=65536, got 2",
        ),
        (
            |c| c.diffusion.net.unet.kernel_size = 0,
            "diffusion.net.unet.kernel_size: must lie in 1..=65536, got 0",
        ),
        (
            |c| c.diffusion.net.unet.kernel_size = 1 << 33,
            "diffusion.net.unet.kernel_size: must lie in 1..=65536, got 8589934592",
        ),
        (
            |c| c.diffusion.net.unet.kernel_size = 4,
            "diffusion.net.unet: kernel_size must be odd and >= 1, got 4",
        ),
        (
            |c| c.consistency.net.unet.n_groups = -1,
            "consistency.net.unet.n_groups: must lie in 1..=65536, got -1",
        ),
        (
            |c| c.critic.unet.n_groups = 7,
            "critic.unet: every width of down_dims [64, 128, 256] must be a positive \
             multiple of n_groups = 7, got 64",
        ),
        (
            |c| c.reward_scale = -1.0,
            "reward_scale: must be a positive number, got -1",
        ),
        (
            |c| c.critic.unet.down_dims.clear(),
            "critic.unet: down_dims must name 1..=12 levels, got 0",
        ),
    ];
    for (change, want) in cases {
        assert_eq!(error_of(change), format!("invalid agent config: {want}"));
    }
}

/// The lower bounds validation allows are enough for the networks: the
/// smallest valid U-Net critic and U-Net / linear MLP policies build and
/// run.
#[test]
fn the_smallest_valid_networks_build_and_run() {
    let tiny = UnetConfig {
        down_dims: vec![1],
        kernel_size: 1,
        n_groups: 1,
        time_embed_dim: 4,
    };
    let mut cfg = AgentConfig {
        critic: CriticConfig {
            kind: CriticKind::Unet,
            hidden: vec![],
            state_hidden: vec![1],
            state_dim: 1,
            unet: tiny.clone(),
            ..CriticConfig::default()
        },
        ..AgentConfig::default()
    };
    cfg.diffusion.net = DenoiserConfig {
        net: NetKind::Unet,
        hidden: vec![],
        time_dim: 4,
        unet: tiny,
    };
    cfg.validate().expect("valid");
    let dims = ChunkDims {
        obs_dim: 1,
        act_dim: 1,
        horizon: 3,
        obs_horizon: 1,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let critic = TwinCritic::new(&(vs.root() / "critic"), dims, &cfg.critic);
    let obs = Tensor::zeros([2, 1], (Kind::Float, Device::Cpu));
    let chunk = Tensor::zeros([2, 3, 1], (Kind::Float, Device::Cpu));
    let (q1, _) = critic.forward(&obs, &chunk, &full_mask(2, 3, Device::Cpu));
    assert_eq!(q1.size(), vec![2]);
    let mut noise = NoiseSource::new(0, Device::Cpu);
    for net in [NetKind::Unet, NetKind::Mlp] {
        cfg.diffusion.net.net = net;
        let policy = DiffusionPolicy::new(&(vs.root() / "policy"), dims, &cfg.diffusion);
        assert_eq!(policy.sample(&obs, &mut noise).size(), vec![2, 3, 1]);
    }
}

#[test]
fn lr_min_above_a_learning_rate_is_rejected() {
    assert_eq!(
        error_of(|c| c.lr_min = 1.0),
        "invalid agent config: lr_min (1) must not exceed actor_lr (0.0003) and \
         critic_lr (0.0003)"
    );
    assert!(
        error_of(|c| {
            c.actor_lr = 1e-3;
            c.lr_min = 5e-4;
        })
        .contains("lr_min (0.0005) must not exceed")
    );
    let mut cfg = AgentConfig {
        lr_min: 3e-4,
        ..AgentConfig::default()
    };
    assert!(cfg.validate().is_ok(), "lr_min = lr: a constant rate");
    cfg.grad_clip = f64::INFINITY;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("grad_clip")
    );
}

#[test]
fn infinite_or_overflowing_schedule_settings_are_rejected() {
    let cases: [Case; 12] = [
        (
            |c| c.diffusion.beta_max = f64::INFINITY,
            "diffusion.beta_max: must be finite and greater than beta_min (0.1), got inf",
        ),
        (
            |c| c.diffusion.beta_min = f64::INFINITY,
            "diffusion.beta_min: must be a positive finite number, got inf",
        ),
        (
            |c| c.diffusion.beta_max = 500.0,
            "diffusion.beta_min/beta_max: with beta_min = 0.1, beta_max = 500 and 5 steps \
             the VP schedule's sqrt_recip_alphas_cumprod[2] = inf is not a finite float32",
        ),
        (
            |c| c.diffusion.steps = 0,
            "diffusion.steps: must lie in 1..=100000, got 0",
        ),
        (
            |c| c.consistency.sigma_max = f64::INFINITY,
            "consistency.sigma_max: must lie in [1e-18, 1e18] (it is squared in float32), \
             got inf",
        ),
        (
            |c| c.consistency.sigma_min = f64::INFINITY,
            "consistency.sigma_min: must lie in [1e-18, 1e18]",
        ),
        (
            |c| c.consistency.sigma_data = f64::INFINITY,
            "consistency.sigma_data: must lie in [1e-18, 1e18]",
        ),
        (
            |c| c.consistency.sigma_min = 100.0,
            "consistency.sigma_max: must be greater than sigma_min (100), got 80",
        ),
        (
            |c| c.consistency.rho = f64::INFINITY,
            "consistency.rho: must be a positive finite number, got inf",
        ),
        (
            |c| c.consistency.rho = 1e-3,
            "consistency.rho: with rho = 0.001 the Karras levels run from NaN to NaN \
             instead of sigma_max = 80 to sigma_min = 0.002",
        ),
        (
            |c| c.consistency.scales = 100_001,
            "consistency.scales: must lie in 2..=100000, got 100001",
        ),
        (
            |c| c.consistency.sample_steps = 41,
            "consistency.sample_steps: must lie in 1..=40, got 41",
        ),
    ];
    for (change, want) in cases {
        let err = error_of(change);
        assert!(
            err.starts_with(&format!("invalid agent config: {want}")),
            "{err}\nshould start with {want}"
        );
    }
    // rho so large that sigma^(1/rho) rounds to 1: every level is 1.
    let err = error_of(|c| c.consistency.rho = 1e300);
    assert!(
        err.starts_with("invalid agent config: consistency.rho: with rho = ")
            && err.contains("the Karras levels run from 1e0 to 1e0 instead"),
        "{err}"
    );
}
