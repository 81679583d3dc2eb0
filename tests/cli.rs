//! End-to-end tests of the `chunkql` command line on tiny generated data.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn chunkql() -> Command {
    Command::cargo_bin("chunkql").unwrap()
}

fn generate(dir: &Path, episodes: usize) -> std::path::PathBuf {
    let out = dir.join("sub/line.npz");
    chunkql()
        .args([
            "generate",
            "line",
            "--episodes",
            &episodes.to_string(),
            "--seed",
            "3",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("in {episodes} episodes")));
    out
}

#[test]
fn generate_then_info_reports_episodes_dims_and_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 20);
    chunkql()
        .args(["dataset", "info"])
        .arg(&data)
        .args(["--horizon", "4", "--obs-horizon", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("episodes           20 ("))
        .stdout(predicate::str::contains(
            "dims               observation 2  action 1  next_observations yes",
        ))
        .stdout(predicate::str::contains(
            "chunks             H 4  gamma 0.99  To 2",
        ))
        .stdout(predicate::str::contains("dropped starts     none dropped"));
}

#[test]
fn chunks_writes_every_start_with_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 10);
    let out = dir.path().join("chunks.npz");
    chunkql()
        .args(["dataset", "chunks"])
        .arg(&data)
        .args([
            "--horizon",
            "3",
            "--gamma",
            "0.9",
            "--obs-horizon",
            "2",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote"));

    let steps = chunkql::data::read_npz(&data).unwrap();
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut names = npz.names().unwrap();
    names.sort();
    let mut expected: Vec<String> = chunkql::chunk::CHUNK_KEYS
        .iter()
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    // The file has next_observations, so every row is a start, in order.
    let start: ndarray::Array1<i64> = npz.by_name("start_index").unwrap();
    assert_eq!(start.to_vec(), (0..steps.len() as i64).collect::<Vec<_>>());
    let actions: ndarray::Array3<f32> = npz.by_name("actions").unwrap();
    assert_eq!(actions.shape(), &[steps.len(), 3, 1]);
    assert_eq!(actions[[5, 0, 0]], steps.action(5)[0]);
    let discount: ndarray::Array1<f32> = npz.by_name("discount_factor").unwrap();
    let tau: ndarray::Array1<i64> = npz.by_name("effective_length").unwrap();
    for (d, t) in discount.iter().zip(tau.iter()) {
        assert!((d - 0.9f32.powi(*t as i32)).abs() < 1e-6);
    }
}

#[test]
fn bad_input_gives_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 3);
    let out = dir.path().join("c.npz");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "dataset".into(),
                "chunks".into(),
                data.display().to_string(),
                "--horizon".into(),
                "0".into(),
                "--out".into(),
                out.display().to_string(),
            ],
            "error: chunk horizon H must be at least 1, got 0\n",
        ),
        (
            vec![
                "dataset".into(),
                "chunks".into(),
                data.display().to_string(),
                "--horizon".into(),
                "2".into(),
                "--gamma".into(),
                "1.5".into(),
                "--out".into(),
                out.display().to_string(),
            ],
            "error: discount gamma must lie in (0, 1], got 1.5\n",
        ),
        (
            vec![
                "dataset".into(),
                "info".into(),
                data.display().to_string(),
                "--horizon".into(),
                "2".into(),
                "--obs-horizon".into(),
                "0".into(),
            ],
            "error: observation horizon To must be at least 1, got 0\n",
        ),
        (
            vec!["dataset".into(), "info".into(), "missing.npz".into()],
            "error: missing.npz: cannot read: No such file or directory (os error 2)\n",
        ),
        (
            vec![
                "generate".into(),
                "nowhere".into(),
                "--out".into(),
                out.display().to_string(),
            ],
            "error: unknown data source `nowhere` (known: line, pendulum, pointmaze-umaze, \
             pointmaze-medium, pointmaze-large, pointmaze-umaze-terminal, \
             pointmaze-medium-terminal, pointmaze-large-terminal)\n",
        ),
    ];
    for (args, message) in cases {
        chunkql()
            .args(&args)
            .assert()
            .failure()
            .code(1)
            .stdout("")
            .stderr(message.to_string());
    }
    assert!(!out.exists(), "no output is written on error");
}

/// `dataset chunks DATA --horizon 2 --out OUT`, as arguments.
fn chunks_args<'a>(data: &'a Path, out: &'a Path) -> [&'a std::ffi::OsStr; 7] {
    [
        "dataset".as_ref(),
        "chunks".as_ref(),
        data.as_os_str(),
        "--horizon".as_ref(),
        "2".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]
}

/// Runs chunkql with `args`, expecting exit code 1, nothing on stdout and
/// exactly `message` on stderr.
fn fails_with(args: &[&std::ffi::OsStr], message: &str) {
    chunkql()
        .args(args)
        .assert()
        .failure()
        .code(1)
        .stdout("")
        .stderr(message.to_string());
}

#[test]
fn a_directory_given_as_step_data_is_named_as_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("some_dir.npz");
    std::fs::create_dir(&folder).unwrap();
    let message = format!(
        "error: {}: cannot read: is a directory, not a step-data file\n",
        folder.display()
    );
    fails_with(
        &["dataset".as_ref(), "info".as_ref(), folder.as_ref()],
        &message,
    );
    let out = dir.path().join("c.npz");
    fails_with(&chunks_args(&folder, &out), &message);
    assert!(!out.exists());
}

#[test]
fn an_out_that_is_not_npz_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("gen/x.txt");
    fails_with(
        &[
            "generate".as_ref(),
            "pendulum".as_ref(),
            "--out".as_ref(),
            text.as_ref(),
        ],
        &format!(
            "error: --out {}: the output is an .npz file; its name must end in .npz\n",
            text.display()
        ),
    );
    assert!(!dir.path().join("gen").exists(), "nothing is created");

    let data = generate(dir.path(), 3);
    let noext = dir.path().join("chunks_noext");
    fails_with(
        &chunks_args(&data, &noext),
        &format!(
            "error: --out {}: the output is an .npz file; its name must end in .npz\n",
            noext.display()
        ),
    );
    assert!(!noext.exists());
    // The extension is matched like the readers match it, in any case.
    let upper = dir.path().join("UPPER.NPZ");
    chunkql()
        .args(["generate", "line", "--episodes", "2", "--out"])
        .arg(&upper)
        .assert()
        .success();
    // Written under the name given, nothing appended.
    assert!(upper.is_file());
    assert!(!dir.path().join("UPPER.NPZ.npz").exists());
    chunkql()
        .args(["dataset", "info"])
        .arg(&upper)
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"episodes +2 \(").unwrap());
    let chunks = dir.path().join("chunks.Npz");
    chunkql()
        .args(["dataset", "chunks"])
        .arg(&upper)
        .args(["--horizon", "2", "--out"])
        .arg(&chunks)
        .assert()
        .success();
    assert!(chunks.is_file());
    assert!(!dir.path().join("chunks.Npz.npz").exists());
}

#[test]
fn episodes_beyond_the_limit_are_refused_with_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npz");
    // 100001 first: without the limit it succeeds at once, while u64::MAX
    // pendulum episodes would run until memory runs out.
    for (episodes, source) in [
        ("100001", "line"),
        ("0", "line"),
        ("18446744073709551615", "pendulum"),
    ] {
        fails_with(
            &[
                "generate".as_ref(),
                source.as_ref(),
                "--episodes".as_ref(),
                episodes.as_ref(),
                "--out".as_ref(),
                out.as_ref(),
            ],
            &format!("error: --episodes must lie in 1..=100000, got {episodes}\n"),
        );
    }
    assert!(!out.exists());
}

/// A file where an output's folder should be is named, and an I/O error
/// is printed once.
#[test]
fn an_out_below_a_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 3);
    let file = dir.path().join("my.toml");
    std::fs::write(&file, "").unwrap();
    let below = file.join("sub");
    fails_with(
        &[
            "generate".as_ref(),
            "line".as_ref(),
            "--out".as_ref(),
            below.join("a.npz").as_ref(),
        ],
        &format!(
            "error: cannot create {}: {} is a file, not a folder\n",
            below.display(),
            file.display()
        ),
    );
    fails_with(
        &chunks_args(&data, &file.join("c.npz")),
        &format!(
            "error: cannot create {}: {} is a file, not a folder\n",
            file.display(),
            file.display()
        ),
    );
    // (after train's notes on the data)
    chunkql()
        .args(["train", "--env", "none", "--dataset"])
        .arg(&data)
        .arg("--out")
        .arg(&below)
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::ends_with(format!(
            "\nerror: cannot create {}: Not a directory (os error 20)\n",
            below.display()
        )));
}

#[test]
fn chunks_creates_the_parent_folders_of_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 3);
    let out = dir.path().join("new/dir/c.npz");
    chunkql()
        .args(["dataset", "chunks"])
        .arg(&data)
        .args(["--horizon", "2", "--out"])
        .arg(&out)
        .assert()
        .success();
    assert!(out.is_file());
}

/// A chunk table too large for memory is refused before it is built.
#[test]
fn a_chunk_table_beyond_the_memory_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 4000);
    let out = dir.path().join("chunks.npz");
    // Line data (O 2, A 1), H 4096, To 4096: 4 (2 * 4096 * 2 + 4096 * 1 +
    // 4096 + 3) + 16 = 98332 bytes a transition; 4000 episodes of about 34
    // steps give some 136000 of them, about 12.5 GiB.
    chunkql()
        .args(["dataset", "chunks"])
        .arg(&data)
        .args(["--horizon", "4096", "--obs-horizon", "4096", "--out"])
        .arg(&out)
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains(
            "chunk transitions (H 4096, To 4096) would take ",
        ))
        .stderr(predicate::str::ends_with(
            " GiB in memory, more than the 8.0 GiB this command holds at once; lower \
             --horizon or --obs-horizon, or split the step data into smaller files\n",
        ));
    assert!(!out.exists());
}

/// The defaults `train --help` states are the built-in config's, as
/// `--print-config` prints them.
#[test]
fn train_help_states_the_built_in_defaults() {
    let help = chunkql().args(["train", "--help"]).output().unwrap().stdout;
    let help = String::from_utf8(help).unwrap().replace('\n', " ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let config = chunkql()
        .args(["train", "--print-config"])
        .output()
        .unwrap()
        .stdout;
    let config: toml::Table = String::from_utf8(config).unwrap().parse().unwrap();
    for (flag, key) in [
        ("env", "env"),
        ("agent", "algorithm"),
        ("horizon", "horizon"),
        ("seed", "seed"),
        ("device", "device"),
        ("steps", "steps"),
    ] {
        let value = config[key].to_string().replace('"', "");
        let section = help.split(&format!("--{flag} <")).nth(1).expect(flag);
        let stated = section.split("[config default: ").nth(1).expect(flag);
        assert!(
            stated.starts_with(&format!("{value}]")),
            "--{flag}: {stated}"
        );
    }
}

#[test]
fn help_says_hdf5_needs_the_cargo_feature() {
    for command in ["info", "chunks"] {
        chunkql()
            .args(["dataset", command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "or .h5/.hdf5 (D4RL or Minari layout) with the hdf5 cargo feature",
            ));
    }
}

#[test]
fn a_tiny_gamma_prints_in_short_form() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 3);
    chunkql()
        .args(["dataset", "info"])
        .arg(&data)
        .args(["--horizon", "2", "--gamma", "1e-30"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "chunks             H 2  gamma 1e-30  To 1\n",
        ));
    let out = dir.path().join("c.npz");
    chunkql()
        .args(["dataset", "chunks"])
        .arg(&data)
        .args(["--horizon", "2", "--gamma", "0.000001", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "chunks             H 2  gamma 1e-6  To 1\n",
        ));
}

#[test]
fn counts_of_one_are_singular_and_lengths_are_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("one.npz");
    chunkql()
        .args(["generate", "line", "--episodes", "1", "--max-steps", "1"])
        .arg("--out")
        .arg(&data)
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "wrote 1 step in 1 episode to {} (episode return mean -0.01, std 0.00)\n",
            data.display()
        )));
    chunkql()
        .args(["dataset", "info"])
        .arg(&data)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "episode length     min 1  mean 1.000  max 1  std 0.000\n",
        ));
    let out = dir.path().join("c.npz");
    chunkql()
        .args(["dataset", "chunks"])
        .arg(&data)
        .args(["--horizon", "1", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "wrote 1 chunk transition to {}\n",
            out.display()
        )));
}
