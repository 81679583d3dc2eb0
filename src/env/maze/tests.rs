use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::env::seed_for;

const LAYOUTS: [MazeLayout; 3] = [MazeLayout::UMaze, MazeLayout::Medium, MazeLayout::Large];

/// Distance from `pos` to the nearest wall square of `layout`.
fn clearance(layout: MazeLayout, pos: [f64; 2]) -> f64 {
    let (rows, cols) = layout.shape();
    let mut nearest = f64::INFINITY;
    for row in 0..rows {
        for col in 0..cols {
            if layout.is_wall((row, col)) {
                let dx = ((pos[0] - row as f64).abs() - 0.5).max(0.0);
                let dy = ((pos[1] - col as f64).abs() - 0.5).max(0.0);
                nearest = nearest.min((dx * dx + dy * dy).sqrt());
            }
        }
    }
    nearest
}

fn assert_clear(env: &PointMaze) {
    let (pos, (rows, cols)) = (env.position(), env.layout().shape());
    assert!(
        clearance(env.layout(), pos) >= RADIUS - 1e-9,
        "disk in a wall at {pos:?}"
    );
    assert!(
        pos[0] > 0.5 && pos[0] < rows as f64 - 1.5,
        "left the maze: {pos:?}"
    );
    assert!(
        pos[1] > 0.5 && pos[1] < cols as f64 - 1.5,
        "left the maze: {pos:?}"
    );
}

/// Return, the first step at the goal (1-based) if any, and episode length.
struct Outcome {
    ret: f64,
    first_success: Option<usize>,
    steps: usize,
}

fn rollout(
    env: &mut PointMaze,
    behaviour: &mut dyn Behaviour,
    seed: u64,
    rng: &mut ChaCha8Rng,
) -> Outcome {
    let mut obs = [0f32; 4];
    let mut action = [0f32; 2];
    env.reset(seed, &mut obs);
    behaviour.reset(&obs);
    let mut out = Outcome {
        ret: 0.0,
        first_success: None,
        steps: 0,
    };
    loop {
        behaviour.act(&obs, rng, &mut action);
        let step = env.step(&action, &mut obs);
        (out.ret, out.steps) = (out.ret + step.reward, out.steps + 1);
        if step.success && out.first_success.is_none() {
            out.first_success = Some(out.steps);
        }
        if step.terminated || step.truncated {
            return out;
        }
    }
}

/// Averages over episodes `seed_for(0, k)`.
#[derive(Debug)]
struct Summary {
    mean_return: f64,
    /// Fraction of episodes that reached the goal.
    success_rate: f64,
    /// Mean first step at the goal over the successful episodes.
    steps_to_goal: f64,
}

fn evaluate(layout: MazeLayout, terminal: bool, level: Level, episodes: usize) -> Summary {
    let mut env = PointMaze::new(layout, terminal);
    let mut behaviour = env.behaviour(level);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut ret, mut wins, mut steps) = (0.0, 0, 0);
    for k in 0..episodes {
        let out = rollout(
            &mut env,
            behaviour.as_mut(),
            seed_for(0, k as u64),
            &mut rng,
        );
        ret += out.ret;
        if let Some(t) = out.first_success {
            (wins, steps) = (wins + 1, steps + t);
        }
    }
    Summary {
        mean_return: ret / episodes as f64,
        success_rate: wins as f64 / episodes as f64,
        steps_to_goal: steps as f64 / wins.max(1) as f64,
    }
}

#[test]
fn layouts_have_the_d4rl_free_cells_and_goals() {
    let expect = [
        (7, (1, 1), (5, 5)),
        (26, (6, 6), (8, 8)),
        (46, (7, 9), (9, 12)),
    ];
    for (layout, (free, goal, shape)) in LAYOUTS.into_iter().zip(expect) {
        assert_eq!(layout.free_cells().len(), free, "{layout:?}");
        assert_eq!(layout.start_cells().len(), free - 1);
        assert_eq!(layout.goal(), goal);
        assert_eq!(layout.shape(), shape);
        assert!(layout.rows().iter().all(|r| r.len() == shape.1));
        assert!(!layout.is_wall(goal) && layout.is_wall((0, 0)) && layout.is_wall((99, 1)));
    }
    // Row index first: U_MAZE row 2 is "###O#".
    assert!(MazeLayout::UMaze.is_wall((2, 1)) && !MazeLayout::UMaze.is_wall((2, 3)));
}

#[test]
fn bfs_distances_match_the_notes() {
    for (layout, max) in LAYOUTS.into_iter().zip([6, 10, 18]) {
        let planner = Planner::new(layout);
        assert_eq!(planner.max_distance(), max, "{layout:?}");
        assert_eq!(planner.distance(layout.goal()), Some(0));
        assert_eq!(planner.next_cell(layout.goal()), None);
        assert_eq!(planner.distance((0, 0)), None);
        for cell in layout.start_cells() {
            let next = planner
                .next_cell(cell)
                .expect("every free cell reaches the goal");
            assert_eq!(
                planner.distance(next),
                Some(planner.distance(cell).unwrap() - 1)
            );
            assert_eq!(
                planner.path(cell).len(),
                planner.distance(cell).unwrap() + 1
            );
        }
    }
    let umaze = Planner::new(MazeLayout::UMaze);
    let path = [(3, 1), (3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)];
    assert_eq!(umaze.path((3, 1)), path);
    // Tie-break in D4RL's order (col - 1, col + 1, row - 1, row + 1): from
    // medium (1, 1), (1, 2) and (2, 1) are both 8 from the goal.
    let medium = Planner::new(MazeLayout::Medium);
    assert_eq!(medium.distance((1, 2)), medium.distance((2, 1)));
    assert_eq!(medium.next_cell((1, 1)), Some((1, 2)));
}

#[test]
fn one_step_matches_the_hand_worked_update() {
    // m = 4/3 pi 0.1^3 1000 = 4.1887902047863905, m + dt damping = 4.1987902047863905.
    // row: v' = (m 1.0 + 0.01 100 0.5) / 4.19879... = 4.68879... / 4.19879... = 1.1167002817719798,
    //      x' = 3.0 + 0.01 v' = 3.0111670028177198
    // col: v' = (m (-0.2) + 0.01 100 (-1)) / 4.19879... = -0.43768751267027695,
    //      y' = 1.0 + 0.01 v' = 0.9956231248732972
    let mut env = PointMaze::new(MazeLayout::UMaze, false);
    let mut obs = [0f32; 4];
    env.set_state([3.0, 1.0], [1.0, -0.2], &mut obs);
    let step = env.step(&[0.5, -3.0], &mut obs); // -3 is clipped to -1
    let (pos, vel) = (env.position(), env.velocity());
    assert!((vel[0] - 1.1167002817719798).abs() < 1e-9);
    assert!((pos[0] - 3.0111670028177198).abs() < 1e-9);
    assert!((vel[1] + 0.43768751267027695).abs() < 1e-9);
    assert!((pos[1] - 0.9956231248732972).abs() < 1e-9);
    assert_eq!(
        obs,
        [pos[0] as f32, pos[1] as f32, vel[0] as f32, vel[1] as f32]
    );
    assert_eq!(
        step,
        StepResult {
            reward: 0.0,
            terminated: false,
            truncated: false,
            success: false
        }
    );
}

#[test]
fn velocity_is_clipped_to_five_before_the_step() {
    // v' = (m 5 + 1) / (m + 0.01) = 5.22625564833343 (reported unclipped, as D4RL);
    // v' = m (-5) / (m + 0.01) = -4.988091807982451.
    assert!((next_velocity(7.0, 1.0) - 5.22625564833343).abs() < 1e-9);
    assert!((next_velocity(-9.0, 0.0) + 4.988091807982451).abs() < 1e-9);
    let mut env = PointMaze::new(MazeLayout::Large, false);
    let mut obs = [0f32; 4];
    env.set_state([3.0, 3.0], [0.0, 0.0], &mut obs);
    for _ in 0..100 {
        env.step(&[0.0, 1.0], &mut obs);
        assert!(env.velocity()[1] <= 5.22625564833343 + 1e-12);
    }
}

#[test]
fn pushing_into_walls_never_enters_them() {
    let pushes = [
        [1.0, 0.0],
        [-1.0, 0.0],
        [0.0, 1.0],
        [0.0, -1.0],
        [1.0, 1.0],
        [-1.0, 1.0],
        [0.7, -1.0],
    ];
    let mut obs = [0f32; 4];
    for layout in LAYOUTS {
        let mut env = PointMaze::new(layout, false);
        for cell in layout.free_cells() {
            for push in pushes {
                env.set_state([cell.0 as f64, cell.1 as f64], [0.0; 2], &mut obs);
                for _ in 0..200 {
                    env.step(&push, &mut obs);
                    assert_clear(&env);
                }
            }
        }
    }
    // Against a flat wall the disk rests touching it, with that velocity zeroed:
    // U_MAZE (3, 1) has a wall above, at rows [1.5, 2.5].
    let mut env = PointMaze::new(MazeLayout::UMaze, false);
    env.set_state([3.0, 1.0], [0.0; 2], &mut obs);
    for _ in 0..200 {
        env.step(&[-1.0, 0.0], &mut obs);
    }
    assert_eq!(env.position(), [2.6, 1.0]);
    assert_eq!(env.velocity()[0], 0.0);
}

/// Pressed diagonally into a flat wall made of several wall cells, the disk
/// slides along it past the joins between the cells (the contact position
/// is a float, so the tangent gap there comes out a hair under the radius)
/// to the corner at the corridor's end.
#[test]
fn the_disk_slides_along_a_wall_of_many_cells_past_their_joins() {
    let mut obs = [0f32; 4];
    let mut env = PointMaze::new(MazeLayout::UMaze, false);
    // (start, push, end): the bottom corridor along row 4's walls, the top
    // one along row 0's, the right one along column 4's.
    let cases = [
        ([3.0, 1.0], [1.0, 1.0], [3.4, 3.4]),
        ([1.0, 1.0], [-1.0, 1.0], [0.6, 3.4]),
        ([1.0, 3.0], [1.0, 1.0], [3.4, 3.4]),
    ];
    for (start, push, end) in cases {
        env.set_state(start, [0.0; 2], &mut obs);
        for _ in 0..300 {
            env.step(&push, &mut obs);
            assert_clear(&env);
        }
        let pos = env.position();
        assert!(
            (pos[0] - end[0]).abs() < 1e-9 && (pos[1] - end[1]).abs() < 1e-9,
            "from {start:?} pushed {push:?}: stuck at {pos:?}, not at {end:?}"
        );
    }
}

#[test]
fn corners_stop_and_deflect_the_disk() {
    let mut obs = [0f32; 4];
    // Concave corner: pushed up-left in U_MAZE's goal cell, the disk rests against
    // both walls (rows <= 0.5 and cols <= 0.5 are wall).
    let mut env = PointMaze::new(MazeLayout::UMaze, false);
    env.set_state([1.0, 1.0], [0.0; 2], &mut obs);
    for _ in 0..200 {
        env.step(&[-1.0, -1.0], &mut obs);
    }
    assert_eq!(env.position(), [0.6, 0.6]);
    assert_eq!(env.velocity(), [0.0, 0.0]);
    // Convex corner: wall (2, 2) has its corner at (2.5, 2.5). Moving up at col 2.55,
    // the disk stops where it touches the corner: row 2 + 0.5 + sqrt(0.1^2 - 0.05^2).
    env.set_state([2.7, 2.55], [0.0; 2], &mut obs);
    for _ in 0..100 {
        env.step(&[-1.0, 0.0], &mut obs);
    }
    let pos = env.position();
    assert!((pos[0] - (2.5 + 0.0075f64.sqrt())).abs() < 1e-12, "{pos:?}");
    assert!(((pos[0] - 2.5).hypot(pos[1] - 2.5) - RADIUS).abs() < 1e-12);
    // With a push to the right as well it slides around the corner and up the corridor.
    env.set_state([3.0, 2.4], [0.0; 2], &mut obs);
    for _ in 0..60 {
        env.step(&[-1.0, 0.4], &mut obs);
        assert_clear(&env);
    }
    assert!(env.position()[0] < 2.0, "stuck at {:?}", env.position());
}

#[test]
fn random_actions_stay_inside_the_free_space() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for layout in LAYOUTS {
        let mut env = PointMaze::new(layout, false);
        let mut behaviour = env.behaviour(Level::Random);
        let (mut obs, mut action) = ([0f32; 4], [0f32; 2]);
        for k in 0..3 {
            env.reset(k, &mut obs);
            for _ in 0..layout.max_steps() {
                behaviour.act(&obs, &mut rng, &mut action);
                env.step(&action, &mut obs);
                assert_clear(&env);
            }
        }
    }
}

#[test]
fn time_limit_truncates_and_reward_is_sparse() {
    let mut obs = [0f32; 4];
    for (layout, limit) in LAYOUTS.into_iter().zip([300, 600, 800]) {
        let mut env = PointMaze::new(layout, false);
        assert_eq!(env.spec().max_steps, limit);
        let goal = layout.goal();
        // Resting on the goal: reward 1 every step, never terminated, truncated at the limit.
        env.set_state([goal.0 as f64, goal.1 as f64], [0.0; 2], &mut obs);
        let mut ret = 0.0;
        for t in 1..=limit {
            let step = env.step(&[0.0, 0.0], &mut obs);
            assert!(step.success && !step.terminated);
            assert_eq!(step.truncated, t == limit);
            ret += step.reward;
        }
        assert_eq!(ret, limit as f64);
    }
    // The reward radius is inclusive: exactly 0.5 from the goal centre counts.
    let mut env = PointMaze::new(MazeLayout::UMaze, false);
    env.set_state([1.0, 1.5], [0.0; 2], &mut obs);
    assert_eq!(env.step(&[0.0, 0.0], &mut obs).reward, 1.0);
    env.set_state([1.0, 1.5 + 1e-6], [0.0; 2], &mut obs);
    assert_eq!(env.step(&[0.0, 0.0], &mut obs).reward, 0.0);
}

#[test]
fn terminal_variant_ends_on_the_first_reward() {
    let mut obs = [0f32; 4];
    let mut env = PointMaze::new(MazeLayout::UMaze, true);
    assert_eq!(env.spec().name, "pointmaze-umaze-terminal");
    env.set_state([1.0, 1.8], [0.0; 2], &mut obs);
    let mut steps = 0;
    loop {
        let step = env.step(&[0.0, -1.0], &mut obs);
        steps += 1;
        assert!(!step.truncated);
        if step.reward > 0.0 {
            assert!(step.terminated && step.success);
            assert!(env.position()[1] <= 1.5);
            break;
        }
        assert!(!step.terminated && !step.success);
    }
    assert!(steps > 1 && steps < 100, "{steps}");
    // Far from the goal with no force: truncated (not terminated) at the limit.
    env.set_state([3.0, 1.0], [0.0; 2], &mut obs);
    for t in 1..=300 {
        let step = env.step(&[0.0, 0.0], &mut obs);
        assert!(!step.terminated && step.reward == 0.0);
        assert_eq!(step.truncated, t == 300);
    }
}

#[test]
fn specs_name_the_variants() {
    for layout in LAYOUTS {
        for terminal in [false, true] {
            let spec = PointMaze::new(layout, terminal).spec().clone();
            let name = format!(
                "pointmaze-{}{}",
                layout.name(),
                if terminal { "-terminal" } else { "" }
            );
            assert_eq!(spec.name, name);
            assert_eq!(
                (spec.obs_dim, spec.act_dim(), spec.has_success),
                (4, 2, true)
            );
            assert_eq!(
                (spec.action_low, spec.action_high),
                (vec![-1.0; 2], vec![1.0; 2])
            );
        }
    }
}

#[test]
fn reset_is_deterministic_and_never_starts_on_the_goal() {
    let (mut a, mut b) = ([0f32; 4], [0f32; 4]);
    for layout in LAYOUTS {
        let mut env = PointMaze::new(layout, false);
        env.reset(7, &mut a);
        env.reset(7, &mut b);
        assert_eq!(a, b);
        env.reset(8, &mut b);
        assert_ne!(a, b);
        let mut seen = std::collections::HashSet::new();
        for k in 0..400 {
            env.reset(seed_for(5, k), &mut a);
            let cell = (a[0].round() as usize, a[1].round() as usize);
            assert!(!layout.is_wall(cell) && cell != layout.goal(), "{cell:?}");
            assert!((a[0] - cell.0 as f32).abs() <= 0.1 && (a[1] - cell.1 as f32).abs() <= 0.1);
            assert!(a[2].abs() < 0.6 && a[3].abs() < 0.6);
            assert_eq!(env.position().map(|x| x as f32), [a[0], a[1]]);
            seen.insert(cell);
        }
        assert_eq!(
            seen.len(),
            layout.start_cells().len(),
            "{layout:?}: every start cell drawn"
        );
    }
}

#[test]
fn expert_reaches_the_goal_and_random_rarely_does() {
    for (layout, episodes) in LAYOUTS.into_iter().zip([20, 20, 10]) {
        let expert = evaluate(layout, true, Level::Expert, episodes).success_rate;
        assert!(expert > 0.9, "{layout:?}: expert success {expert}");
    }
    let random = evaluate(MazeLayout::Medium, true, Level::Random, 10).success_rate;
    assert!(random < 0.5, "random success {random}");
}

#[test]
fn medium_level_is_less_efficient_than_the_expert() {
    let expert = evaluate(MazeLayout::UMaze, false, Level::Expert, 10).mean_return;
    let medium = evaluate(MazeLayout::UMaze, false, Level::Medium, 10).mean_return;
    assert!(medium < 0.9 * expert, "medium {medium} vs expert {expert}");
}

#[test]
fn behaviours_are_reproducible_from_the_action_seed() {
    let mut env = PointMaze::new(MazeLayout::Medium, false);
    let mut run = |seed| {
        let mut behaviour = env.behaviour(Level::Medium);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let out = rollout(&mut env, behaviour.as_mut(), 11, &mut rng);
        (out.ret, out.steps, env.position())
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

/// The levels are what `ExpertConfig` documents, over 100 episodes of every
/// maze: the expert always reaches the goal, medium in 60-90% of episodes
/// (documented: about 0.7-0.8) for 40-70% of the expert's return (about
/// half) and more steps, random in under 20%. Prints the table
/// (`cargo test --lib env::maze::tests::levels -- --nocapture`).
#[test]
fn levels_have_their_documented_quality() {
    println!("| env | level | mean return | success | steps to goal |");
    println!("|---|---|---|---|---|");
    for layout in LAYOUTS {
        for terminal in [false, true] {
            let name = PointMaze::new(layout, terminal).spec().name.clone();
            let [expert, medium, random] =
                [Level::Expert, Level::Medium, Level::Random].map(|level| {
                    let s = evaluate(layout, terminal, level, 100);
                    let (ret, rate, steps) = (s.mean_return, s.success_rate, s.steps_to_goal);
                    println!("| {name} | {level} | {ret:.1} | {rate:.2} | {steps:.0} |");
                    s
                });
            assert_eq!(expert.success_rate, 1.0, "{name}: expert {expert:?}");
            assert!(
                (0.6..=0.9).contains(&medium.success_rate)
                    && medium.steps_to_goal > expert.steps_to_goal,
                "{name}: medium {medium:?}, expert {expert:?}"
            );
            if !terminal {
                let share = medium.mean_return / expert.mean_return;
                assert!(
                    (0.4..=0.7).contains(&share),
                    "{name}: medium/expert return {share}"
                );
            }
            assert!(random.success_rate < 0.2, "{name}: random {random:?}");
        }
    }
}
