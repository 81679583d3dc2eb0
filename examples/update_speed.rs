//! Updates per second of chunkql's agents in issue 5's configurations, printed
//! in the same format as `bench/reference.py` (the same step in PyTorch) so
//! that `bench/side_by_side.sh` can put them next to each other.
//!
//! `cargo run --release --example update_speed -- a|b|c|loop [--seconds S] [--threads N] [--workers W] [--device D] [--batch B] [--default-malloc]`
//!
//! Like the `chunkql` binary, it keeps freed memory for the next update
//! (`chunkql::device::allocator`) unless `--default-malloc` is given, and
//! MKL picks its kernels by instruction set unless `CHUNKQL_MKL_VENDOR_CHECK=1`
//! (`chunkql::device::mkl`).
//! D: `cpu` (the default), `cuda` or `cuda:N`, as `chunkql train --device`;
//! each update reads its metrics back to the host, so a GPU step is timed
//! to its end.
//! W: slices per update (default: one per thread, as `chunkql train`; 1: the
//! whole batch on one thread with N intra-op threads).
//! B: chunks per batch (default 256, the issue's; docs/scaling.md varies it
//! on a GPU).
//!
//! (a) Diffusion-QL, MLP policy and twin 3x256 critics: obs 17, action 6,
//!     H 4, batch 256, T 5 (the default config);
//! (b) the same with H 16 and U-Net policy and critic at the default widths;
//! (c) CPQL with (a)'s shapes and the consistency-training loss (as
//!     bench/reference.py; the default loss is the reconstruction loss);
//! (loop) sampling + update of (a), the real training loop.

use std::io::Write;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use chunkql::agent::{AgentConfig, ChunkPolicy};
use chunkql::critic::CriticKind;
use chunkql::policy::{ConsistencyPolicy, DiffusionPolicy, NetKind};
use tch::Device;

#[path = "../benches/common/mod.rs"]
mod common;
use common::{ACT, BATCH, OBS, agent, index};

/// Times `step` in windows of `seconds / 5` after `warmup` calls; median
/// updates/s of the 5 windows.
fn time(mut step: impl FnMut(), seconds: f64, warmup: usize) -> f64 {
    for _ in 0..warmup {
        step();
    }
    let mut rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed().as_secs_f64() < seconds / 5.0 {
            step();
            n += 1;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rates[2]
}

/// How to time one configuration.
struct Timing {
    seconds: f64,
    workers: Option<usize>,
    device: Device,
    batch: usize,
}

fn run<P: ChunkPolicy>(horizon: usize, cfg: AgentConfig, with_sampling: bool, t: &Timing) -> f64 {
    let index = index(horizon);
    let mut agent = agent::<P>(&index, cfg, t.batch, t.workers, t.device);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut batch = index.sample(t.batch, &mut rng);
    time(
        || {
            if with_sampling {
                index.sample_into(&mut batch, &mut rng);
            }
            agent.update(&batch);
        },
        t.seconds,
        5,
    )
}

/// Floating-point operations of one Diffusion-QL update of `batch` chunks in
/// configuration (a), counted from the layer shapes (2 per multiply-add of
/// each Linear; backward = 2x forward, and 1x for a network whose weights
/// are frozen).
fn flops_a(batch: usize) -> f64 {
    let (h, a, o, t) = (4.0, ACT as f64, OBS as f64, 5.0);
    let linear = |i: f64, j: f64| 2.0 * i * j;
    let denoiser = linear(16.0, 32.0)
        + linear(32.0, 16.0)
        + linear(h * a + 16.0 + o, 256.0)
        + 2.0 * linear(256.0, 256.0)
        + linear(256.0, h * a);
    let critic = linear(o + h * a + h, 256.0) + 2.0 * linear(256.0, 256.0) + linear(256.0, 1.0);
    let twin = 2.0 * critic;
    let per_sample = t * denoiser + twin // target: EMA sampling + target critics
        + 3.0 * twin // critic step: forward + backward
        + 3.0 * denoiser // BC loss: forward + backward
        + 3.0 * t * denoiser // actor sample with gradients through T steps
        + 2.0 * twin; // critic on a_pi, backward to its input only
    per_sample * batch as f64
}

/// `, batch B` where the batch is not the 256 (as bench/reference.py).
fn batch_note(batch: usize) -> String {
    if batch == BATCH {
        String::new()
    } else {
        format!(", batch {batch}")
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = args.get(1).map(String::as_str).unwrap_or("a");
    // The word after `name`, and the same as a number.
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let flag = |name: &str| value(name).and_then(|v| v.parse::<f64>().ok());
    let threads = flag("--threads").unwrap_or(2.0) as i32;
    // As the chunkql binary does, unless measuring glibc's default behaviour.
    if !args.iter().any(|a| a == "--default-malloc") {
        chunkql::device::allocator::keep_freed_memory();
    }
    tch::set_num_threads(threads);
    let device_name = value("--device").unwrap_or("cpu");
    let device = match chunkql::train::parse_device(device_name) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("update_speed: {e}");
            std::process::exit(2);
        }
    };
    let timing = Timing {
        seconds: flag("--seconds").unwrap_or(10.0),
        workers: flag("--workers").map(|w| w as usize),
        device,
        batch: flag("--batch").map_or(BATCH, |b| b as usize).max(1),
    };
    let t = &timing;
    let rate = match config {
        "a" => run::<DiffusionPolicy>(4, AgentConfig::default(), false, t),
        "b" => {
            let mut cfg = AgentConfig::default();
            cfg.diffusion.net.net = NetKind::Unet;
            cfg.critic.kind = CriticKind::Unet;
            run::<DiffusionPolicy>(16, cfg, false, t)
        }
        "c" => run::<ConsistencyPolicy>(4, common::config_c(), false, t),
        "loop" => run::<DiffusionPolicy>(4, AgentConfig::default(), true, t),
        other => {
            eprintln!("unknown config `{other}` (a, b, c, loop)");
            std::process::exit(2);
        }
    };
    // writeln! rather than println!: a closed pipe (`| head -1`) is not a crash.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "chunkql {config}: {rate:.2} steps/s ({:.1} ms/step, median of 5 windows, {device_name}{}; {})",
        1000.0 / rate,
        batch_note(timing.batch),
        chunkql::device::mkl_dispatch()
    );
    if config == "a" {
        let flops = flops_a(timing.batch);
        let _ = writeln!(
            out,
            "chunkql a: {:.2} GFLOP per update, {:.1} GFLOP/s achieved, peak RSS {:.0} MiB",
            flops / 1e9,
            flops * rate / 1e9,
            peak_rss_mib()
        );
    }
}
