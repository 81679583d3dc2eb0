//! End-to-end tests of `chunkql train --resume`: exact continuation after a
//! SIGKILL, a kill during checkpoint writes, refused config edits, and a run
//! killed before its first checkpoint.

mod common;

use std::path::Path;
use std::process::{Child, Command as Process};
use std::time::{Duration, Instant};

use common::{Stderr, binary, chunkql, lines, setup, train_into};
use predicates::prelude::*;

/// Waits until `ready` holds for the run `child`, which must still be running.
/// `chunkql train --resume FOLDER`, run to its end.
fn resume(folder: impl AsRef<Path>) -> assert_cmd::assert::Assert {
    chunkql()
        .args(["train", "--resume"])
        .arg(folder.as_ref())
        .assert()
}

fn wait_until(child: &mut Child, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be stopped"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run did not get far enough"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The run folders `run` and `whole` hold the same metrics (timings
/// aside) and evaluation rows.
fn assert_same_logs(run: &Path, whole: &Path) {
    for log in ["metrics.jsonl", "eval.jsonl"] {
        assert_eq!(lines(&run.join(log)), lines(&whole.join(log)), "{log}");
    }
}

/// `chunkql train --config CONFIG EXTRA --out RUN` in the background (stderr
/// captured), returned once its first metrics row is written.
fn started_run(config: &Path, run: &Path, extra: &[&str]) -> Child {
    let mut child = Process::new(binary())
        .args(["train", "--config"])
        .arg(config)
        .args(extra)
        .arg("--out")
        .arg(run)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = run.join("metrics.jsonl");
    wait_until(&mut child, || {
        std::fs::metadata(&metrics).is_ok_and(|m| m.len() > 0)
    });
    child
}

/// Sends SIGINT (what Ctrl-C sends) to `child`.
fn interrupt(child: &Child) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

/// Kills (SIGKILL) the run `child` once `ready` holds.
fn kill_when(mut child: Child, ready: impl Fn() -> bool) {
    wait_until(&mut child, ready);
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
    // What a writer killed mid-checkpoint leaves (no process has a pid past
    // the kernel's limit of 2^22): the resume removes it.
    std::fs::write(
        killed.join(".checkpoint.safetensors.tmp-999999999"),
        b"torn",
    )
    .unwrap();
    resume(&killed)
        .success()
        .stdout(predicate::str::contains(format!(
            "600 steps, resumed at {at}, "
        )))
        .stderr(predicate::str::contains(format!(
            "resuming {} at step {at} of 600",
            killed.display()
        )))
        .stderr(predicate::str::contains("half-written temporary file(s)"));
    let leftovers: Vec<_> = std::fs::read_dir(&killed)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(killed.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["first_step"], at, "{summary}");
    assert!(
        summary["steps_per_second"].as_f64().unwrap() > 0.0,
        "{summary}"
    );

    assert_same_logs(&killed, &whole);

    // Resuming a finished run trains nothing, says so, and keeps its summary.
    let summary = std::fs::read(whole.join("summary.json")).unwrap();
    resume(&whole)
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
        let output = resume(&run).failure().code(1).get_output().clone();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains(named) && stderr.contains("only steps"),
            "{stderr}"
        );
    }
    // The run is complete: a new final-evaluation setting would contradict
    // its files, so it is refused with the command that evaluates so.
    assert!(saved.contains("\nexecute = 0\n"), "{saved}");
    std::fs::write(
        run.join("config.toml"),
        saved.replace("\nexecute = 0\n", "\nexecute = 2\n"),
    )
    .unwrap();
    resume(&run)
        .failure()
        .stderr(predicate::str::contains(
            "summary.json records its final evaluation; ",
        ))
        .stderr(predicate::str::contains(
            "changes its settings in execute (0, 2) (saved, now): `chunkql eval ",
        ));
    let resume_with = |steps: u64, dataset: &Path| {
        let data = dir.path().join("pendulum.npz");
        let edited = saved
            .replace("\nsteps = 10\n", &format!("\nsteps = {steps}\n"))
            .replace(&data.display().to_string(), &dataset.display().to_string());
        std::fs::write(run.join("config.toml"), edited).unwrap();
        resume(&run)
    };
    let resume_with_steps = |steps: u64| resume_with(steps, &dir.path().join("pendulum.npz"));
    // Other data under the saved path's name is refused by its fingerprint;
    // the same data moved elsewhere is fine (below).
    let other = dir.path().join("other.npz");
    chunkql()
        .args([
            "generate",
            "pendulum",
            "--episodes",
            "5",
            "--seed",
            "1",
            "--out",
        ])
        .arg(&other)
        .assert()
        .success();
    resume_with(20, &other)
        .failure()
        .stderr(predicate::str::contains(
            "other.npz is not the data the run started on (its fingerprint is",
        ));
    resume_with_steps(5)
        .failure()
        .stderr(predicate::str::contains(
            "says steps = 5, but its checkpoint is at update 10: steps must be at least 10",
        ));
    // Past lr_decay_steps = 20 (lr_min = 0) the learning rate is 0.
    resume_with_steps(30)
        .failure()
        .stderr(predicate::str::contains(
            "steps = 30 runs past this run's learning-rate decay (agent.lr_decay_steps = 20, \
             agent.lr_min = 0): its learning rates are 0 after the first 20 updates",
        ));
    // An edit of a setting that may change, to a value no run may have, is
    // refused naming the run's config file.
    let no_log: Vec<&str> = saved
        .lines()
        .map(|line| match line.starts_with("log_every = ") {
            true => "log_every = 0",
            false => line,
        })
        .collect();
    assert!(no_log.contains(&"log_every = 0"), "{saved}");
    std::fs::write(run.join("config.toml"), no_log.join("\n")).unwrap();
    resume(&run).failure().stderr(predicate::str::contains(
        "config.toml: invalid config: log_every must be at least 1",
    ));
    let moved = dir.path().join("moved").join("pendulum.npz");
    std::fs::create_dir(moved.parent().unwrap()).unwrap();
    std::fs::rename(dir.path().join("pendulum.npz"), &moved).unwrap();
    resume_with(20, &moved)
        .success()
        .stdout(predicate::str::contains("20 steps"));
    resume(run.join("checkpoint.safetensors"))
        .failure()
        .stderr(predicate::str::contains(
            "checkpoint.safetensors is a file: --resume takes the run folder (",
        ));
}

/// A refused edit is a value with the keys: the library caller gets each
/// change as `key (saved, now)`, and `steps` past the learning-rate decay
/// as the message's tail.
#[test]
fn a_refused_edit_names_its_keys_in_the_error() {
    use chunkql::train::{ResumeError, StopHandle, TrainConfig, TrainError, train};
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let cfg = TrainConfig::from_file(&config)
        .unwrap()
        .with_overrides(&["agent.lr_decay_steps=20".into()])
        .unwrap();
    let run = dir.path().join("run");
    let stop = StopHandle::new();
    train(cfg, &run, &stop).unwrap();
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("horizon = 4") && saved.contains("\nsteps = 10\n"));
    let edited = saved
        .replace("horizon = 4", "horizon = 8")
        .replace("\nsteps = 10\n", "\nsteps = 30\n");
    std::fs::write(run.join("config.toml"), edited).unwrap();
    let err = chunkql::train::resume(&run, &stop).unwrap_err();
    let message = err.to_string();
    match err {
        TrainError::Resume(ResumeError::ConfigEdited {
            config,
            checkpoint,
            changes,
            also,
        }) => {
            assert_eq!(config, run.join("config.toml"));
            assert_eq!(checkpoint, run.join("checkpoint.safetensors"));
            assert_eq!(changes, ["horizon (4, 8)"]);
            let also = also.expect("steps = 30 runs past the decay");
            assert!(also.starts_with("steps = 30 runs past"), "{also}");
            assert!(
                message.ends_with(&format!("may change. Also: {also}")),
                "{message}"
            );
        }
        err => panic!("{err}"),
    }
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
    resume(&run).success().stderr(predicate::str::contains(
        "has no checkpoint yet (the first is written at update 10): starting the run",
    ));
    assert_eq!(lines(&run.join("metrics.jsonl")), metrics);
    assert_eq!(lines(&run.join("eval.jsonl")), evals);
}

/// Ctrl-C (SIGINT) stops a run after the update in progress with a
/// checkpoint and exit code 130; resumed, it ends as the uninterrupted run.
/// The signal comes twice at once, as GNU `timeout` sends it (to the
/// process, then to its group): one request, not a second Ctrl-C.
#[test]
fn ctrl_c_stops_with_a_checkpoint_and_the_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // No periodic checkpoint before the end: the one found is the stop's.
    let config = setup(dir.path(), 600, 1000);
    let whole = dir.path().join("whole");
    train_into(&config, &whole);

    let run = dir.path().join("run");
    let child = started_run(&config, &run, &[]);
    interrupt(&child);
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("quitting at once"), "{stderr}");
    let at = checkpoint_step(&run);
    assert!(0 < at && at < 600, "stopped inside the run (at {at})");
    assert!(
        stderr.contains(&format!(
            "stopped at update {at} of 600 with a checkpoint: continue with \
             `chunkql train --resume {}`",
            run.display()
        )),
        "{stderr}"
    );
    resume(&run)
        .success()
        .stdout(predicate::str::contains("600 steps"));
    assert_same_logs(&run, &whole);
}

/// A run stopped between its log rows, then ended there (`steps` lowered to
/// its checkpoint's update, which the saved learning-rate decay allows),
/// writes the rows an uninterrupted run of that length ends with: its last
/// update's metrics and its final evaluation.
#[test]
fn a_stopped_run_ended_at_its_checkpoint_logs_its_last_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 600, 1000);
    let run = dir.path().join("run");
    let child = started_run(&config, &run, &[]);
    interrupt(&child);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    let at = checkpoint_step(&run);
    assert!(0 < at && at < 600, "stopped inside the run (at {at})");
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("lr_decay_steps = 600"), "{saved}");
    let edited = saved.replace("\nsteps = 600\n", &format!("\nsteps = {at}\n"));
    assert_ne!(edited, saved);
    std::fs::write(run.join("config.toml"), edited).unwrap();
    // As if the run had first completed at 1 update and then been extended:
    // that summary is not this run's, and is replaced.
    std::fs::write(
        run.join("summary.json"),
        r#"{"steps": 1, "final_eval": null}"#,
    )
    .unwrap();
    resume(&run)
        .success()
        .stderr(predicate::str::contains(format!(
            "is complete ({at} of {at} steps)"
        )));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], at, "{summary}");
    assert!(summary["final_eval"].is_object(), "{summary}");

    let whole = dir.path().join("whole");
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .args([
            "--steps",
            &at.to_string(),
            "--set",
            "agent.lr_decay_steps=600",
        ])
        .arg("--out")
        .arg(&whole)
        .assert()
        .success();
    let last = |file: &str| lines(&run.join(file)).pop().unwrap()["step"].clone();
    assert_eq!(
        (last("metrics.jsonl"), last("eval.jsonl")),
        (at.into(), at.into())
    );
    assert_same_logs(&run, &whole);
    // Resumed again: complete, nothing written twice.
    resume(&run).success();
    assert_eq!(
        lines(&run.join("eval.jsonl")),
        lines(&whole.join("eval.jsonl"))
    );
}

/// A second Ctrl-C (a second or more after the first) quits at once,
/// cleanly, while the first waits for a long evaluation: exit code 130, a
/// line that says so, no panic or crash from libtorch being torn down under
/// the training thread, and no checkpoint.
#[test]
fn a_second_ctrl_c_quits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 100_000, 100_000);
    let run = dir.path().join("run");
    // Networks of the default size and an evaluation of 20000 episodes
    // right after the first metrics row: the main thread is inside libtorch,
    // for far longer than the test waits, when the signals come.
    let sets = [
        "--set",
        "agent.critic.hidden=[256, 256, 256]",
        "--set",
        "agent.diffusion.net.hidden=[256, 256, 256]",
        "--set",
        "threads=2",
        "--set",
        "eval_every=10",
        "--set",
        "eval_episodes=20000",
    ];
    let mut child = started_run(&config, &run, &sets);
    let stderr = Stderr::of(&mut child);
    interrupt(&child);
    // Past the binary's 1 s in which a repeat is the same request, counted
    // from the first signal's handling, however late that came.
    stderr.wait_for(&mut child, "stopping once the work in progress ends");
    std::thread::sleep(Duration::from_millis(1200));
    interrupt(&child);
    let (code, stderr) = stderr.finish(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(
            "quitting at once, without a checkpoint: --resume continues from the last one \
             written"
        ),
        "{stderr}"
    );
    assert!(!run.join("checkpoint.safetensors").exists());
}
