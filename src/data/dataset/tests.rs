use super::*;
use ndarray::{Array1, Array2};

fn columns(n: usize) -> StepColumns {
    StepColumns {
        observations: Array2::<f32>::zeros((n, 3)).into_dyn(),
        actions: Array2::<f32>::zeros((n, 2)).into_dyn(),
        rewards: Array1::<f32>::zeros(n).into_dyn(),
        terminals: Array1::from_elem(n, false).into_dyn(),
        timeouts: Array1::from_elem(n, false).into_dyn(),
        next_observations: None,
    }
}

#[test]
fn episodes_end_at_first_flag_or_at_the_last_row() {
    let terminals = [false, true, false, false, false, false];
    let timeouts = [false, true, false, true, false, false];
    let eps = find_episodes(&terminals, &timeouts);
    assert_eq!(
        eps,
        vec![
            Episode {
                start: 0,
                end: 1,
                end_kind: EpisodeEnd::Terminal
            },
            Episode {
                start: 2,
                end: 3,
                end_kind: EpisodeEnd::Timeout
            },
            Episode {
                start: 4,
                end: 5,
                end_kind: EpisodeEnd::EndOfData
            },
        ]
    );
}

#[test]
fn rows_with_both_flags_end_terminal_episodes_and_are_noted() {
    let mut c = columns(6);
    for t in [1, 4] {
        c.terminals[[t]] = true;
        c.timeouts[[t]] = true;
    }
    let ds = StepDataset::new("x.npz", c).unwrap();
    let kinds: Vec<_> = ds.episodes().iter().map(|e| (e.end, e.end_kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, EpisodeEnd::Terminal),
            (4, EpisodeEnd::Terminal),
            (5, EpisodeEnd::EndOfData)
        ]
    );
    assert_eq!(
        ds.notes(),
        [
            "2 rows are both terminal and timeout (first: row 1); terminal wins: \
          those episodes end in an absorbing state, not bootstrapped"
        ]
    );
    let mut one = columns(3);
    one.terminals[[2]] = true;
    one.timeouts[[2]] = true;
    let ds = StepDataset::new("x.npz", one).unwrap();
    assert!(ds.notes()[0].starts_with("1 row is both terminal and timeout (first: row 2)"));
    assert!(
        StepDataset::new("x.npz", columns(3))
            .unwrap()
            .notes()
            .is_empty()
    );
}

/// Next observations that are not the next row's observation inside an
/// episode (flags missing) are noted with their count and first row; at an
/// episode's end, and within float noise, they are not.
#[test]
fn next_observations_that_break_the_chain_inside_an_episode_are_noted() {
    // Rows 0-2 one episode (timeout at 2), rows 3-5 another. s[r] = r;
    // next[r] = r + 1, except next[2] = 40 (an episode's end: fine) and,
    // where flags went missing, next[4] = 70.
    let build = |next: [f32; 6]| {
        let mut c = columns(6);
        c.observations = Array2::from_shape_fn((6, 3), |(r, _)| r as f32).into_dyn();
        c.next_observations = Some(Array2::from_shape_fn((6, 3), |(r, _)| next[r]).into_dyn());
        let mut timeouts = Array1::from_elem(6, false);
        timeouts[2] = true;
        c.timeouts = timeouts.into_dyn();
        StepDataset::new("<t>", c).unwrap()
    };
    let clean = build([1.0, 2.0, 40.0, 4.0, 5.0, 6.0]);
    assert!(clean.notes().is_empty(), "{:?}", clean.notes());
    let noisy = build([1.0 + 1e-6, 2.0, 40.0, 4.0, 5.0 - 4e-5, 6.0]);
    assert!(noisy.notes().is_empty(), "{:?}", noisy.notes());
    let broken = build([1.0, 2.0, 40.0, 4.0, 70.0, 6.0]);
    assert_eq!(
        broken.notes(),
        [
            "1 row inside episodes has a next observation unlike the next row's observation \
          (first: row 4): a missing terminal or timeout flag? Chunks run across such rows as \
          if they were one episode"
        ]
    );
    let twice = build([1.0, 9.0, 40.0, 9.0, 70.0, 6.0]);
    assert!(
        twice.notes()[0].starts_with("3 rows inside episodes have"),
        "{:?}",
        twice.notes()
    );
    assert!(twice.notes()[0].contains("(first: row 1)"));
}

#[test]
fn the_fingerprint_follows_the_values_not_the_file_name() {
    let ds = |name: &str, c: StepColumns| StepDataset::new(name, c).unwrap().fingerprint();
    let base = ds("a.npz", columns(4));
    assert_eq!(base.len(), 16);
    assert_eq!(ds("elsewhere/b.npz", columns(4)), base);
    let mut c = columns(4);
    c.rewards[[3]] = 1e-6;
    assert_ne!(ds("a.npz", c), base);
    let mut c = columns(4);
    c.timeouts[[1]] = true;
    assert_ne!(ds("a.npz", c), base);
    let mut c = columns(4);
    c.next_observations = Some(Array2::<f32>::zeros((4, 3)).into_dyn());
    assert_ne!(ds("a.npz", c), base);
    assert_ne!(ds("a.npz", columns(5)), base);
}

#[test]
fn valid_columns_build_a_dataset() {
    let ds = StepDataset::new("x.npz", columns(4)).unwrap();
    assert_eq!((ds.len(), ds.obs_dim(), ds.act_dim()), (4, 3, 2));
    assert_eq!(ds.episodes().len(), 1);
}

#[test]
fn empty_data_is_rejected() {
    let err = StepDataset::new("x.npz", columns(0)).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    assert_eq!(err.to_string(), "x.npz: the dataset has no rows");
}

#[test]
fn length_mismatch_names_the_key() {
    let mut c = columns(4);
    c.rewards = Array1::<f32>::zeros(3).into_dyn();
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.npz: key `rewards` has 3 rows but `observations` has 4"
    );
}

#[test]
fn wrong_rank_is_rejected() {
    let mut c = columns(4);
    c.actions = Array1::<f32>::zeros(4).into_dyn();
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.npz: key `actions` has shape [4], expected [N, A]"
    );
    let mut c = columns(4);
    c.rewards = Array2::<f32>::zeros((4, 2)).into_dyn();
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.npz: key `rewards` has shape [4, 2], expected [N] (or [N, 1])"
    );
}

/// Some D4RL files store one value per row as a column `[N, 1]`; D4RL's
/// loader squeezes it, and so does this one, saying so.
#[test]
fn per_row_columns_of_shape_n_by_1_are_read_as_n() {
    let mut c = columns(4);
    c.rewards = Array2::from_shape_vec((4, 1), vec![1.0f32, 2.0, 3.0, 4.0])
        .unwrap()
        .into_dyn();
    c.timeouts = Array2::from_shape_vec((4, 1), vec![false, true, false, true])
        .unwrap()
        .into_dyn();
    let data = StepDataset::new("x.npz", c).unwrap();
    assert_eq!(data.rewards(), &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(data.timeouts(), &[false, true, false, true]);
    assert_eq!(data.episodes().len(), 2);
    assert_eq!(
        data.notes(),
        &["`rewards`, `timeouts` of shape [N, 1] read as [N]".to_string()]
    );
    let mut c = columns(4);
    c.terminals = Array2::from_elem((3, 1), false).into_dyn();
    assert!(matches!(
        StepDataset::new("x.npz", c),
        Err(DataError::LengthMismatch {
            found: 3,
            expected: 4,
            ..
        })
    ));
}

#[test]
fn bad_next_observations_name_the_file_the_key_and_the_fault() {
    let mut c = columns(4);
    c.next_observations = Some(Array2::<f32>::zeros((4, 2)).into_dyn());
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert!(matches!(err, DataError::WrongShape { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "x.npz: key `next_observations` has shape [4, 2], expected [N, 3] like observations"
    );
    let mut c = columns(4);
    c.next_observations = Some(Array2::<f32>::zeros((3, 3)).into_dyn());
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.npz: key `next_observations` has 3 rows but `observations` has 4"
    );
    let mut c = columns(4);
    c.next_observations = Some(Array1::<f32>::zeros(4).into_dyn());
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.npz: key `next_observations` has shape [4], expected [N, O]"
    );
    let mut c = columns(4);
    let mut next = Array2::<f32>::zeros((4, 3));
    next[[3, 0]] = f32::NEG_INFINITY;
    c.next_observations = Some(next.into_dyn());
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.npz: key `next_observations` row 3: non-finite value -inf"
    );
}

#[test]
fn non_finite_values_name_key_and_row() {
    let mut c = columns(4);
    c.observations[[2, 1]] = f32::NAN;
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.npz: key `observations` row 2: non-finite value NaN"
    );
    let mut c = columns(4);
    c.rewards[[3]] = f32::INFINITY;
    let err = StepDataset::new("x.npz", c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.npz: key `rewards` row 3: non-finite value inf"
    );
}

#[test]
fn numeric_flags_must_be_zero_or_one() {
    assert_eq!(
        flags_from_numbers("f", "terminals", &[3], &[0.0f32, 1.0, 0.0]).unwrap(),
        vec![false, true, false]
    );
    let err = flags_from_numbers("f", "timeouts", &[3], &[0u8, 1, 2]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "f: key `timeouts` row 2: flag value 2 is neither 0 nor 1"
    );
    // A column of the wrong shape [3, 2]: element 3 (row-major) is row 1.
    let err = flags_from_numbers("f", "timeouts", &[3, 2], &[0u8, 1, 0, 5, 0, 0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "f: key `timeouts` row 1: flag value 5 is neither 0 nor 1"
    );
}

/// The names in error messages (`STEP_KEYS`) and the names the readers
/// read (`STEP_COLUMNS`) are the same list.
#[test]
fn the_key_list_of_errors_names_every_step_column() {
    let named: Vec<&str> = STEP_KEYS
        .trim_start_matches("D4RL names: ")
        .split(", ")
        .map(|k| k.trim_start_matches("optional "))
        .collect();
    assert_eq!(named, STEP_COLUMNS);
}
