//! End-to-end tests of `chunkql train` and `chunkql eval` on tiny networks:
//! a run and its files, runs without an environment, checkpoints without a
//! config, a reused config. Run folders and default data are in
//! `tests/run_folders.rs`, what runs refuse in `tests/train_refusals.rs`,
//! resumes in `tests/resume.rs`.

mod common;

use common::{chunkql, line_data, lines, setup, train_into};
use predicates::prelude::*;

#[test]
fn a_run_writes_its_files_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 40, 20);
    let run = dir.path().join("run");
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--agent", "cpql", "--horizon", "2", "--out"])
        .arg(&run)
        .assert()
        .success()
        .stdout(predicate::str::contains("40 steps"))
        .stdout(predicate::str::contains("pendulum: 2 episodes, return"))
        .stdout(predicate::str::contains("normalised score"))
        .stdout(predicate::str::contains(format!(
            "pictures: {0}/curves.png (learning curves), {0}/rollouts.png (the final \
             evaluation's episodes)",
            run.display()
        )));
    for file in [
        "config.toml",
        "metrics.jsonl",
        "eval.jsonl",
        "checkpoint.safetensors",
        "curves.png",
        "rollouts.png",
        "summary.json",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        saved.contains("algorithm = \"cpql\"") && saved.contains("horizon = 2"),
        "{saved}"
    );
    assert!(
        saved.contains("lr_decay_steps = 40"),
        "the resolved config is saved"
    );
    assert_eq!(lines(&run.join("metrics.jsonl")).len(), 4);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    let kernels = summary["matrix_kernels"].as_str().unwrap();
    if tch::utils::has_mkl() {
        // The binary exports chunkql's answer to MKL (src/device/mkl.rs).
        assert!(kernels.starts_with("MKL kernels chosen by"), "{kernels}");
    }

    chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--episodes", "3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("(step 40): pendulum: 3 episodes"));
    // --plot draws the same episodes (the printed line is unchanged); a
    // picture that could not be written is refused before evaluating.
    let plain = chunkql().arg("eval").arg(&run).output().unwrap();
    let picture = dir.path().join("episodes.png");
    let plotted = chunkql()
        .arg("eval")
        .arg(&run)
        .arg("--plot")
        .arg(&picture)
        .output()
        .unwrap();
    assert!(plotted.status.success());
    assert_eq!(plotted.stdout, plain.stdout);
    let png = std::fs::read(&picture).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG file");
    // Temporal ensembling: a chunk at every step, said in the line; it
    // replaces --execute.
    chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--ensemble", "0.01", "--episodes", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "pendulum: 2 episodes (temporal ensembling, m = 0.01), return",
        ));
    // --execute 0 (H, the default) does not contradict it.
    chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--ensemble", "0", "--execute", "0", "--episodes", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("(temporal ensembling, m = 0)"));
    chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--ensemble", "0.01", "--execute", "2"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "--ensemble 0.01 asks for a chunk at every step: --execute must be 1, 0 or left out, \
             got 2",
        ));
    std::fs::create_dir(dir.path().join("folder.png")).unwrap();
    for (path, message) in [
        ("episodes.jpg", "the picture is a PNG file, name it *.png"),
        (
            "no-such-folder/episodes.png",
            "no-such-folder does not exist",
        ),
        (
            "folder.png",
            "folder.png: that is a folder; name the picture file",
        ),
    ] {
        chunkql()
            .arg("eval")
            .arg(&run)
            .arg("--plot")
            .arg(dir.path().join(path))
            .assert()
            .failure()
            .stderr(predicate::str::contains(message))
            .stdout("");
    }
    // With the run's episode count and seed, eval repeats its last
    // evaluation to the digit (--json prints every number in full).
    let last = lines(&run.join("eval.jsonl")).pop().unwrap();
    let again = chunkql()
        .arg("eval")
        .arg(&run)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let again: serde_json::Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(again["step"], 40);
    assert_eq!(again["report"]["episodes"].as_array().unwrap().len(), 2);
    assert_eq!(
        again["report"]["episode_return"]["mean"], last["mean_return"],
        "{again} vs {last}"
    );
    // The seed is a string (it exceeds 2^53, which JSON numbers keep only in
    // some tools): passed back as --seed, it plays the same episodes.
    let seed = again["seed"].as_str().expect("the seed as a string");
    let replayed = chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--json", "--seed", seed])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let replayed: serde_json::Value = serde_json::from_slice(&replayed).unwrap();
    assert_eq!(replayed["report"], again["report"]);
    chunkql()
        .arg("eval")
        .arg(run.join("checkpoint.safetensors"))
        .args(["--episodes", "1", "--execute", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pendulum: 1 episode, return"))
        .stdout(predicate::str::contains("(n = 1, no interval)"));
    // An --execute beyond the chunk is refused with H and the 0 alias named.
    chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--episodes", "1", "--execute", "9"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "--execute 9: at most the run's chunk length H = 2 (0 means H)",
        ));
    // The folder already holds a run; or its logs without its config: both
    // refused, the logs left alone.
    let train_again = |refusal: &str| {
        chunkql()
            .args(["train", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&run)
            .assert()
            .failure()
            .stderr(predicate::str::contains(refusal));
    };
    train_again("already holds a run; continue it with --resume");
    std::fs::remove_file(run.join("config.toml")).unwrap();
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    train_again("of an earlier run (without its config.toml");
    assert_eq!(std::fs::read(run.join("metrics.jsonl")).unwrap(), metrics);
}

/// env = none: data of widths no environment has trains, checkpoints, plots
/// and resumes without evaluation, and `eval` asks for an environment.
/// `ensemble` in a run's config: its evaluations ensemble, and `eval`
/// replays that unless told how to execute.
#[test]
fn a_run_that_ensembles_evaluates_so_and_eval_repeats_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 20, 20);
    let run = dir.path().join("run");
    let ensembled = "pendulum: 2 episodes (temporal ensembling, m = 0.5), return";
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--set", "ensemble=0.5", "--out"])
        .arg(&run)
        .assert()
        .success()
        .stdout(predicate::str::contains(ensembled));
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("\nensemble = 0.5\n"), "{saved}");
    let last = lines(&run.join("eval.jsonl")).pop().unwrap();
    let replayed = chunkql()
        .arg("eval")
        .arg(&run)
        .arg("--json")
        .output()
        .unwrap();
    let replayed: serde_json::Value = serde_json::from_slice(&replayed.stdout).unwrap();
    assert_eq!(replayed["report"]["ensemble"], 0.5);
    assert_eq!(
        replayed["report"]["episode_return"]["mean"], last["mean_return"],
        "eval repeats the run's last evaluation"
    );
    chunkql()
        .arg("eval")
        .arg(&run)
        .assert()
        .success()
        .stdout(predicate::str::contains(ensembled));
    // --execute says how to execute: no ensembling.
    chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--execute", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pendulum: 2 episodes, return"));
    // An execute of more than one step is refused with it, naming both.
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--set", "ensemble=0.5", "--set", "execute=2", "--out"])
        .arg(dir.path().join("refused"))
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "ensemble asks for a chunk at every step: execute must be 0 or 1 with it, got 2",
        ));
}

#[test]
fn a_run_without_an_environment_trains_on_any_data_and_is_not_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 20, 10);
    let line = line_data(dir.path());
    let run = dir.path().join("run");
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--env", "none", "--dataset"])
        .arg(&line)
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .stdout(predicate::str::contains("20 steps"))
        .stdout(predicate::str::contains("not evaluated (env = none)"))
        .stdout(predicate::str::contains(format!(
            "pictures: {}/curves.png (learning curves)\n",
            run.display()
        )))
        .stderr(predicate::str::contains(
            "env = none: no evaluation; observation width 2, action width 1",
        ));
    for file in ["checkpoint.safetensors", "curves.png", "config.toml"] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    assert!(!run.join("rollouts.png").exists(), "no episodes to draw");
    assert_eq!(lines(&run.join("metrics.jsonl")).len(), 2);
    assert_eq!(std::fs::read_to_string(run.join("eval.jsonl")).unwrap(), "");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 20);
    assert!(summary["final_eval"].is_null(), "{summary}");
    chunkql()
        .arg("eval")
        .arg(&run)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "was trained without an environment (env = none); pass --env NAME",
        ));
    chunkql()
        .args(["train", "--resume"])
        .arg(&run)
        .assert()
        .success()
        .stdout(predicate::str::contains("already complete"));
    chunkql()
        .args(["train", "--env", "none", "--out"])
        .arg(dir.path().join("no-data"))
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "env = none trains on a given dataset (--dataset FILE)",
        ));
}

/// A D4RL-layout HDF5 file (as h5py writes it) of a task without a built-in
/// environment trains with env = none: the path users with their own data
/// take.
#[cfg(feature = "hdf5")]
#[test]
fn a_d4rl_hdf5_file_trains_without_an_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let file = dir.path().join("hopper-like.hdf5");
    let script = r#"
import sys
import numpy as np
import h5py
rng = np.random.default_rng(0)
n = 150
timeouts = np.zeros(n, bool)
timeouts[49::50] = True
with h5py.File(sys.argv[1], "w") as f:
    f["observations"] = rng.normal(size=(n, 11)).astype(np.float32)
    f["actions"] = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    f["rewards"] = rng.normal(size=n).astype(np.float32)
    f["terminals"] = np.zeros(n, bool)
    f["timeouts"] = timeouts
"#;
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("the venv python (scripts/setup.sh makes it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--env", "none", "--dataset"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("run"))
        .assert()
        .success()
        .stdout(predicate::str::contains("10 steps"))
        .stderr(predicate::str::contains(
            "observation width 11, action width 3",
        ))
        // 3 episodes of 50 steps, each ended by a timeout, no next
        // observations: the last H = 4 starts of each have no next state.
        .stderr(predicate::str::contains(
            "12 chunk starts dropped: 12 end on a timeout row",
        ));
}

/// A checkpoint without a config (saved by the library, or by a version
/// before configs were saved in it) is evaluated with the seed it records,
/// the run's: the same episodes as the run folder's own evaluation.
#[test]
fn a_checkpoint_without_a_config_is_evaluated_with_its_own_seed() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let run = dir.path().join("run");
    chunkql()
        .args(["train", "--seed", "3", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .assert()
        .success();
    let bare = dir.path().join("bare.safetensors");
    let agent =
        chunkql::agent::AnyAgent::load(&run.join("checkpoint.safetensors"), tch::Device::Cpu)
            .unwrap();
    agent.save(&bare, serde_json::Value::Null).unwrap();
    let json = |args: &[&std::ffi::OsStr]| -> serde_json::Value {
        let out = chunkql()
            .arg("eval")
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let of_run = json(&[run.as_os_str()]);
    let of_bare = json(&[
        bare.as_os_str(),
        "--env".as_ref(),
        "pendulum".as_ref(),
        "--episodes".as_ref(),
        "2".as_ref(),
    ]);
    assert_eq!(of_bare["seed"], of_run["seed"]);
    assert_eq!(of_bare["report"], of_run["report"]);
}

/// A run's saved config.toml records the decay it resolved (its steps):
/// reused for a shorter run, the longer decay is said, not silently kept.
#[test]
fn reusing_a_saved_config_for_fewer_steps_notes_the_longer_decay() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let first = dir.path().join("first");
    train_into(&config, &first);
    chunkql()
        .args(["train", "--steps", "5", "--config"])
        .arg(first.join("config.toml"))
        .arg("--out")
        .arg(dir.path().join("second"))
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "note: agent.lr_decay_steps = 10 is longer than steps = 5",
        ));
}
