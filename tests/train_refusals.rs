//! End-to-end tests of what `chunkql train` and `chunkql eval` refuse or
//! stop on: bad input (one line, non-zero exit), busy folders, batches too
//! large for memory, divergence, and a stop before the first update.

mod common;

use common::{chunkql, line_data, setup};
use predicates::prelude::*;

/// A stop asked for while a run is set up ends it before its folder is
/// made.
#[test]
fn a_stop_before_the_first_update_writes_no_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let cfg = chunkql::train::TrainConfig::from_file(&config).unwrap();
    let stop = chunkql::train::StopHandle::new();
    stop.stop();
    let run = dir.path().join("run");
    let err = chunkql::train::train(cfg, &run, &stop).unwrap_err();
    assert!(
        matches!(err, chunkql::train::TrainError::StoppedBeforeStart),
        "{err}"
    );
    assert!(!run.exists());
}

/// Losses that leave the floats end the run with an error that says at
/// which update (here at once: rewards scaled by 1e38 overflow float32).
#[test]
fn a_diverging_run_stops_with_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 10, 10);
    let cfg = chunkql::train::TrainConfig::from_file(&config)
        .unwrap()
        .with_overrides(&["agent.reward_scale=1e38".into()])
        .unwrap();
    let stop = chunkql::train::StopHandle::new();
    let err = chunkql::train::train(cfg, &dir.path().join("run"), &stop).unwrap_err();
    assert!(
        matches!(err, chunkql::train::TrainError::Diverged { step: 1, .. }),
        "{err}"
    );
    // Rewards of 1e38 overflow the critic's loss first.
    assert!(
        err.to_string()
            .starts_with("training diverged at step 1 (critic_loss inf; critic loss inf, "),
        "{err}"
    );
}

/// A batch too large for memory is refused, once the data's widths are
/// known, before anything is allocated.
#[test]
fn a_batch_beyond_the_memory_limit_is_refused_naming_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let line = line_data(dir.path());
    // Line data (O 2, A 1), H 4096, To 4096: a transition is
    // 4 (2 * 4096 * 2 + 4096 * 1 + 4096 + 3) + 16 = 98332 bytes, and 65536
    // of them 6.0 GiB.
    chunkql()
        .args(["train", "--env", "none", "--dataset"])
        .arg(&line)
        .args(["--horizon", "4096", "--set", "obs_horizon=4096"])
        .args(["--set", "batch_size=65536", "--out"])
        .arg(dir.path().join("run"))
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::ends_with(
            "error: invalid config: a batch of 65536 chunks (H 4096, To 4096, observation 2, \
             action 1) would take 6.0 GiB, more than 4.0 GiB: lower batch_size, horizon or \
             obs_horizon\n",
        ));
    assert!(
        !dir.path()
            .join("run")
            .join("checkpoint.safetensors")
            .exists()
    );
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
                String::new(),
                "--out".into(),
                out.display().to_string(),
            ],
            "error: --dataset is empty: name a file, or leave the option out for the default data",
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
            vec!["eval".into(), bad_toml.display().to_string()],
            "(eval takes a run folder or its checkpoint.safetensors)",
        ),
        (
            vec!["eval".into(), dir.path().display().to_string()],
            "has no checkpoint.safetensors: it is not a run folder (it has no config.toml \
             either)",
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

/// A folder another process trains in, or one that holds no run, is not
/// trained into; `--print-config` names the data by its absolute path.
#[test]
fn busy_folders_and_non_runs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 5, 5);
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    let lock = chunkql::fsutil::lock_folder(&busy).unwrap();
    let train_into_busy = |refusal: &str| {
        chunkql()
            .args(["train", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&busy)
            .assert()
            .failure()
            .stderr(predicate::str::contains(refusal));
    };
    train_into_busy("busy is in use by another chunkql process");
    // A folder training now holds a run (config.toml): that it is in use
    // is what to say, not "continue it with --resume".
    std::fs::write(busy.join("config.toml"), "").unwrap();
    train_into_busy("busy is in use by another chunkql process");
    drop(lock);
    train_into_busy("busy already holds a run");
    chunkql()
        .args(["train", "--resume"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "is not a run folder (it has no config.toml)",
        ));
    chunkql()
        .current_dir(dir.path())
        .args(["train", "--print-config", "--dataset", "pendulum.npz"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "dataset = \"{}\"",
            dir.path().join("pendulum.npz").display()
        )));
}

/// The refusals of a resume are values a caller can match on: no folder,
/// a folder without a run, a file where the folder was meant.
#[test]
fn resume_refusals_are_typed() {
    use chunkql::train::{ResumeError, TrainError, resume};
    let dir = tempfile::tempdir().unwrap();
    let stop = chunkql::train::StopHandle::new();
    let nothing = dir.path().join("nothing");
    match resume(&nothing, &stop).unwrap_err() {
        TrainError::Resume(ResumeError::NoSuchFolder { dir }) => assert_eq!(dir, nothing),
        err => panic!("{err}"),
    }
    let err = resume(dir.path(), &stop).unwrap_err();
    assert!(
        matches!(&err, TrainError::Resume(ResumeError::NotARunFolder { dir: d }) if d == dir.path()),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a run folder (it has no config.toml): --resume takes a folder that \
             `chunkql train` wrote",
            dir.path().display()
        )
    );
    // A run's file: its folder (one with a config.toml) is named.
    let file = dir.path().join("checkpoint.safetensors");
    std::fs::write(&file, "").unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    match resume(&file, &stop).unwrap_err() {
        TrainError::Resume(ResumeError::IsAFile { path, parent }) => {
            assert_eq!((path, parent), (file, Some(dir.path().to_path_buf())));
        }
        err => panic!("{err}"),
    }
}

/// A device name that is none of cpu, cuda, cuda:N is a typed error with
/// the name.
#[test]
fn an_unknown_device_is_refused_with_its_name() {
    use chunkql::train::{TrainError, parse_device};
    assert!(matches!(parse_device("cpu"), Ok(tch::Device::Cpu)));
    let err = parse_device("tpu").unwrap_err();
    assert!(
        matches!(&err, TrainError::UnknownDevice { name } if name == "tpu"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "unknown device `tpu` (use cpu, cuda or cuda:N)"
    );
}

/// A new run is not started in a folder that holds one, in one with files
/// of an earlier run, or over a file; each refusal names the folder.
#[test]
fn a_new_run_refuses_folders_that_are_not_fresh() {
    use chunkql::train::{TrainConfig, TrainError, train};
    let dir = tempfile::tempdir().unwrap();
    let stop = chunkql::train::StopHandle::new();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("metrics.jsonl"), "").unwrap();
    match train(TrainConfig::default(), &run, &stop).unwrap_err() {
        TrainError::LeftoverRun { dir, file } => {
            assert_eq!((dir, file), (run.clone(), "metrics.jsonl"))
        }
        err => panic!("{err}"),
    }
    std::fs::write(run.join("config.toml"), "").unwrap();
    let err = train(TrainConfig::default(), &run, &stop).unwrap_err();
    assert!(
        matches!(&err, TrainError::FolderHoldsRun { dir } if *dir == run),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{0} already holds a run; continue it with --resume {0} or choose another --out",
            run.display()
        )
    );
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    match train(TrainConfig::default(), &file, &stop).unwrap_err() {
        TrainError::NotAFolder { dir } => assert_eq!(dir, file),
        err => panic!("{err}"),
    }
}
