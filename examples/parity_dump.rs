//! Weights, inputs and outputs of chunkql's networks for a numeric parity
//! check against `bench/reference_nets.py` (`bench/parity.py` reads them).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/helper-target-4 cargo run --release --example parity_dump -- /work/parity-out [a b c]
//! .venv/bin/python bench/parity.py /work/parity-out [--config a b c]
//! ```
//!
//! Configurations as `examples/update_speed.rs` and `bench/reference_settings.py`
//! (obs 17, action 6, To 1): (a) Diffusion-QL, MLP policy, twin MLP critics,
//! H 4; (b) H 16, U-Net policy and U-Net critic; (c) CPQL with (a)'s shapes.
//! The seed-0 agent of `benches/common` is built on the CPU; its policy and
//! critic weights are copied into stand-alone networks of the same public
//! types and variable names (`Denoiser`, `DiffusionPolicy`,
//! `ConsistencyPolicy`, `TwinCritic`). Parameters whose every element is the
//! same (the LayerNorm / GroupNorm gains 1 and shifts 0 of a fresh agent) get
//! 0.1 N(0, 1) added, so that the check also sees a wrong mapping of them.
//!
//! Written to `<outdir>/<config>/`: `policy.safetensors` and
//! `critic.safetensors` (the weights used, chunkql's names), `io.safetensors`
//! (B = 8 rows, all float32):
//! - `obs [B, To*O]` standardised histories, `actions [B, H, A]` dataset
//!   chunks in [-1, 1], `mask [B, H]` the critic's mask (padded rows: tau < H);
//! - `q1, q2 [B]` both critics on (obs, actions, mask); `q1_sample, q2_sample
//!   [B]` on (obs, sample, all-ones mask);
//! - `sample [B, H, A]` the policy's `sample(obs)` and `sample_noise [K, B, H,
//!   A]` the K normal draws it made, in order (DDPM: K = T, CPQL: K = 1);
//! - DDPM: `t [B]` step index, `x [B, H, A]` = sqrt(abar_t) a + sqrt(1 -
//!   abar_t) eps, `eps [B, H, A]` the denoiser's prediction eps(x, t, obs);
//! - CPQL: `sigma [B]`, `x [B, H, A]` = sigma z, `denoised [B, H, A]` =
//!   `ConsistencyPolicy::denoise`, c_skip x + c_out F(c_in x, 250 ln sigma, obs).

use std::collections::HashMap;
use std::path::Path;

use chunkql::agent::{AgentConfig, ChunkPolicy};
use chunkql::chunk::{ChunkBatch, ChunkDims, ChunkIndex};
use chunkql::critic::{CriticKind, TwinCritic, full_mask};
use chunkql::noise::NoiseSource;
use chunkql::policy::karras_sigmas;
use chunkql::policy::{ConsistencyPolicy, Denoiser, DenoiserConfig, DiffusionPolicy, NetKind};
use tch::{Device, Kind, Tensor, nn};

#[allow(dead_code)]
#[path = "../benches/common/mod.rs"]
mod common;

/// Rows of the dumped batch.
const B: i64 = 8;
/// Karras levels (of 40) of the CPQL rows: sigma_max .. sigma_min.
const LEVELS: [usize; 8] = [0, 1, 5, 13, 19, 30, 38, 39];
/// DDPM step index of each row.
const STEPS: [i64; 8] = [0, 1, 2, 3, 4, 0, 2, 4];

type Named = Vec<(String, Tensor)>;
type Vars = HashMap<String, Tensor>;

/// Start rows (= positions: every row of the random data is a start): some
/// mid-episode, some near an episode's end (1000 steps), where tau < H.
fn positions(h: usize) -> Vec<usize> {
    let near_end = [1000 - h / 2, 999, 2001 - h, 2998];
    [123, 54_321, 77_777, 99_999]
        .into_iter()
        .chain(near_end)
        .collect()
}

/// `names` (space-separated) paired with `tensors`.
fn entries(names: &str, tensors: impl IntoIterator<Item = Tensor>) -> Named {
    names.split(' ').map(String::from).zip(tensors).collect()
}

/// The seed-0 agent's (P, `cfg`) policy and critic variables, and `batch`
/// as it feeds them: `obs [B, To*O]`, `actions [B, H, A]`, `mask [B, H]`.
type Parts = (Vars, Vars, Named);
fn agent_parts<P: ChunkPolicy>(index: &ChunkIndex, cfg: &AgentConfig, batch: &ChunkBatch) -> Parts {
    let agent = common::agent::<P>(index, cfg.clone(), common::BATCH, Some(1), Device::Cpu);
    let store = |name: &str| -> Vars {
        let vars = agent.variables().into_iter();
        vars.filter(|(s, _, _)| *s == name)
            .map(|(_, n, t)| (n, t))
            .collect()
    };
    let tb = agent.tensors(batch);
    let io = entries("obs actions mask", [tb.obs, tb.actions, tb.critic_mask]);
    (store("policy"), store("critic"), io)
}

/// Copies `from` into `to`'s variables (the names and shapes must agree),
/// then, with `perturb_seed` > 0, `perturb_constants`.
fn load(to: &nn::VarStore, from: &Vars, perturb_seed: u64) {
    let vars = to.variables();
    let (mut a, mut b): (Vec<_>, Vec<_>) = (vars.keys().collect(), from.keys().collect());
    a.sort();
    b.sort();
    assert_eq!(a, b, "variable names differ");
    chunkql::nn::no_grad(|| {
        for (name, var) in &vars {
            var.shallow_clone().copy_(&from[name]);
        }
    });
    if perturb_seed > 0 {
        perturb_constants(to, &mut NoiseSource::new(perturb_seed, Device::Cpu));
    }
}

/// Adds 0.1 N(0, 1) to every variable of `vs` whose elements are all equal.
fn perturb_constants(vs: &nn::VarStore, noise: &mut NoiseSource) {
    chunkql::nn::no_grad(|| {
        for (_, var) in named(vs) {
            if var.numel() > 1 && var.max().equal(&var.min()) {
                let _ = var
                    .shallow_clone()
                    .g_add_(&(noise.normal(&var.size()) * 0.1));
            }
        }
    });
}

/// A store's variables, sorted by name.
fn named(vs: &nn::VarStore) -> Named {
    let mut vars: Named = vs.variables().into_iter().collect();
    vars.sort_by(|x, y| x.0.cmp(&y.0));
    vars
}

fn write(path: &Path, tensors: &[(String, Tensor)]) {
    let contiguous: Named = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.detach().contiguous()))
        .collect();
    Tensor::write_safetensors(&contiguous, path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A [B] float32 tensor of `values`.
fn column(values: &[f64]) -> Tensor {
    Tensor::from_slice(values).to_kind(Kind::Float)
}

/// The agent's critic as a stand-alone `TwinCritic` (constants perturbed):
/// its store and Q1, Q2 on the batch and on the policy's samples.
fn critics(cfg: &AgentConfig, dims: ChunkDims, vars: &Vars, io: &mut Named) -> nn::VarStore {
    let vs = nn::VarStore::new(Device::Cpu);
    let critic = TwinCritic::new(&vs.root(), dims, &cfg.critic);
    load(&vs, vars, 2);
    let get = |k: &str| io.iter().find(|(n, _)| n == k).expect(k).1.shallow_clone();
    let (obs, actions, mask, sample) = (get("obs"), get("actions"), get("mask"), get("sample"));
    let (q1, q2) = critic.forward(&obs, &actions, &mask);
    let full = full_mask(B, dims.horizon as i64, Device::Cpu);
    let (s1, s2) = critic.forward(&obs, &sample, &full);
    io.extend(entries("q1 q2 q1_sample q2_sample", [q1, q2, s1, s2]));
    vs
}

/// A policy net's weights as a stand-alone `Denoiser` under "net".
fn denoiser(dims: ChunkDims, cfg: &DenoiserConfig, policy: &nn::VarStore) -> Denoiser {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Denoiser::new(&(vs.root() / "net"), dims, cfg);
    load(&vs, &policy.variables(), 0);
    net
}

/// `sample(obs)` of `policy` from a fresh seed-7 stream, and the `k` draws
/// of shape [B, H, A] it makes (replayed from a clone of the stream).
fn sampled<P: ChunkPolicy>(p: &P, obs: &Tensor, shape: &[i64], k: usize) -> (Tensor, Tensor) {
    let mut noise = NoiseSource::new(7, Device::Cpu);
    let mut replay = noise.clone();
    let sample = p.sample(obs, &mut noise);
    let draws: Vec<Tensor> = (0..k).map(|_| replay.normal(shape)).collect();
    (sample, Tensor::stack(&draws, 0))
}

/// DDPM outputs: `t`, `x`, `eps`, `sample`, `sample_noise` (module docs).
fn ddpm(cfg: &AgentConfig, dims: ChunkDims, vars: &Vars, policy_vs: &nn::VarStore, io: &mut Named) {
    let policy = DiffusionPolicy::new(&policy_vs.root(), dims, &cfg.diffusion);
    load(policy_vs, vars, 1);
    let net = denoiser(dims, &cfg.diffusion.net, policy_vs);
    let (obs, actions) = (io[0].1.shallow_clone(), io[1].1.shallow_clone());
    let s = policy.schedule();
    let t = Tensor::from_slice(&STEPS).to_kind(Kind::Float);
    let pick = |table: &[f64]| column(&STEPS.map(|i| table[i as usize])).view([B, 1, 1]);
    let eps = NoiseSource::new(3, Device::Cpu).normal(&actions.size());
    let x = &actions * pick(&s.sqrt_alphas_cumprod) + &eps * pick(&s.sqrt_one_minus_alphas_cumprod);
    let predicted = net.forward(&x, &t, &obs);
    let (sample, draws) = sampled(&policy, &obs, &actions.size(), s.betas.len());
    io.extend(entries(
        "t x eps sample sample_noise",
        [t, x, predicted, sample, draws],
    ));
}

/// CPQL outputs: `sigma`, `x`, `denoised`, `sample`, `sample_noise` (module
/// docs).
fn cpql(cfg: &AgentConfig, dims: ChunkDims, vars: &Vars, policy_vs: &nn::VarStore, io: &mut Named) {
    let c = &cfg.consistency;
    let policy = ConsistencyPolicy::new(&policy_vs.root(), dims, c);
    load(policy_vs, vars, 1);
    let (obs, shape) = (io[0].1.shallow_clone(), io[1].1.size());
    let (sample, draws) = sampled(&policy, &obs, &shape, 1);
    // Row i at Karras level LEVELS[i]: x = sigma z, and the library's D(x, sigma).
    let table = karras_sigmas(c.scales, c.sigma_min, c.sigma_max, c.rho);
    let sigma = column(&LEVELS.map(|level| table[level]));
    let z = NoiseSource::new(5, Device::Cpu).normal(&shape);
    let x = &z * sigma.view([B, 1, 1]);
    let denoised = tch::no_grad(|| policy.denoise(&x, &sigma, &obs));
    let names = "sigma x denoised sample sample_noise";
    io.extend(entries(names, [sigma, x, denoised, sample, draws]));
}

fn run(config: &str, out: &Path) {
    let mut cfg = if config == "c" {
        common::config_c()
    } else {
        AgentConfig::default()
    };
    let h = if config == "b" { 16 } else { 4 };
    if config == "b" {
        cfg.diffusion.net.net = NetKind::Unet;
        cfg.critic.kind = CriticKind::Unet;
    }
    let index = common::index(h);
    let dims = index.dims();
    let positions = positions(h);
    assert!(positions.iter().all(|&p| index.start_row(p) == p));
    let batch = index.gather(&positions);
    let (policy_vars, critic_vars, mut io) = match config {
        "c" => agent_parts::<ConsistencyPolicy>(&index, &cfg, &batch),
        "a" | "b" => agent_parts::<DiffusionPolicy>(&index, &cfg, &batch),
        other => panic!("unknown config `{other}` (a, b, c)"),
    };
    let short = io[2].1.lt(1.0).any_dim(1, false);
    let padded = short.sum(Kind::Int64).int64_value(&[]);
    assert!(padded >= 2, "{padded} padded rows");
    let policy_vs = nn::VarStore::new(Device::Cpu);
    if config == "c" {
        cpql(&cfg, dims, &policy_vars, &policy_vs, &mut io);
    } else {
        ddpm(&cfg, dims, &policy_vars, &policy_vs, &mut io);
    }
    let critic_vs = critics(&cfg, dims, &critic_vars, &mut io);
    let dir = out.join(config);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    write(&dir.join("policy.safetensors"), &named(&policy_vs));
    write(&dir.join("critic.safetensors"), &named(&critic_vs));
    write(&dir.join("io.safetensors"), &io);
    println!("parity_dump {config}: {padded} of {B} rows padded -> {dir:?}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: parity_dump <outdir> [a b c]");
        std::process::exit(2);
    };
    tch::set_num_threads(1);
    let configs: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        vec!["a", "b", "c"]
    };
    // Forward passes record graphs (the agent's Adam needs grad mode to be
    // built); `write` detaches.
    for config in configs {
        run(config, Path::new(out));
    }
}
