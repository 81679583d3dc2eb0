//! The scripted maze expert: D4RL's waypoint controller
//! (`d4rl/pointmaze/waypoint_controller.py`) on our planner.
//!
//! Each step it finds the cell the disk is in, aims at the centre of the next
//! cell on a shortest path (at the goal centre from the goal cell and its
//! neighbours) and applies D4RL's PD law
//! `u = clip(p_gain (aim - position) + d_gain velocity, -1, 1)`, then adds
//! Gaussian noise and clips again (as `generate_maze2d_datasets.py --noisy`).
//! Replanning every step from the distance map costs four look-ups.
//!
//! Gains: D4RL's `p_gain = 10`, `d_gain = -1` work unchanged. Per axis the
//! closed loop near the aim point is `a = (gear / m) u = 23.9 (10 e - v)`:
//! natural frequency 15.4 rad/s, damping ratio 0.77, so it settles on the goal
//! within ~0.3 s without ringing; far from the aim the command saturates and
//! the disk runs at the 5 m/s velocity clip.
//!
//! Differences from D4RL: D4RL steers through every waypoint in turn (each
//! jittered by `-U(0, 1) 0.2`, a fix for its offset walls) and only advances
//! within 0.1 of it; aiming at the next cell's centre from anywhere in the
//! current cell gives the same paths with fewer stops. The medium level adds
//! detours: on entering a cell, with a per-episode probability the next aim
//! is a uniformly drawn free neighbour instead of the planned one (action
//! noise alone barely slows the saturated controller down).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::layout::{Cell, MazeLayout};
use super::planner::Planner;
use super::{Behaviour, cell_of};

/// Gains and noise of the waypoint expert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpertConfig {
    /// Proportional gain on `aim - position` (D4RL: 10).
    pub p_gain: f64,
    /// Gain on the velocity (D4RL: -1).
    pub d_gain: f64,
    /// Standard deviation of the Gaussian noise added to the clipped action.
    pub noise_std: f64,
    /// `[lo, hi]`: each episode draws `p ~ U(lo, hi)`; on entering a new cell,
    /// with probability `p` the disk heads for a uniformly drawn free
    /// neighbour instead of the planned next cell.
    pub detour_prob: [f64; 2],
}

impl ExpertConfig {
    /// Level::Expert: D4RL gains, action noise 0.1, no detours.
    pub fn expert() -> Self {
        ExpertConfig {
            p_gain: 10.0,
            d_gain: -1.0,
            noise_std: 0.1,
            detour_prob: [0.0, 0.0],
        }
    }

    /// Level::Medium: D4RL's `--noisy` action noise 0.5 plus random detours
    /// with a per-episode probability `U(0, 0.8)`, so episodes range from
    /// near-expert to wandering (success ~0.7-0.8, about half the expert's
    /// return; measured and checked by the test `levels_have_their_documented_quality`).
    pub fn medium() -> Self {
        ExpertConfig {
            noise_std: 0.5,
            detour_prob: [0.0, 0.8],
            ..Self::expert()
        }
    }
}

/// Waypoint controller following the planner's shortest paths.
#[derive(Debug, Clone)]
pub struct WaypointExpert {
    cfg: ExpertConfig,
    planner: Planner,
    goal: Cell,
    /// The cell the disk was in at the previous step (`None` before the
    /// first step of an episode).
    cell: Option<Cell>,
    /// This episode's detour probability.
    detour_prob: f64,
    /// A detour target replacing the planned next cell until the disk leaves
    /// the cell it was drawn in.
    detour: Option<Cell>,
}

impl WaypointExpert {
    pub fn new(layout: MazeLayout, cfg: ExpertConfig) -> Self {
        let planner = Planner::new(layout);
        WaypointExpert {
            cfg,
            planner,
            goal: layout.goal(),
            cell: None,
            detour_prob: 0.0,
            detour: None,
        }
    }

    /// The point to steer to from `cell` (centre coordinates), without detours.
    pub fn planned_aim(&self, cell: Cell) -> [f64; 2] {
        let aim = match self.planner.distance(cell) {
            Some(d) if d >= 2 => self.planner.next_cell(cell).unwrap_or(self.goal),
            _ => self.goal,
        };
        [aim.0 as f64, aim.1 as f64]
    }
}

impl Behaviour for WaypointExpert {
    fn reset(&mut self, _obs: &[f32]) {
        (self.cell, self.detour) = (None, None);
    }

    /// obs: `[x, y, vx, vy]` -> action: `[2]`.
    fn act(&mut self, obs: &[f32], rng: &mut ChaCha8Rng, action: &mut [f32]) {
        let pos = [obs[0] as f64, obs[1] as f64];
        let vel = [obs[2] as f64, obs[3] as f64];
        let (row, col) = cell_of(pos);
        let cell = (row.max(0) as usize, col.max(0) as usize);
        if self.cell.is_none() {
            let [lo, hi] = self.cfg.detour_prob;
            self.detour_prob = if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            };
        }
        if self.cell != Some(cell) {
            self.cell = Some(cell);
            self.detour = None;
            if self.detour_prob > 0.0 && rng.random::<f64>() < self.detour_prob {
                let options: Vec<Cell> = self.planner.neighbours(cell).collect();
                if !options.is_empty() {
                    self.detour = Some(options[rng.random_range(0..options.len())]);
                }
            }
        }
        let aim = match self.detour {
            Some((r, c)) => [r as f64, c as f64],
            None => self.planned_aim(cell),
        };
        for (axis, a) in action.iter_mut().enumerate().take(2) {
            let pd = self.cfg.p_gain * (aim[axis] - pos[axis]) + self.cfg.d_gain * vel[axis];
            let mut u = pd.clamp(-1.0, 1.0);
            if self.cfg.noise_std > 0.0 {
                u += self.cfg.noise_std * rng.sample::<f64, _>(StandardNormal);
            }
            *a = u.clamp(-1.0, 1.0) as f32;
        }
    }
}
