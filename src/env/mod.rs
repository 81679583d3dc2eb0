//! Environments to evaluate in and to generate datasets from: the `Env`
//! trait, the built-in tasks (Gymnasium's Pendulum-v1 and point-mass mazes in
//! the D4RL maze2d layouts), their scripted experts and dataset generators.

mod generate;
mod maze;
mod pendulum;

use thiserror::Error;

pub use generate::{Behaviour, Level, RandomBehaviour, generate, seed_for};
pub use maze::{GOAL_RADIUS, MazeLayout, PointMaze};
pub use pendulum::Pendulum;

/// Shapes, bounds and limits of an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSpec {
    /// Registry name, e.g. `pendulum`.
    pub name: String,
    /// O: observation width.
    pub obs_dim: usize,
    /// `[A]` action bounds; actions outside are clipped by the environment.
    pub action_low: Vec<f32>,
    pub action_high: Vec<f32>,
    /// Steps before truncation (the time limit).
    pub max_steps: usize,
    /// Whether the task has a success criterion (reported as a success rate).
    pub has_success: bool,
}

impl EnvSpec {
    /// A: action width.
    pub fn act_dim(&self) -> usize {
        self.action_low.len()
    }
}

/// What one step returned (the observation is written into the caller's
/// buffer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepResult {
    pub reward: f64,
    /// An absorbing state was reached: no bootstrap past it.
    pub terminated: bool,
    /// The time limit cut the episode: the state after it is ordinary.
    pub truncated: bool,
    /// The task's success criterion holds after this step.
    pub success: bool,
}

/// A Gymnasium-style environment with its own time limit. No allocation per
/// step: observations are written into `obs: [O]`.
pub trait Env: Send {
    fn spec(&self) -> &EnvSpec;
    /// Starts an episode from a state drawn with `seed`; writes the first
    /// observation.
    fn reset(&mut self, seed: u64, obs: &mut [f32]);
    /// Applies `action: [A]` (clipped to the bounds); writes the next
    /// observation. After `terminated` or `truncated`, call `reset`.
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> StepResult;
    /// The scripted data-collection policy of this task at `level`.
    fn behaviour(&self, level: Level) -> Box<dyn Behaviour>;
    /// How a picture of this task's episodes is drawn
    /// (`chunkql eval --plot`); by default, as signals over time.
    fn scene(&self) -> Scene {
        Scene::Signals
    }
}

/// What a picture of an environment's episodes shows (`eval::plot_rollouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scene {
    /// The maze's walls and goal seen from above, each episode's path
    /// through it (observations `[row, col, ...]` in cell units).
    Maze(MazeLayout),
    /// The pendulum's angle and torque over time (observations
    /// `[cos th, sin th, thdot]`).
    Pendulum,
    /// Every observation and action dimension over time.
    Signals,
}

/// Unknown environment name.
#[derive(Debug, Error, PartialEq)]
#[error("unknown environment `{name}` (known: {known})")]
pub struct UnknownEnv {
    pub name: String,
    pub known: String,
}

/// Names `make` accepts.
pub const ENV_NAMES: [&str; 7] = [
    "pendulum",
    "pointmaze-umaze",
    "pointmaze-medium",
    "pointmaze-large",
    "pointmaze-umaze-terminal",
    "pointmaze-medium-terminal",
    "pointmaze-large-terminal",
];

/// Builds a built-in environment by name. `pointmaze-*` run to their time
/// limit (reward 1 for every step at the goal, as in D4RL maze2d);
/// `pointmaze-*-terminal` terminate on reaching the goal.
pub fn make(name: &str) -> Result<Box<dyn Env>, UnknownEnv> {
    let maze = |layout: MazeLayout, terminal: bool| -> Box<dyn Env> {
        Box::new(PointMaze::new(layout, terminal))
    };
    Ok(match name {
        "pendulum" => Box::new(Pendulum::new()),
        "pointmaze-umaze" => maze(MazeLayout::UMaze, false),
        "pointmaze-medium" => maze(MazeLayout::Medium, false),
        "pointmaze-large" => maze(MazeLayout::Large, false),
        "pointmaze-umaze-terminal" => maze(MazeLayout::UMaze, true),
        "pointmaze-medium-terminal" => maze(MazeLayout::Medium, true),
        "pointmaze-large-terminal" => maze(MazeLayout::Large, true),
        _ => {
            return Err(UnknownEnv {
                name: name.to_string(),
                known: ENV_NAMES.join(", "),
            });
        }
    })
}
