//! End-to-end tests of `chunkql train` and `chunkql eval` on tiny networks:
//! a run and its files, exact resume after a kill, a kill during checkpoint
//! writes, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

fn chunkql() -> Command {
    Command::cargo_bin("chunkql").unwrap()
}

fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("chunkql")
}

/// A small pendulum dataset and a config for tiny, fast runs.
fn setup(dir: &Path, steps: u64, checkpoint_every: u64) -> PathBuf {
    let data = dir.join("pendulum.npz");
    if !data.exists() {
        chunkql()
            .args(["generate", "pendulum", "--episodes", "5", "--out"])
            .arg(&data)
            .assert()
            .success();
    }
    let config = dir.join(format!("tiny-{steps}-{checkpoint_every}.toml"));
    std::fs::write(
        &config,
        format!(
            "dataset = \"{}\"\nsteps = {steps}\nbatch_size = 32\nlog_every = 10\neval_every = 100\n\
             eval_episodes = 2\ncheckpoint_every = {checkpoint_every}\nthreads = 1\n\
             [agent.critic]\nhidden = [32, 32]\n[agent.diffusion.net]\nhidden = [32, 32]\n\
             [agent.consistency.net]\nhidden = [32, 32]\n",
            data.display()
        ),
    )
    .unwrap();
    config
}

/// `line.npz` in `dir`: 3 episodes of a synthetic walk with observation
/// width 2 and action width 1, which no environment has.
fn line_data(dir: &Path) -> PathBuf {
    let line = dir.join("line.npz");
    chunkql()
        .args(["generate", "line", "--episodes", "3", "--out"])
        .arg(&line)
        .assert()
        .success();
    line
}

/// `chunkql train --config CONFIG --out RUN`, which must succeed.
fn train_into(config: &Path, run: &Path) {
    chunkql()
        .args(["train", "--config"])
        .arg(config)
        .arg("--out")
        .arg(run)
        .assert()
        .success();
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("steps_per_second");
            v
        })
        .collect()
}

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
        .stdout(predicate::str::contains("normalised score"));
    for file in [
        "config.toml",
        "metrics.jsonl",
        "eval.jsonl",
        "checkpoint.safetensors",
        "curves.png",
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
    // With the run's episode count and seed, eval repeats its last evaluation.
    let last = lines(&run.join("eval.jsonl")).pop().unwrap();
    let again = chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--episodes", "2"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let again = String::from_utf8(again).unwrap();
    let mean_return = format!("return {:.2} [", last["mean_return"].as_f64().unwrap());
    assert!(again.contains(&mean_return), "{again} vs {last}");
    chunkql()
        .arg("eval")
        .arg(run.join("checkpoint.safetensors"))
        .args(["--episodes", "1", "--execute", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pendulum: 1 episode, return"))
        .stdout(predicate::str::contains("(n = 1, no interval)"));
    // The folder already holds a run.
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "already holds a run; continue it with --resume",
        ));
}

/// env = none: data of widths no environment has trains, checkpoints, plots
/// and resumes without evaluation, and `eval` asks for an environment.
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
        .stderr(predicate::str::contains(
            "env = none: no evaluation; observation width 2, action width 1",
        ));
    for file in ["checkpoint.safetensors", "curves.png", "config.toml"] {
        assert!(run.join(file).exists(), "{file} missing");
    }
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
    let out = Process::new(python)
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
        .stderr(predicate::str::contains(
            "12 dropped: 12 end on a timeout row",
        ));
}

/// Starts a run in the background and kills it (SIGKILL) once `ready` holds.
fn kill_when(mut child: Child, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run did not get far enough"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn checkpoint_step(run: &Path) -> u64 {
    chunkql::agent::read_checkpoint_info(&run.join("checkpoint.safetensors"))
        .map(|i| i.step)
        .unwrap_or(0)
}

#[test]
fn a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 600, 50);
    let whole = dir.path().join("whole");
    train_into(&config, &whole);

    let killed = dir.path().join("killed");
    let child = Process::new(binary())
        .args(["train", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&killed)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_when(child, || checkpoint_step(&killed) >= 100);
    let at = checkpoint_step(&killed);
    assert!(at < 600, "killed before the end (checkpoint at {at})");
    chunkql()
        .args(["train", "--resume"])
        .arg(&killed)
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "resuming {} at step {at} of 600",
            killed.display()
        )));

    assert_eq!(
        lines(&killed.join("metrics.jsonl")),
        lines(&whole.join("metrics.jsonl"))
    );
    assert_eq!(
        lines(&killed.join("eval.jsonl")),
        lines(&whole.join("eval.jsonl"))
    );

    // Resuming a finished run trains nothing, says so, and keeps its summary.
    let summary = std::fs::read(whole.join("summary.json")).unwrap();
    chunkql()
        .args(["train", "--resume"])
        .arg(&whole)
        .assert()
        .success()
        .stdout(predicate::str::contains("600 steps, already complete"))
        .stderr(predicate::str::contains("is complete (600 of 600 steps)"));
    assert_eq!(std::fs::read(whole.join("summary.json")).unwrap(), summary);
}

#[test]
fn a_kill_during_checkpoint_writes_leaves_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 100_000, 1);
    let run = dir.path().join("run");
    let child = Process::new(binary())
        .args(["train", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A checkpoint every update: most of the time is spent writing one.
    kill_when(child, || checkpoint_step(&run) >= 30);
    chunkql()
        .arg("eval")
        .arg(&run)
        .args(["--episodes", "1"])
        .assert()
        .success();
}

#[test]
fn bad_input_is_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let line = line_data(dir.path());
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "stepz = 3\n").unwrap();
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, "not a checkpoint").unwrap();
    let out = dir.path().join("out");
    // Every case names --out inside the temporary folder, so that a case that
    // wrongly succeeds cannot write into the working directory.
    let c = config.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "train".into(),
                "--config".into(),
                c.clone(),
                "--env".into(),
                "mars".into(),
            ],
            "error: invalid config: unknown environment `mars`",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                c.clone(),
                "--agent".into(),
                "sac".into(),
            ],
            "error: unknown agent `sac` (known: dql, cpql)",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                c.clone(),
                "--dataset".into(),
                line.display().to_string(),
                "--out".into(),
                out.display().to_string(),
            ],
            "has observation width 2 and action width 1, but env pendulum has 3 and 1",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                bad_toml.display().to_string(),
            ],
            "bad.toml: line 1, column 1, key `stepz`: unknown field `stepz`",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                c.clone(),
                "--set".into(),
                "agent.etta=1".into(),
            ],
            "error: --set agent.etta=1: unknown key `agent.etta`",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                c.clone(),
                "--horizon".into(),
                "0".into(),
            ],
            "error: invalid config: horizon: chunk horizon H must be at least 1, got 0",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                c.clone(),
                "--set".into(),
                "threads=100000".into(),
                "--out".into(),
                out.display().to_string(),
            ],
            "error: invalid config: threads must lie in 0..=1024 (0: all cores), got 100000",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                c.clone(),
                "--set".into(),
                "agent.tau=2".into(),
            ],
            "error: invalid config: agent.tau: must lie in (0, 1], got 2",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                c.clone(),
                "--device".into(),
                "tpu".into(),
            ],
            "error: invalid config: device: unknown device `tpu`",
        ),
        (
            vec![
                "eval".into(),
                dir.path().join("missing.safetensors").display().to_string(),
            ],
            "missing.safetensors: cannot read checkpoint",
        ),
        (
            vec!["eval".into(), garbage.display().to_string()],
            "garbage.safetensors: not a valid chunkql checkpoint",
        ),
        (
            vec![
                "train".into(),
                "--resume".into(),
                dir.path().join("nothing").display().to_string(),
            ],
            "nothing: no such run folder",
        ),
        (
            vec![
                "generate".into(),
                "line".into(),
                "--level".into(),
                "expert".into(),
                "--out".into(),
                out.display().to_string(),
            ],
            "--level is for environments",
        ),
        (
            vec![
                "generate".into(),
                "pendulum".into(),
                "--max-steps".into(),
                "10".into(),
                "--out".into(),
                out.display().to_string(),
            ],
            "--max-steps is for `line`",
        ),
        (
            vec![
                "reference".into(),
                "pendulum".into(),
                "--episodes".into(),
                "0".into(),
            ],
            "--episodes must lie in 1..=100000, got 0",
        ),
        (
            vec![
                "reference".into(),
                "pendulum".into(),
                "--episodes".into(),
                "100001".into(),
            ],
            "--episodes must lie in 1..=100000, got 100001",
        ),
        (
            vec![
                "dataset".into(),
                "chunks".into(),
                line.display().to_string(),
                "--horizon".into(),
                "2".into(),
                "--out".into(),
                line.display().to_string(),
            ],
            "is the step data being read",
        ),
    ];
    for (mut args, message) in cases {
        if args[0] == "train"
            && !args.contains(&"--out".to_string())
            && !args.contains(&"--resume".to_string())
        {
            args.extend(["--out".to_string(), out.display().to_string()]);
        }
        let output = chunkql()
            .args(&args)
            .assert()
            .failure()
            .code(1)
            .get_output()
            .clone();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
    }
    assert!(!out.exists(), "nothing is written for a bad run");
    // A seed the config file could not hold is a usage error of the option.
    chunkql()
        .args(["train", "--seed", "9223372036854775808", "--print-config"])
        .assert()
        .failure()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid value '9223372036854775808' for '--seed <SEED>'",
        ));
}

/// A resume continues the run its checkpoint was saved from: `config.toml`
/// edited in what changes the numbers is refused with the keys named (a new
/// H used to crash inside libtorch, a new agent section to be ignored);
/// more steps are fine where the learning-rate schedule has them, fewer
/// than the checkpoint's are refused.
#[test]
fn a_resume_refuses_an_edited_config_and_accepts_more_steps() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let run = dir.path().join("run");
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--set", "agent.lr_decay_steps=20", "--out"])
        .arg(&run)
        .assert()
        .success();
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for (from, to, named) in [
        ("horizon = 4", "horizon = 8", "horizon (4, 8)"),
        ("gamma = 0.99", "gamma = 0.9", "gamma (0.99, 0.9)"),
        (
            "algorithm = \"dql\"",
            "algorithm = \"cpql\"",
            "algorithm (\"dql\", \"cpql\")",
        ),
    ] {
        assert!(saved.contains(from), "{from} not in {saved}");
        std::fs::write(run.join("config.toml"), saved.replace(from, to)).unwrap();
        let output = chunkql()
            .args(["train", "--resume"])
            .arg(&run)
            .assert()
            .failure()
            .code(1)
            .get_output()
            .clone();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains(named) && stderr.contains("only steps"),
            "{stderr}"
        );
    }
    let resume_with_steps = |steps: u64| {
        std::fs::write(
            run.join("config.toml"),
            saved.replace("\nsteps = 10\n", &format!("\nsteps = {steps}\n")),
        )
        .unwrap();
        chunkql().args(["train", "--resume"]).arg(&run).assert()
    };
    resume_with_steps(5)
        .failure()
        .stderr(predicate::str::contains(
            "says steps = 5, but its checkpoint is at update 10: a run's steps can only grow",
        ));
    // Past lr_decay_steps = 20 (lr_min = 0) the learning rate is 0.
    resume_with_steps(30)
        .failure()
        .stderr(predicate::str::contains(
            "steps = 30 runs past agent.lr_decay_steps = 20 with agent.lr_min = 0",
        ));
    resume_with_steps(20)
        .success()
        .stdout(predicate::str::contains("20 steps"));
    chunkql()
        .args(["train", "--resume"])
        .arg(run.join("checkpoint.safetensors"))
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "checkpoint.safetensors is a file: --resume takes the run folder (",
        ));
}

/// A run killed before its first checkpoint resumes by starting again from
/// its config, and ends as the uninterrupted run does.
#[test]
fn a_run_without_a_checkpoint_resumes_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 20, 10);
    let run = dir.path().join("run");
    train_into(&config, &run);
    let metrics = lines(&run.join("metrics.jsonl"));
    let evals = lines(&run.join("eval.jsonl"));
    std::fs::remove_file(run.join("checkpoint.safetensors")).unwrap();
    chunkql()
        .args(["train", "--resume"])
        .arg(&run)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "has no checkpoint yet (the run stopped before update 10): starting it again",
        ));
    assert_eq!(lines(&run.join("metrics.jsonl")), metrics);
    assert_eq!(lines(&run.join("eval.jsonl")), evals);
}

/// Generated default data is named by its size, and a default file that
/// holds another number of episodes than the config asks for is refused.
#[test]
fn default_data_of_the_wrong_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 5, 5);
    let tiny = [
        "--set",
        "dataset=\"\"",
        "--set",
        "dataset_episodes=2",
        "--out",
    ];
    chunkql()
        .current_dir(dir.path())
        .args(["train", "--config"])
        .arg(&config)
        .args(tiny)
        .arg("run")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "generating data/pendulum-medium-2ep.npz (2 episodes",
        ));
    chunkql()
        .current_dir(dir.path())
        .args(["generate", "pendulum", "--episodes", "3", "--out"])
        .arg("data/pendulum-medium-2ep.npz")
        .assert()
        .success();
    chunkql()
        .current_dir(dir.path())
        .args(["train", "--config"])
        .arg(&config)
        .args(tiny)
        .arg("run2")
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "data/pendulum-medium-2ep.npz holds 3 episodes, but the config asks for \
             generated data of 2 (dataset_episodes)",
        ));
}
