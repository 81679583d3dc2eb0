//! End-to-end tests of run folders: the folder a run without --out claims
//! (one each when started at once, none left by a failure or a quit during
//! set-up), a killed writer's leftovers, and the default data.

mod common;

use common::{Stderr, binary, chunkql, setup};
use predicates::prelude::*;

/// Without --out a run claims runs/<env>-<agent>-h<H>-s<seed> in the
/// working directory, or the next numbered variant: runs started at once
/// get a folder each, and a run that fails before writing leaves none.
#[test]
fn runs_without_out_get_a_folder_each_even_when_started_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(binary())
                .current_dir(dir.path())
                .args(["train", "--config"])
                .arg(&config)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let runs = dir.path().join("runs");
    for name in ["pendulum-dql-h4-s0", "pendulum-dql-h4-s0-2"] {
        assert!(
            runs.join(name).join("checkpoint.safetensors").exists(),
            "{name}"
        );
    }
    chunkql()
        .current_dir(dir.path())
        .args(["train", "--config"])
        .arg(&config)
        .args(["--dataset", "missing.npz"])
        .assert()
        .failure();
    assert!(!runs.join("pendulum-dql-h4-s0-3").exists());
}

/// A second Ctrl-C while a run without --out is still setting up (here:
/// generating its default data, which it does not interrupt) quits at once
/// and takes the folder it claimed along: an empty folder nothing could
/// resume.
#[test]
fn quitting_at_once_during_set_up_leaves_no_claimed_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(binary())
        .current_dir(dir.path())
        .args([
            "train",
            "--set",
            "dataset_episodes=20000",
            "--set",
            "steps=10",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Stderr::of(&mut child);
    let claimed = dir.path().join("runs/pendulum-dql-h4-s0");
    let started = std::time::Instant::now();
    while !claimed.exists() {
        assert!(child.try_wait().unwrap().is_none(), "ended before claiming");
        assert!(started.elapsed().as_secs() < 60, "no folder claimed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = i32::try_from(child.id()).unwrap();
    let interrupt = || {
        // SAFETY: a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    };
    interrupt();
    // The first signal handled (its time taken before this line is
    // printed), then more than the binary's 1 s in which a repeat counts as
    // the same request: a second Ctrl-C however slowly the first was seen.
    stderr.wait_for(&mut child, "stopping once the work in progress ends");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    interrupt();
    let (code, stderr) = stderr.finish(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("quitting at once"), "{stderr}");
    assert!(!claimed.exists(), "{stderr}");
}

/// A folder holding only what a kill during a first `config.toml` write
/// leaves (its temporary file) takes a new run, which removes the file.
#[test]
fn a_new_run_removes_a_killed_writer_s_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    // (no process has a pid past the kernel's limit of 2^22)
    std::fs::write(run.join(".config.toml.tmp-999999999"), "steps = ").unwrap();
    chunkql()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--set", "eval_every=0", "--out"])
        .arg(&run)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "removed 1 half-written temporary file(s) of a killed process",
        ));
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
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
    // The run saves where the data was generated, so that it resumes from
    // any folder; deleted, its error says how to make it again.
    let generated = dir.path().join("data/pendulum-medium-2ep.npz");
    let saved = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    assert!(
        saved.contains(&format!("dataset = \"{}\"", generated.display())),
        "{saved}"
    );
    std::fs::remove_file(&generated).unwrap();
    chunkql()
        .current_dir(std::env::temp_dir())
        .args(["train", "--resume"])
        .arg(dir.path().join("run"))
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "`chunkql generate pendulum --level medium --episodes 2 --out {}` writes again",
            generated.display()
        )));
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
