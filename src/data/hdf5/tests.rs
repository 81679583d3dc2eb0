use super::*;
use crate::data::EpisodeEnd;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

mod edges;
mod layout;

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");

/// Runs `script` with the project venv's python (numpy as `np`, h5py, and
/// `path`, the file to write, predefined) and returns the file.
fn h5py_file(script: &str) -> (TempDir, PathBuf) {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} not found: run scripts/setup.sh (it creates .venv with numpy and h5py)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data.h5");
    let program =
        format!("import sys\nimport numpy as np\nimport h5py\npath = sys.argv[1]\n{script}");
    let out = Command::new(PYTHON)
        .arg("-c")
        .arg(&program)
        .arg(&path)
        .output()
        .expect("run the venv python");
    assert!(
        out.status.success(),
        "python failed (run scripts/setup.sh if h5py is missing):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, path)
}

fn read_ok(path: &Path) -> StepDataset {
    read_hdf5(path).unwrap_or_else(|e| panic!("{e}"))
}

/// A D4RL file: 4 rows (terminal at row 1, timeout at row 3), f32
/// observations, f64 actions, bool flags, and `infos/`, `metadata/` groups
/// the reader must ignore. `extra` runs inside the `with` block (`f`).
fn d4rl_file(extra: &str) -> (TempDir, PathBuf) {
    let extra: String = extra.lines().map(|line| format!("    {line}\n")).collect();
    h5py_file(&format!(
        r#"
obs = np.arange(12, dtype=np.float32).reshape(4, 3) / 4
with h5py.File(path, 'w') as f:
    f['observations'] = obs
    f['actions'] = np.array([[0.1, -0.2], [0.3, 0.4], [-1.0, 1.0], [0.0, 0.5]], dtype=np.float64)
    f['rewards'] = np.array([1.0, 0.0, -0.5, 2.0], dtype=np.float32)
    f['terminals'] = np.array([False, True, False, False])
    f['timeouts'] = np.array([False, False, False, True])
    f['infos/qpos'] = np.zeros((4, 2))
    f['metadata/algorithm'] = 'SAC'
{extra}"#
    ))
}

const D4RL_OBS: [f32; 12] = [
    0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75,
];
const D4RL_TERMINALS: [bool; 4] = [false, true, false, false];
const D4RL_TIMEOUTS: [bool; 4] = [false, false, false, true];

/// Python helper `episode(f, name, T, drop=(), **columns)`: a Minari
/// episode group with T steps, 2-wide observations `[T+1, 2]` counting
/// from 0, zero 1-wide actions, rewards 1, truncated at its last step;
/// `columns` replace defaults, `drop` leaves keys out.
const MINARI_HELPER: &str = r#"
def episode(f, name, T, drop=(), **columns):
    g = f.create_group(name)
    cols = dict(
        observations=np.arange((T + 1) * 2, dtype=np.float32).reshape(T + 1, 2),
        actions=np.zeros((T, 1), dtype=np.float32),
        rewards=np.ones(T, dtype=np.float32),
        terminations=np.zeros(T, dtype=bool),
        truncations=np.arange(T) == T - 1,
    )
    cols.update(columns)
    for key, value in cols.items():
        if key not in drop:
            g[key] = value
    return g
"#;

fn minari_file(body: &str) -> (TempDir, PathBuf) {
    let body: String = body.lines().map(|line| format!("    {line}\n")).collect();
    h5py_file(&format!(
        "{MINARI_HELPER}\nwith h5py.File(path, 'w') as f:\n{body}"
    ))
}

fn read_err(path: &Path) -> DataError {
    match read_hdf5(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e,
    }
}

#[test]
fn d4rl_file_from_h5py_reads_back_exactly_and_ignores_other_groups() {
    let (_dir, path) = d4rl_file("");
    let data = read_ok(&path);
    assert_eq!((data.len(), data.obs_dim(), data.act_dim()), (4, 3, 2));
    assert_eq!(data.source(), path.display().to_string());
    assert_eq!(data.observations(), &D4RL_OBS);
    // f64 actions narrowed to the nearest f32.
    assert_eq!(data.actions(), &[0.1, -0.2, 0.3, 0.4, -1.0, 1.0, 0.0, 0.5]);
    assert_eq!(data.rewards(), &[1.0, 0.0, -0.5, 2.0]);
    assert_eq!(data.terminals(), &D4RL_TERMINALS);
    assert_eq!(data.timeouts(), &D4RL_TIMEOUTS);
    assert_eq!(data.next_observations(), None);
    assert_eq!(data.episodes().len(), 2);
    assert!(data.notes().is_empty(), "{:?}", data.notes());
}

#[test]
fn d4rl_next_observations_are_read_when_present() {
    let (_dir, path) = d4rl_file("f['next_observations'] = (obs + 10).astype(np.float64)");
    let data = read_ok(&path);
    let expected: Vec<f32> = D4RL_OBS.iter().map(|v| v + 10.0).collect();
    assert_eq!(data.next_observations(), Some(expected.as_slice()));
    assert_eq!(data.next_observation(3), Some(&[12.25, 12.5, 12.75][..]));
}

#[test]
fn d4rl_flags_may_be_float32_or_integers_holding_zero_or_one() {
    let (_dir, path) = d4rl_file(
        "del f['terminals'], f['timeouts']\n\
         f['terminals'] = np.array([0, 1, 0, 0], dtype=np.float32)\n\
         f['timeouts'] = np.array([0, 0, 0, 1], dtype=np.int64)",
    );
    let data = read_ok(&path);
    assert_eq!(data.terminals(), &D4RL_TERMINALS);
    assert_eq!(data.timeouts(), &D4RL_TIMEOUTS);

    let (_dir, path) = d4rl_file(
        "del f['terminals'], f['timeouts']\n\
         f['terminals'] = np.array([0, 1, 0, 0], dtype=np.uint8)\n\
         f['timeouts'] = np.array([0, 0, 0, 1], dtype=np.float64)",
    );
    let data = read_ok(&path);
    assert_eq!(data.terminals(), &D4RL_TERMINALS);
    assert_eq!(data.timeouts(), &D4RL_TIMEOUTS);
}

#[test]
fn flag_neither_zero_nor_one_is_rejected_with_its_row() {
    let (_dir, path) = d4rl_file(
        "del f['terminals']\nf['terminals'] = np.array([0, 0.5, 0, 0], dtype=np.float32)",
    );
    let err = read_err(&path);
    assert!(
        matches!(&err, DataError::BadFlag { key, row: 1, value, .. } if key == "terminals" && *value == 0.5),
        "{err}"
    );
}

#[test]
fn bool_enum_holding_two_is_a_bad_flag_not_a_bool() {
    // h5py's bool type is an int8 enum {FALSE: 0, TRUE: 1}; a corrupt file
    // can store other bytes in it.
    let (_dir, path) = d4rl_file(
        "del f['timeouts']\n\
         d = f.create_dataset('timeouts', (4,), dtype=h5py.enum_dtype({'FALSE': 0, 'TRUE': 1}, basetype='i1'))\n\
         d[...] = np.array([0, 0, 2, 1], dtype='i1')",
    );
    let err = read_err(&path);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: key `timeouts` row 2: flag value 2 is neither 0 nor 1",
            path.display()
        )
    );
}

#[test]
fn minari_episodes_map_to_step_rows_with_next_observations_and_flags() {
    let (_dir, path) = minari_file(
        r#"f.attrs['total_steps'] = 6
# 2 steps, terminated; f64 observations and rewards
episode(f, 'episode_0', 2,
    observations=np.array([[0, 0], [1, 1], [2, 2]], dtype=np.float64),
    actions=np.array([[0.5], [0.25]], dtype=np.float32),
    rewards=np.array([1.0, 2.0]),
    terminations=np.array([False, True]),
    truncations=np.array([False, False]))
# 3 steps, truncated
episode(f, 'episode_1', 3,
    observations=np.array([[10, 10], [11, 11], [12, 12], [13, 13]], dtype=np.float32),
    actions=np.array([[1.0], [2.0], [3.0]], dtype=np.float32),
    rewards=np.array([3.0, 4.0, 5.0], dtype=np.float32))
# 1 step, neither flag at its end
episode(f, 'episode_2', 1,
    observations=np.array([[20, 20], [21, 21]], dtype=np.float32),
    actions=np.array([[-1.0]], dtype=np.float32),
    rewards=np.array([6.0], dtype=np.float32),
    truncations=np.array([False]))"#,
    );
    let data = read_ok(&path);
    assert_eq!((data.len(), data.obs_dim(), data.act_dim()), (6, 2, 1));
    assert_eq!(
        data.observations(),
        &[
            0.0, 0.0, 1.0, 1.0, 10.0, 10.0, 11.0, 11.0, 12.0, 12.0, 20.0, 20.0
        ]
    );
    assert_eq!(
        data.next_observations(),
        Some(
            &[
                1.0, 1.0, 2.0, 2.0, 11.0, 11.0, 12.0, 12.0, 13.0, 13.0, 21.0, 21.0
            ][..]
        )
    );
    assert_eq!(data.actions(), &[0.5, 0.25, 1.0, 2.0, 3.0, -1.0]);
    assert_eq!(data.rewards(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(data.terminals(), &[false, true, false, false, false, false]);
    // The open-ended last episode gets a timeout on its last row.
    assert_eq!(data.timeouts(), &[false, false, false, false, true, true]);
    let ends: Vec<_> = data
        .episodes()
        .iter()
        .map(|e| (e.start, e.end, e.end_kind))
        .collect();
    assert_eq!(
        ends,
        vec![
            (0, 1, EpisodeEnd::Terminal),
            (2, 4, EpisodeEnd::Timeout),
            (5, 5, EpisodeEnd::Timeout)
        ]
    );
    assert_eq!(
        data.notes(),
        &[
            "Minari layout: 3 episode groups (episode_0 .. episode_2) concatenated in numeric \
             order; observations[:-1] -> observations, observations[1:] -> next_observations, \
             terminations -> terminals, truncations -> timeouts"
                .to_string(),
            "1 of 3 episodes end with neither termination nor truncation; their last step is \
             marked as a timeout so that episodes do not merge"
                .to_string(),
        ]
    );
}

#[test]
fn minari_episodes_are_ordered_by_number_not_by_name() {
    // HDF5 lists episode_10 before episode_2.
    let (_dir, path) = minari_file(
        "for i in range(12):\n    episode(f, f'episode_{i}', 1, rewards=np.array([i], dtype=np.float32))",
    );
    let data = read_ok(&path);
    let expected: Vec<f32> = (0..12).map(|i| i as f32).collect();
    assert_eq!(data.rewards(), expected.as_slice());
    assert_eq!(data.episodes().len(), 12);
    assert_eq!(data.notes().len(), 1, "{:?}", data.notes());
}

#[test]
fn minari_dict_observations_are_concatenated_in_sorted_key_order() {
    let (_dir, path) = minari_file(
        r#"for i, T in enumerate([2, 1]):
    g = episode(f, f'episode_{i}', T, drop=('observations',))
    o = g.create_group('observations')
    # created out of order: the reader sorts the keys
    o['observation'] = np.arange((T + 1) * 3, dtype=np.float64).reshape(T + 1, 3) + 100 * i
    o['desired_goal'] = np.full((T + 1, 2), 9.0 + i, dtype=np.float32)
    o['achieved_goal'] = -np.arange((T + 1) * 2, dtype=np.float32).reshape(T + 1, 2)"#,
    );
    let data = read_ok(&path);
    assert_eq!((data.len(), data.obs_dim()), (3, 7));
    // [achieved_goal (2), desired_goal (2), observation (3)]
    assert_eq!(data.observation(0), &[0.0, -1.0, 9.0, 9.0, 0.0, 1.0, 2.0]);
    assert_eq!(data.observation(1), &[-2.0, -3.0, 9.0, 9.0, 3.0, 4.0, 5.0]);
    assert_eq!(
        data.next_observation(1),
        Some(&[-4.0, -5.0, 9.0, 9.0, 6.0, 7.0, 8.0][..])
    );
    assert_eq!(
        data.observation(2),
        &[0.0, -1.0, 10.0, 10.0, 100.0, 101.0, 102.0]
    );
    assert_eq!(
        data.next_observation(2),
        Some(&[-2.0, -3.0, 10.0, 10.0, 103.0, 104.0, 105.0][..])
    );
    assert_eq!(
        data.notes()[1],
        "dict observations: concatenated achieved_goal [2], desired_goal [2], observation [3] \
         along the feature axis, in this order (sorted keys, as Gymnasium's Dict space flattens; \
         a Tuple's `_index_<n>` members in the order of n)"
    );
}

/// Minari stores a Tuple space as members `_index_0`, `_index_1`, ...;
/// they come in the order of their index (`_index_10` after `_index_9`,
/// not after `_index_1`).
#[test]
fn minari_tuple_observations_keep_index_order() {
    let (_dir, path) = minari_file(
        r#"g = episode(f, 'episode_0', 1, drop=('observations',))
o = g.create_group('observations')
for i in range(11):
    o[f'_index_{i}'] = np.full((2, 1), float(i), dtype=np.float32)"#,
    );
    let data = read_ok(&path);
    let want: Vec<f32> = (0..11).map(|i| i as f32).collect();
    assert_eq!(data.observation(0), want.as_slice());
}

#[test]
fn unknown_top_level_d4rl_members_are_named_in_a_note() {
    let (_dir, path) = d4rl_file("f['next_obs'] = obs");
    let data = read_ok(&path);
    assert_eq!(data.next_observations(), None);
    assert_eq!(data.notes().len(), 1, "{:?}", data.notes());
    assert!(
        data.notes()[0].starts_with("top-level members not read: next_obs (the step data is "),
        "{:?}",
        data.notes()
    );
}

#[test]
fn missing_d4rl_key_is_named() {
    let (_dir, path) = d4rl_file("del f['timeouts']");
    let err = read_err(&path);
    assert!(
        matches!(&err, DataError::MissingKey { key, .. } if key == "timeouts"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{}: missing key `timeouts`", path.display()))
    );
}

#[test]
fn missing_minari_key_names_the_episode_group() {
    let (_dir, path) = minari_file(
        "episode(f, 'episode_0', 2)\nepisode(f, 'episode_1', 3, drop=('truncations',))",
    );
    let err = read_err(&path);
    assert!(
        matches!(&err, DataError::MissingKey { key, .. } if key == "episode_1/truncations"),
        "{err}"
    );
}

#[test]
fn integer_observations_are_a_dtype_error() {
    let (_dir, path) =
        d4rl_file("del f['observations']\nf['observations'] = np.zeros((4, 3), dtype=np.int64)");
    let err = read_err(&path);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: key `observations` has dtype int64, expected float32 or float64",
            path.display()
        )
    );
}

#[test]
fn string_datasets_are_dtype_errors() {
    let (_dir, path) =
        d4rl_file("del f['rewards']\nf['rewards'] = np.array([b'a', b'b', b'c', b'd'])");
    let err = read_err(&path);
    assert!(
        matches!(&err, DataError::WrongDtype { key, found, .. } if key == "rewards" && found == "string (len 1)"),
        "{err}"
    );
    let (_dir, path) = minari_file("episode(f, 'episode_0', 2, terminations=['no', 'yes'])");
    let err = read_err(&path);
    assert!(
        matches!(&err, DataError::WrongDtype { key, found, .. }
            if key == "episode_0/terminations" && found.contains("var len")),
        "{err}"
    );
}

#[test]
fn d4rl_length_mismatch_is_named() {
    let (_dir, path) = d4rl_file("del f['rewards']\nf['rewards'] = np.zeros(3, dtype=np.float32)");
    let err = read_err(&path);
    assert!(
        matches!(&err, DataError::LengthMismatch { key, found: 3, expected: 4, .. } if key == "rewards"),
        "{err}"
    );
}

#[test]
fn minari_observations_without_the_final_row_are_a_shape_error() {
    let (_dir, path) = minari_file(
        "episode(f, 'episode_0', 2)\n\
         episode(f, 'episode_1', 3, observations=np.zeros((3, 2), dtype=np.float32))",
    );
    let err = read_err(&path);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: key `episode_1/observations` has shape [3, 2], expected [T+1, O] = [4, O] \
             (T = 3 rows of `episode_1/actions`)",
            path.display()
        )
    );
}

#[test]
fn minari_per_step_column_of_wrong_length_names_the_episode() {
    let (_dir, path) =
        minari_file("episode(f, 'episode_0', 2, rewards=np.zeros(3, dtype=np.float32))");
    let err = read_err(&path);
    assert!(
        matches!(&err, DataError::WrongShape { key, shape, .. } if key == "episode_0/rewards" && shape == &[3]),
        "{err}"
    );
}

#[test]
fn nan_reward_is_rejected_naming_key_and_row() {
    let (_dir, path) =
        d4rl_file("del f['rewards']\nf['rewards'] = np.array([0, 0, np.nan, 0], dtype=np.float32)");
    let err = read_err(&path);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: key `rewards` row 2: non-finite value NaN",
            path.display()
        )
    );
    // In a Minari file the row counts inside the episode group.
    let (_dir, path) = minari_file(
        "episode(f, 'episode_0', 2)\n\
         episode(f, 'episode_1', 3, rewards=np.array([0, np.nan, 0]))",
    );
    let err = read_err(&path);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: key `episode_1/rewards` row 1: non-finite value NaN",
            path.display()
        )
    );
}

#[test]
fn empty_minari_episode_is_rejected() {
    let (_dir, path) = minari_file("episode(f, 'episode_0', 2)\nepisode(f, 'episode_1', 0)");
    let err = read_err(&path);
    assert!(
        matches!(&err, DataError::EmptyEpisode { episode, .. } if episode == "episode_1"),
        "{err}"
    );
}

#[test]
fn non_hdf5_file_is_a_format_error_and_a_missing_file_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("text.h5");
    std::fs::write(&path, "observations,actions\n1,2\n").expect("write");
    let err = read_err(&path);
    assert!(
        matches!(err, DataError::Format { format: "HDF5", .. }),
        "{err}"
    );

    let err = read_err(&dir.path().join("absent.h5"));
    assert!(matches!(err, DataError::Io { .. }), "{err}");
}

#[test]
fn file_with_neither_layout_is_a_format_error_saying_what_was_expected() {
    let (_dir, path) = h5py_file(
        "with h5py.File(path, 'w') as f:\n    f['data/obs'] = np.zeros((2, 2))\n    f['episode_x/obs'] = np.zeros(2)",
    );
    let err = read_err(&path);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not a valid HDF5 file: expected top-level datasets ({STEP_KEYS}) \
             or Minari groups episode_0, episode_1, ...; found [data, episode_x]",
            path.display()
        )
    );
}

#[test]
fn d4rl_file_written_by_hdf5_metno_round_trips() {
    use ndarray::{Array1, Array2};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metno.hdf5");
    let observations = Array2::from_shape_fn((5, 2), |(t, j)| t as f32 + 0.5 * j as f32);
    let next = observations.mapv(|v| v + 1.0);
    let actions = Array2::from_shape_fn((5, 3), |(t, j)| t as f64 * 0.25 - j as f64);
    let rewards = Array1::from_vec(vec![0.5f32, -1.0, 0.0, 3.0, 1.5]);
    let terminals = Array1::from_vec(vec![false, false, true, false, false]);
    let timeouts = Array1::from_vec(vec![false, false, false, false, true]);
    {
        // Without the default exclusive lock: HDF5 opens files without
        // O_CLOEXEC, so a python child forked meanwhile by another test
        // inherits the descriptor, and its lock would fail our read.
        let f = ::hdf5::File::with_options()
            .with_fapl(|fapl| fapl.file_locking(false))
            .create(&path)
            .expect("create");
        f.new_dataset_builder()
            .with_data(&observations)
            .create("observations")
            .expect("write");
        f.new_dataset_builder()
            .with_data(&next)
            .create("next_observations")
            .expect("write");
        f.new_dataset_builder()
            .with_data(&actions)
            .create("actions")
            .expect("write");
        f.new_dataset_builder()
            .with_data(&rewards)
            .create("rewards")
            .expect("write");
        f.new_dataset_builder()
            .with_data(&terminals)
            .create("terminals")
            .expect("write");
        f.new_dataset_builder()
            .with_data(&timeouts)
            .create("timeouts")
            .expect("write");
    }
    let data = read_ok(&path);
    assert_eq!(
        data.observations(),
        observations.as_slice().expect("standard layout")
    );
    assert_eq!(data.next_observations(), next.as_slice());
    let actions_f32: Vec<f32> = actions.iter().map(|&v| v as f32).collect();
    assert_eq!(data.actions(), actions_f32.as_slice());
    assert_eq!(data.rewards(), rewards.as_slice().expect("standard layout"));
    assert_eq!(
        data.terminals(),
        terminals.as_slice().expect("standard layout")
    );
    assert_eq!(
        data.timeouts(),
        timeouts.as_slice().expect("standard layout")
    );
}
