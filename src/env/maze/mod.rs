//! Point-mass mazes in the D4RL maze2d layouts (`maze2d-{umaze,medium,large}-v1`).
//!
//! A disk of radius 0.1 slides in the plane; cell `(i, j)` of the layout is
//! the square `[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]`, and coordinates are
//! `(row, col)` like D4RL's `qpos`. The observation is `[x, y, vx, vy]`, the
//! action a force command in `[-1, 1]^2`.
//!
//! Departures from D4RL (docs/reference-notes.md section 5):
//! - **Cell-centred walls.** In D4RL's `qpos` frame a wall cell `(w, h)`
//!   spans `[w - 0.7, w + 0.3]` (the body sits at (1.2, 1.2) while walls are
//!   at (w + 1, h + 1)), so corridors are centred 0.2 off the integer cell
//!   coordinates. Here walls fill exactly their cell, so the goal and the
//!   start positions lie at corridor centres.
//! - **Contacts.** MuJoCo's soft frictionless contacts are replaced by an exact
//!   disk-vs-box sweep per axis: move along x, stop where the disk would first
//!   touch a wall (rounded corners included) and zero vx, then the same for y.
//!   The disk never overlaps a wall; it slides along walls and around corners.
//! - **Starts.** Episodes start in a uniformly drawn free cell other than the
//!   goal cell (D4RL may start on the goal).
//!
//! Free-space dynamics per axis follow MuJoCo's Euler step with implicit
//! joint damping: `v' = (m clip(v, ±5) + dt gear u) / (m + dt damping)`,
//! `x' = x + dt v'`. Reward is D4RL's sparse one: 1 when the disk centre is
//! within 0.5 of the goal cell centre after the step.

mod expert;
mod layout;
mod planner;
#[cfg(test)]
mod tests;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{Behaviour, Env, EnvSpec, Level, RandomBehaviour, Scene, StepResult};
pub use expert::{ExpertConfig, WaypointExpert};
pub use layout::{Cell, MazeLayout};
pub use planner::Planner;

/// Mass of the particle: a sphere of radius 0.1 and density 1000,
/// `4/3 pi 0.1^3 1000 = 4.18879` kg.
pub const MASS: f64 = 4.0 / 3.0 * std::f64::consts::PI * 1e-3 * 1000.0;
/// Simulation step (s); one environment step is one simulation step.
pub const DT: f64 = 0.01;
/// Motor gear: force = `GEAR * u` N.
pub const GEAR: f64 = 100.0;
/// Joint damping (N s / m).
pub const DAMPING: f64 = 1.0;
/// The velocity is clipped to `[-MAX_SPEED, MAX_SPEED]` before each step.
pub const MAX_SPEED: f64 = 5.0;
/// Radius of the disk.
pub const RADIUS: f64 = 0.1;
/// Distances this close (far above the float error of positions of order
/// 10, far below any step) count as touching in the contact sweep.
const TOUCHING: f64 = 1e-9;
/// Reward 1 when the centre is within this distance of the goal centre.
pub const GOAL_RADIUS: f64 = 0.5;

/// One free-space velocity update along one axis:
/// `v' = (m clip(v, ±5) + dt gear u) / (m + dt damping)`, `u` clipped to ±1.
pub fn next_velocity(v: f64, u: f64) -> f64 {
    let (v, u) = (v.clamp(-MAX_SPEED, MAX_SPEED), u.clamp(-1.0, 1.0));
    (MASS * v + DT * GEAR * u) / (MASS + DT * DAMPING)
}

/// The cell whose square contains `p` (ties round away from zero).
pub fn cell_of(p: [f64; 2]) -> (i64, i64) {
    (p[0].round() as i64, p[1].round() as i64)
}

/// Moves the disk centred at `pos` by `delta` along `axis` (0 = row, 1 = col),
/// stopping where it first touches a wall of `layout`. Returns whether a wall
/// stopped it (then the caller zeroes that velocity component).
///
/// At a fixed coordinate `q` on the other axis, the disk overlaps wall cell
/// `c` when the centre lies within `c_axis ± (0.5 + w)`, where
/// `w = r` if `|q - c_other| <= 0.5` and `w = sqrt(r^2 - d^2)` with
/// `d = |q - c_other| - 0.5 < r` otherwise (the rounded corner). Steps are
/// shorter than 0.06, so only the three cells ahead can be reached.
pub fn sweep(layout: MazeLayout, pos: &mut [f64; 2], axis: usize, delta: f64) -> bool {
    if delta == 0.0 {
        return false;
    }
    let other = 1 - axis;
    let (here, q) = (pos[axis], pos[other]);
    let cell = cell_of(*pos);
    let (cell_axis, cell_other) = if axis == 0 { cell } else { (cell.1, cell.0) };
    let ahead = cell_axis + if delta > 0.0 { 1 } else { -1 };
    let mut target = here + delta;
    let mut blocked = false;
    for k in -1..=1 {
        let c_other = cell_other + k;
        let is_wall = if axis == 0 {
            layout.is_wall_at(ahead, c_other)
        } else {
            layout.is_wall_at(c_other, ahead)
        };
        let gap = (q - c_other as f64).abs() - 0.5;
        // Within TOUCHING of the radius the disk touches the cell's face
        // rather than overlapping its corner: sliding along a flat wall
        // rests at a contact position that is a float, where the gap to
        // the next cell of the wall comes out a hair under the radius.
        if !is_wall || gap >= RADIUS - TOUCHING {
            continue;
        }
        let reach = 0.5
            + if gap <= 0.0 {
                RADIUS
            } else {
                (RADIUS * RADIUS - gap * gap).sqrt()
            };
        let bound = if delta > 0.0 {
            ahead as f64 - reach
        } else {
            ahead as f64 + reach
        };
        if (delta > 0.0 && bound < target) || (delta < 0.0 && bound > target) {
            target = bound;
            blocked = true;
        }
    }
    pos[axis] = target;
    blocked
}

/// A point mass in a D4RL maze2d layout (see the module doc).
#[derive(Debug, Clone)]
pub struct PointMaze {
    layout: MazeLayout,
    terminal: bool,
    spec: EnvSpec,
    planner: Planner,
    starts: Vec<Cell>,
    goal: [f64; 2],
    /// Disk centre `(row, col)`.
    pos: [f64; 2],
    vel: [f64; 2],
    /// Steps taken in this episode.
    t: usize,
}

impl PointMaze {
    /// `terminal = false`: `pointmaze-<layout>`, runs to the time limit (reward
    /// 1 for every step at the goal, as D4RL maze2d). `terminal = true`:
    /// `pointmaze-<layout>-terminal`, terminates on the first rewarded step.
    pub fn new(layout: MazeLayout, terminal: bool) -> Self {
        let suffix = if terminal { "-terminal" } else { "" };
        let spec = EnvSpec {
            name: format!("pointmaze-{}{suffix}", layout.name()),
            obs_dim: 4,
            action_low: vec![-1.0; 2],
            action_high: vec![1.0; 2],
            max_steps: layout.max_steps(),
            has_success: true,
        };
        let goal = layout.goal();
        let planner = Planner::new(layout);
        let starts = layout.start_cells();
        let goal = [goal.0 as f64, goal.1 as f64];
        let (pos, vel, t) = ([starts[0].0 as f64, starts[0].1 as f64], [0.0; 2], 0);
        PointMaze {
            layout,
            terminal,
            spec,
            planner,
            starts,
            goal,
            pos,
            vel,
            t,
        }
    }

    pub fn layout(&self) -> MazeLayout {
        self.layout
    }

    /// Shortest paths to the goal (what the expert follows).
    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// Disk centre `(row, col)`.
    pub fn position(&self) -> [f64; 2] {
        self.pos
    }

    pub fn velocity(&self) -> [f64; 2] {
        self.vel
    }

    /// Puts the disk at `pos` with `vel` and restarts the step count (tests,
    /// scripted starts). `pos` must leave the disk clear of the walls.
    pub fn set_state(&mut self, pos: [f64; 2], vel: [f64; 2], obs: &mut [f32]) {
        (self.pos, self.vel, self.t) = (pos, vel, 0);
        self.write_obs(obs);
    }

    /// Whether the disk centre is within `GOAL_RADIUS` of the goal centre.
    pub fn at_goal(&self) -> bool {
        let (dx, dy) = (self.pos[0] - self.goal[0], self.pos[1] - self.goal[1]);
        (dx * dx + dy * dy).sqrt() <= GOAL_RADIUS
    }

    fn write_obs(&self, obs: &mut [f32]) {
        obs[0] = self.pos[0] as f32;
        obs[1] = self.pos[1] as f32;
        obs[2] = self.vel[0] as f32;
        obs[3] = self.vel[1] as f32;
    }
}

impl Env for PointMaze {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (row, col) = self.starts[rng.random_range(0..self.starts.len())];
        self.pos = [row as f64, col as f64];
        for p in &mut self.pos {
            *p += rng.random_range(-0.1..0.1);
        }
        for v in &mut self.vel {
            *v = 0.1 * rng.sample::<f64, _>(StandardNormal);
        }
        self.t = 0;
        self.write_obs(obs);
    }

    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> StepResult {
        for (v, &u) in self.vel.iter_mut().zip(action) {
            *v = next_velocity(*v, u as f64);
        }
        for axis in 0..2 {
            if sweep(self.layout, &mut self.pos, axis, DT * self.vel[axis]) {
                self.vel[axis] = 0.0;
            }
        }
        self.t += 1;
        self.write_obs(obs);
        let success = self.at_goal();
        StepResult {
            reward: if success { 1.0 } else { 0.0 },
            terminated: self.terminal && success,
            truncated: self.t >= self.spec.max_steps,
            success,
        }
    }

    fn behaviour(&self, level: Level) -> Box<dyn Behaviour> {
        match level {
            Level::Expert => Box::new(WaypointExpert::new(self.layout, ExpertConfig::expert())),
            Level::Medium => Box::new(WaypointExpert::new(self.layout, ExpertConfig::medium())),
            Level::Random => Box::new(RandomBehaviour {
                low: self.spec.action_low.clone(),
                high: self.spec.action_high.clone(),
            }),
        }
    }

    fn scene(&self) -> Scene {
        Scene::Maze(self.layout)
    }
}
