//! Save -> load gives an agent that acts bit-identically for the same seed
//! and goes on training exactly as the original; bad files are clear errors.
//! Every tensor of an update lives on the agent's device.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use super::*;
use crate::agent::{AgentConfig, TargetKind};
use crate::agent::{AgentError, ChunkAgent, ChunkPolicy, Cpql, DiffusionQl, read_checkpoint_info};
use crate::chunk::ChunkBatch;
use crate::critic::CriticKind;
use crate::noise::NoiseSource;
use crate::policy::{ConsistencyPolicy, DiffusionPolicy, NetKind};

fn setup<P: ChunkPolicy>(net: NetKind) -> (ChunkAgent<P>, ChunkIndex) {
    setup_on(net, Device::Cpu)
}

fn setup_on<P: ChunkPolicy>(net: NetKind, device: Device) -> (ChunkAgent<P>, ChunkIndex) {
    one_thread();
    let (index, normalizer) = line_walk(20, 4, 2);
    let mut cfg = small_config(32);
    cfg.diffusion.net.net = net;
    cfg.consistency.net.net = net;
    cfg.best_of_n = 3;
    let agent = ChunkAgent::<P>::new(cfg, index.dims(), normalizer, device, 11).unwrap();
    (agent, index)
}

fn batches(index: &ChunkIndex, n: usize, seed: u64) -> Vec<ChunkBatch> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| index.sample(16, &mut rng)).collect()
}

fn round_trip<P: ChunkPolicy>(net: NetKind) {
    let (mut agent, index) = setup::<P>(net);
    for batch in batches(&index, 3, 0) {
        agent.update(&batch);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.safetensors");
    agent
        .save(&path, serde_json::json!({"note": "extra state"}))
        .unwrap();
    let mut loaded = ChunkAgent::<P>::load(&path, Device::Cpu).unwrap();

    let info = read_checkpoint_info(&path).unwrap();
    assert_eq!((info.step, info.algorithm), (3, P::ALGORITHM));
    assert_eq!(info.extra["note"], "extra state");
    assert_eq!(loaded.step(), 3);

    let obs = index
        .sample(5, &mut ChaCha8Rng::seed_from_u64(9))
        .observations;
    let obs = Tensor::from_slice(&obs).view([5, 2, 2]);
    let act = |a: &ChunkAgent<P>| a.act(&obs, &mut NoiseSource::new(42, Device::Cpu));
    assert!(
        act(&agent).equal(&act(&loaded)),
        "same seed, same chunks, bit for bit"
    );
    assert!(
        !act(&agent).equal(&agent.act(&obs, &mut NoiseSource::new(43, Device::Cpu))),
        "the seed matters"
    );
    let chunks = act(&agent);
    assert!(
        agent
            .q_values(&obs, &chunks)
            .0
            .equal(&loaded.q_values(&obs, &chunks).0)
    );

    // Training goes on identically: same noise stream, Adam moments, EMA,
    // targets and learning rate.
    for batch in batches(&index, 3, 1) {
        assert_eq!(agent.update(&batch), loaded.update(&batch));
    }
    for ((_, name, a), (_, _, b)) in agent.variables().iter().zip(loaded.variables()) {
        assert!(a.equal(&b), "{name} differs after resumed training");
    }
}

#[test]
fn diffusion_ql_mlp_round_trip_is_exact() {
    round_trip::<DiffusionPolicy>(NetKind::Mlp);
}

#[test]
fn cpql_unet_round_trip_is_exact() {
    round_trip::<ConsistencyPolicy>(NetKind::Unet);
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let (agent, _) = setup::<DiffusionPolicy>(NetKind::Mlp);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dql.safetensors");
    agent.save(&path, serde_json::Value::Null).unwrap();
    let message = |r: Result<Cpql, AgentError>| r.err().expect("must fail").to_string();

    let err = message(Cpql::load(&path, Device::Cpu));
    assert!(
        err.ends_with("not a valid chunkql checkpoint: it holds a dql agent, not cpql"),
        "{err}"
    );

    let missing = dir.path().join("none.safetensors");
    let err = DiffusionQl::load(&missing, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("none.safetensors: cannot read checkpoint"),
        "{err}"
    );

    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = DiffusionQl::load(&truncated, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("truncated.safetensors: not a valid chunkql checkpoint"),
        "{err}"
    );

    let foreign = dir.path().join("foreign.safetensors");
    std::fs::write(&foreign, b"hello, not a checkpoint").unwrap();
    let err = DiffusionQl::load(&foreign, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("foreign.safetensors: not a valid chunkql checkpoint"),
        "{err}"
    );
}

/// On `test_device()`: both agents, each in the configurations whose code
/// paths differ (MLP and U-Net policy and critic, max-Q backup, the
/// one-step target), the whole-batch update and the update split over two
/// worker threads (what `chunkql train` runs on a CPU). On the CPU this
/// only runs the paths; `CHUNKQL_TEST_DEVICE=cuda` makes it a check.
#[test]
fn every_tensor_of_an_update_is_on_the_agent_device() {
    let device = test_device();
    type Variant = (&'static str, fn(&mut AgentConfig));
    let variants: [Variant; 4] = [
        ("mlp", |_| {}),
        ("unet policy and critic", |c| {
            c.diffusion.net.net = NetKind::Unet;
            c.consistency.net.net = NetKind::Unet;
            c.critic.kind = CriticKind::Unet;
        }),
        ("max-Q backup", |c| {
            c.max_q_backup = true;
            c.max_q_samples = 3;
        }),
        ("one-step target", |c| c.target = TargetKind::OneStep),
    ];
    for (name, change) in variants {
        every_tensor_on_the_device::<DiffusionPolicy>(device, name, change);
        every_tensor_on_the_device::<ConsistencyPolicy>(device, name, change);
    }
}

fn every_tensor_on_the_device<P: ChunkPolicy>(
    device: Device,
    name: &str,
    change: fn(&mut AgentConfig),
) {
    one_thread();
    let (index, normalizer) = line_walk(20, 4, 2);
    let mut cfg = small_config(32);
    cfg.best_of_n = 3;
    change(&mut cfg);
    let mut agent = ChunkAgent::<P>::new(cfg, index.dims(), normalizer, device, 11).unwrap();
    let what = format!("{} {name}", P::ALGORITHM);
    assert_eq!(agent.device(), device);
    let mut batch = index.empty_batch(8).with_one_step();
    index.sample_into(&mut batch, &mut ChaCha8Rng::seed_from_u64(0));
    for workers in [1, 2] {
        agent.set_workers(workers, 1).unwrap();
        let metrics = agent.update(&batch);
        assert!(
            metrics.critic_loss.is_finite() && metrics.actor_loss.is_finite(),
            "{what}: {metrics:?}"
        );
    }
    let b = agent.tensors(&batch);
    assert!(b.tensors().iter().all(|t| t.device() == device), "{what}");
    assert!(
        agent
            .variables()
            .iter()
            .all(|(_, _, t)| t.device() == device),
        "{what}"
    );
    assert!(
        agent
            .actor_opt
            .state()
            .iter()
            .chain(agent.critic_opt.state().iter())
            .all(|(_, t)| t.device() == device),
        "{what}"
    );
    let next = agent.next_chunks(&b);
    assert_eq!(next.device(), device, "{what}");
    assert_eq!(agent.critic_target(&b, &next).device(), device, "{what}");
    let history = Tensor::zeros([2, 2, 2], (tch::Kind::Float, Device::Cpu));
    let chunks = agent.act(&history, &mut NoiseSource::new(0, device));
    assert_eq!(chunks.device(), device, "{what}");
}

/// A checkpoint whose stored shapes or normaliser were edited into
/// nonsense is refused with the file's name, before any network is built.
#[test]
fn checkpoints_with_impossible_dims_or_normalisers_are_refused() {
    let (agent, _) = setup::<DiffusionPolicy>(NetKind::Mlp);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.safetensors");
    agent.save(&path, serde_json::Value::Null).unwrap();
    type Case = (fn(&mut serde_json::Value), &'static str);
    let cases: [Case; 3] = [
        (
            |info| info["dims"]["horizon"] = 0.into(),
            "dims: horizon must lie in 1..=4096, got 0",
        ),
        (
            |info| info["normalizer"]["obs_std"][0] = 0.0.into(),
            "normalizer obs_std[0] = 0 is below 0.001",
        ),
        (
            |info| {
                let low = info["normalizer"]["action_low"][0].clone();
                info["normalizer"]["action_high"][0] = low;
            },
            "normalizer action range 0 is empty",
        ),
    ];
    for (k, (edit, want)) in cases.into_iter().enumerate() {
        let edited = dir.path().join(format!("edited{k}.safetensors"));
        edit_info(&path, &edited, edit);
        let err = DiffusionQl::load(&edited, Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!(
                "edited{k}.safetensors: not a valid chunkql checkpoint"
            )) && err.contains(want),
            "{err}"
        );
    }
    edit_info(&path, &dir.path().join("same.safetensors"), |_| {});
    assert!(DiffusionQl::load(&dir.path().join("same.safetensors"), Device::Cpu).is_ok());
}

/// Copies the checkpoint `from` to `to` with `edit` applied to the JSON
/// info stored in its safetensors header (the tensors are untouched).
fn edit_info(from: &Path, to: &Path, edit: fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(from).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let metadata = header["__metadata__"].as_object_mut().unwrap();
    let text = metadata.values_mut().next().unwrap();
    let mut info: serde_json::Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
    edit(&mut info);
    *text = info.to_string().into();
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[8 + header_len..]);
    std::fs::write(to, out).unwrap();
}

/// Metrics report the learning rate each update used: the configured rate
/// first, then the cosine decay, and above `lr_min` up to the last update.
/// By hand, lr_min = 0 and T = 4: update k uses lr (1 + cos(pi k / 4)) / 2,
/// i.e. lr times 1, (2 + sqrt 2) / 4 = 0.853553, 1/2, (2 - sqrt 2) / 4 = 0.146447.
#[test]
fn metrics_report_the_learning_rate_of_each_update() {
    use std::f64::consts::SQRT_2;
    let (mut agent, index) = setup::<DiffusionPolicy>(NetKind::Mlp);
    agent.config.lr_decay_steps = 4;
    assert_eq!(agent.config.lr_min, 0.0);
    let lr = agent.config.actor_lr;
    let used: Vec<f64> = batches(&index, 4, 1)
        .iter()
        .map(|b| agent.update(b).actor_lr)
        .collect();
    let expected = [1.0, (2.0 + SQRT_2) / 4.0, 0.5, (2.0 - SQRT_2) / 4.0].map(|f| lr * f);
    for (k, (u, e)) in used.iter().zip(expected).enumerate() {
        assert!(
            (u - e).abs() <= 1e-12 * lr,
            "update {k}: {used:?} vs {expected:?}"
        );
    }
    assert_eq!(used[0], lr);
    assert!(used[3] > 0.0, "the last update still trains: {used:?}");
}
