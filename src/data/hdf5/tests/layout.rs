//! Files that are neither clean layout: strays beside Minari episode
//! groups, both layouts at once; and f64 values beyond float32.

use super::*;

#[test]
fn minari_top_level_member_that_is_not_an_episode_group_is_rejected() {
    for (stray, what) in [
        (
            "f.create_group('episode_x')['actions'] = np.zeros((1, 1))",
            "group `episode_x`",
        ),
        ("f['episode_2'] = np.zeros(3)", "dataset `episode_2`"),
        ("f.create_group('extras')", "group `extras`"),
    ] {
        let (_dir, path) = minari_file(&format!(
            "episode(f, 'episode_0', 2)\nepisode(f, 'episode_1', 1)\n{stray}"
        ));
        assert_eq!(
            read_err(&path).to_string(),
            format!(
                "{}: not a valid HDF5 file: top-level {what} is not an episode group \
                 `episode_<number>`; the file has 2 Minari episode groups, and a Minari \
                 file holds nothing else",
                path.display()
            )
        );
    }
}

#[test]
fn minari_groups_with_the_same_episode_number_are_rejected() {
    let (_dir, path) = minari_file("episode(f, 'episode_1', 2)\nepisode(f, 'episode_01', 1)");
    assert_eq!(
        read_err(&path).to_string(),
        format!(
            "{}: not a valid HDF5 file: groups `episode_01` and `episode_1` are both episode 1",
            path.display()
        )
    );
}

#[test]
fn file_with_d4rl_datasets_and_minari_episode_groups_is_rejected() {
    let (_dir, path) = d4rl_file(
        "for i in range(5):\n    f.create_group(f'episode_{i}')['rewards'] = np.zeros(2)",
    );
    assert_eq!(
        read_err(&path).to_string(),
        format!(
            "{}: not a valid HDF5 file: holds both the D4RL layout (top-level datasets \
             observations, actions, rewards, terminals, timeouts) and the Minari layout \
             (groups `episode_0`, `episode_1`, `episode_2`, ... (5 in all)); a file must \
             use one layout, and reading either part alone would drop the other",
            path.display()
        )
    );
    // A single D4RL key is enough to see the flat layout.
    let (_dir, path) = minari_file("episode(f, 'episode_0', 2)\nf['rewards'] = np.zeros(2)");
    let err = read_err(&path).to_string();
    assert!(
        err.contains("both the D4RL layout (top-level datasets rewards)")
            && err.contains("(groups `episode_0`)"),
        "{err}"
    );
}

#[test]
fn float64_values_beyond_float32_name_key_and_row() {
    let (_dir, path) =
        d4rl_file("del f['rewards']\nf['rewards'] = np.array([0, 0, 0, -1e39], dtype=np.float64)");
    assert_eq!(
        read_err(&path).to_string(),
        format!(
            "{}: key `rewards` row 3: value -1e39 does not fit in float32",
            path.display()
        )
    );
    // In a Minari file the row counts inside the episode group.
    let (_dir, path) = minari_file(
        "episode(f, 'episode_0', 2)\n\
         episode(f, 'episode_1', 3, observations=np.array([[0, 0], [0, 0], [0, 1e39], [0, 0]]))",
    );
    assert_eq!(
        read_err(&path).to_string(),
        format!(
            "{}: key `episode_1/observations` row 2: value 1e39 does not fit in float32",
            path.display()
        )
    );
}
