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
