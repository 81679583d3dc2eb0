//! Edge cases found by feeding the readers odd files: zero widths, flags
//! before an episode's end, float16, flag columns of the wrong shape.

use super::*;

#[test]
fn minari_zero_width_observations_or_actions_name_the_episode_member() {
    for (columns, want) in [
        (
            "observations=np.zeros((4, 0), dtype=np.float32)",
            "key `episode_0/observations` has shape [4, 0], expected [T+1, O] with O >= 1",
        ),
        (
            "actions=np.zeros((3, 0), dtype=np.float32)",
            "key `episode_0/actions` has shape [3, 0], expected [T, A] with A >= 1",
        ),
    ] {
        let (_dir, path) = minari_file(&format!("episode(f, 'episode_0', 3, {columns})"));
        assert_eq!(
            read_err(&path).to_string(),
            format!("{}: {want}", path.display())
        );
    }
    let (_dir, path) = minari_file(
        "g = episode(f, 'episode_0', 3, drop=('observations',))\n\
         g['observations/a'] = np.zeros((4, 0), dtype=np.float32)",
    );
    assert_eq!(
        read_err(&path).to_string(),
        format!(
            "{}: not a valid HDF5 file: `episode_0/observations`: every member has width 0 \
             (O >= 1 needed)",
            path.display()
        )
    );
}

#[test]
fn minari_flag_before_the_last_step_is_refused_not_split() {
    // A group is one episode; a termination at step 1 of 5 would make the
    // steps after it an episode that starts from a terminal state.
    for member in ["terminations", "truncations"] {
        let (_dir, path) = minari_file(&format!(
            "episode(f, 'episode_0', 2)\n\
             episode(f, 'episode_1', 5, {member}=np.arange(5) == 1)"
        ));
        assert_eq!(
            read_err(&path).to_string(),
            format!(
                "{}: key `episode_1/{member}` row 1: the episode ends before its last step \
                 (row 4); an episode group holds one episode",
                path.display()
            )
        );
    }
}

#[test]
fn float16_flags_and_wrongly_shaped_bad_flags_are_named() {
    let (_dir, path) =
        d4rl_file("del f['terminals']\nf['terminals'] = np.zeros(4, dtype=np.float16)");
    assert_eq!(
        read_err(&path).to_string(),
        format!(
            "{}: key `terminals` has dtype float16, expected bool, an integer type, float32 or \
             float64 holding 0/1",
            path.display()
        )
    );
    let (_dir, path) = d4rl_file(
        "del f['timeouts']\nt = np.zeros((4, 3), dtype=np.uint8)\nt[2, 1] = 7\nf['timeouts'] = t",
    );
    assert_eq!(
        read_err(&path).to_string(),
        format!(
            "{}: key `timeouts` row 2: flag value 7 is neither 0 nor 1",
            path.display()
        )
    );
}
