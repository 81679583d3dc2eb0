//! Evaluation mechanics on a fake environment with a scripted actor: chunk
//! execution, history padding, episodes that end at different times, errors.

use std::cell::RefCell;

use tch::{Device, Tensor};

use super::*;
use crate::env::{Behaviour, EnvSpec, Level, RandomBehaviour, StepResult};

/// obs = [t] (steps taken); reward = the action; truncated after `limit`
/// steps, or terminated after `1 + seed % 4` steps when `terminate_early`.
struct Counter {
    spec: EnvSpec,
    t: usize,
    end: usize,
    terminate_early: bool,
}

impl Counter {
    fn new(limit: usize, terminate_early: bool) -> Self {
        let spec = EnvSpec {
            name: "counter".into(),
            obs_dim: 1,
            action_low: vec![-1e6],
            action_high: vec![1e6],
            max_steps: limit,
            has_success: true,
        };
        Counter {
            spec,
            t: 0,
            end: limit,
            terminate_early,
        }
    }
}

impl Env for Counter {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) {
        self.t = 0;
        self.end = if self.terminate_early {
            1 + (seed % 4) as usize
        } else {
            self.spec.max_steps
        };
        obs[0] = 0.0;
    }
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> StepResult {
        self.t += 1;
        obs[0] = self.t as f32;
        let over = self.t >= self.end;
        StepResult {
            reward: action[0] as f64,
            terminated: over && self.terminate_early,
            truncated: over && !self.terminate_early,
            success: action[0] >= 40.0,
        }
    }
    fn behaviour(&self, _level: Level) -> Box<dyn Behaviour> {
        Box::new(RandomBehaviour {
            low: vec![-1.0],
            high: vec![1.0],
        })
    }
}

/// H = 3, To = 2: chunk j-th action = 10 * (last obs of the history) + j;
/// records every history it was given.
struct Script {
    histories: RefCell<Vec<Vec<f32>>>,
}

impl ChunkActor for Script {
    fn dims(&self) -> ChunkDims {
        ChunkDims {
            obs_dim: 1,
            act_dim: 1,
            horizon: 3,
            obs_horizon: 2,
        }
    }
    fn act(&self, obs_history: &Tensor, _noise: &mut NoiseSource) -> Tensor {
        let b = obs_history.size()[0];
        let flat: Vec<f32> = Vec::try_from(obs_history.flatten(0, -1)).unwrap();
        let mut out = Vec::new();
        for h in flat.chunks(2) {
            self.histories.borrow_mut().push(h.to_vec());
            out.extend((0..3).map(|j| 10.0 * h[1] + j as f32));
        }
        Tensor::from_slice(&out).view([b, 3, 1])
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
}

fn script() -> Script {
    Script {
        histories: RefCell::new(Vec::new()),
    }
}

#[test]
fn executes_the_first_steps_of_each_chunk_and_replans() {
    let actor = script();
    let cfg = EvalConfig {
        episodes: 1,
        execute: Some(2),
        seed: 0,
        ensemble: None,
    };
    let report = evaluate_with(&actor, &|| Box::new(Counter::new(5, false)), cfg).unwrap();
    // Queries at t = 0 (history padded with the first obs), 2 and 4:
    // actions 0, 1 | 20, 21 | 40 -> return 82; success (an action >= 40).
    assert_eq!(
        *actor.histories.borrow(),
        vec![vec![0.0, 0.0], vec![1.0, 2.0], vec![3.0, 4.0]]
    );
    assert_eq!(
        report.episodes,
        vec![EpisodeResult {
            episode_return: 82.0,
            length: 5,
            success: true
        }]
    );
    assert_eq!(report.execute, 2);
}

#[test]
fn executes_whole_chunks_by_default() {
    let actor = script();
    let cfg = EvalConfig {
        episodes: 1,
        execute: None,
        seed: 0,
        ensemble: None,
    };
    let report = evaluate_with(&actor, &|| Box::new(Counter::new(5, false)), cfg).unwrap();
    // 0, 1, 2 | 30, 31 (truncated at 5) -> 64.
    assert_eq!(report.episodes[0].episode_return, 64.0);
    assert_eq!(
        *actor.histories.borrow(),
        vec![vec![0.0, 0.0], vec![2.0, 3.0]]
    );
    assert_eq!(report.success_rate.unwrap().mean, 0.0);
}

#[test]
fn episodes_that_end_early_stop_and_the_rest_go_on() {
    let actor = script();
    let cfg = EvalConfig {
        episodes: 6,
        execute: Some(1),
        seed: 3,
        ensemble: None,
    };
    let report = evaluate_with(&actor, &|| Box::new(Counter::new(100, true)), cfg).unwrap();
    for (k, episode) in report.episodes.iter().enumerate() {
        let length = 1 + (seed_for(3, k as u64) % 4) as usize;
        // Action at step i is 10 * i (the last obs is i): return 10 * sum(0..length).
        let expected: f64 = (0..length).map(|i| 10.0 * i as f64).sum();
        assert_eq!(
            (episode.length, episode.episode_return),
            (length, expected),
            "episode {k}"
        );
    }
    // The six lengths, 1 + SplitMix64(3, k) % 4 for k = 0..6 (worked out
    // outside this crate): 1, 4, 1, 4, 3, 2; returns 10 * L (L - 1) / 2.
    let returns: Vec<f64> = report.episodes.iter().map(|e| e.episode_return).collect();
    assert_eq!(returns, vec![0.0, 60.0, 0.0, 60.0, 30.0, 10.0]);
    // n = 6, sum 160 -> mean 80/3 = 26.6667.
    // Deviations -80/3, 100/3, -80/3, 100/3, 10/3, -50/3; squares sum
    //   (6400 + 10000 + 6400 + 10000 + 100 + 2500) / 9 = 35400/9 = 3933.33
    //   (check: sum r^2 - n mean^2 = 8200 - 6 * 6400/9 = 3933.33).
    // s^2 = 3933.33 / 5 = 786.667; se = sqrt(786.667 / 6) = sqrt(131.111)
    //   = 11.45038; t_{5, 0.975} = 2.571 -> half width 29.43892,
    //   low 26.66667 - 29.43892 = -2.77225.
    let ci = report.episode_return;
    assert_eq!(ci.n, 6);
    assert!((ci.mean - 80.0 / 3.0).abs() < 1e-12, "{ci:?}");
    assert!((ci.half_width() - 29.43892).abs() < 1e-4, "{ci:?}");
    assert!((ci.low + 2.77225).abs() < 1e-4, "{ci:?}");
    // No action reaches 40 (the largest is 10 * 3): 0 successes of 6.
    // Wilson at p = 0: low 0, high = (z^2/n) / (1 + z^2/n)
    //   = (3.8416 / 6) / (1 + 0.640267) = 0.640267 / 1.640267 = 0.390343.
    let success = report.success_rate.unwrap();
    assert_eq!((success.mean, success.low, success.n), (0.0, 0.0, 6));
    assert!((success.high - 0.390343).abs() < 1e-6, "{success:?}");
}

#[test]
fn bad_settings_are_errors() {
    let actor = script();
    let counter = || -> Box<dyn Env> { Box::new(Counter::new(5, false)) };
    let run = |episodes, execute| {
        evaluate_with(
            &actor,
            &counter,
            EvalConfig {
                episodes,
                execute,
                seed: 0,
                ensemble: None,
            },
        )
        .unwrap_err()
    };
    assert_eq!(
        run(1, Some(0)),
        EvalError::Execute {
            execute: 0,
            horizon: 3
        }
    );
    assert_eq!(
        run(1, Some(4)),
        EvalError::Execute {
            execute: 4,
            horizon: 3
        }
    );
    assert_eq!(
        run(1, Some(4)).to_string(),
        "execute must lie in 1..=3 (the chunk's length H), got 4"
    );
    assert_eq!(run(0, None), EvalError::NoEpisodes);
    let err = evaluate(
        &actor,
        "pendulum",
        EvalConfig {
            episodes: 1,
            execute: None,
            seed: 0,
            ensemble: None,
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pendulum has observation width 3 and action width 1, the policy 1 and 1"
    );
    let err = evaluate(
        &actor,
        "nowhere",
        EvalConfig {
            episodes: 1,
            execute: None,
            seed: 0,
            ensemble: None,
        },
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("unknown environment `nowhere`"));
}

/// An actor whose chunks are not `[B, H, A]` is a bug in the actor: a panic
/// naming the shape, never actions read from the wrong rows.
#[test]
#[should_panic(expected = "the actor's chunks: [B, H, A]")]
fn an_actor_of_the_wrong_shape_is_caught() {
    // Two actions per chunk where H = 3.
    let short = FnActor(|obs_history| {
        Tensor::zeros(
            [obs_history.size()[0], 2, 1],
            (tch::Kind::Float, Device::Cpu),
        )
    });
    let cfg = EvalConfig {
        episodes: 2,
        execute: None,
        seed: 0,
        ensemble: None,
    };
    let _ = evaluate_with(&short, &|| Box::new(Counter::new(5, false)), cfg);
}

/// An actor of the script's widths on the CPU whose chunks the function
/// makes from the histories `[B, To, O]`.
struct FnActor(fn(&Tensor) -> Tensor);

impl ChunkActor for FnActor {
    fn dims(&self) -> ChunkDims {
        script().dims()
    }
    fn act(&self, obs_history: &Tensor, _noise: &mut NoiseSource) -> Tensor {
        (self.0)(obs_history)
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
}

/// A NaN action is an error naming the episode and step, not a step of the
/// environment.
#[test]
fn a_policy_proposing_nan_is_refused() {
    let nan = FnActor(|obs_history| {
        // Episode 1 (row 1 of the first call) gets a NaN in its last step.
        let b = obs_history.size()[0];
        let mut out = vec![0f32; b as usize * 3];
        if b == 2 {
            out[5] = f32::NAN;
        }
        Tensor::from_slice(&out).view([b, 3, 1])
    });
    let cfg = EvalConfig {
        episodes: 2,
        execute: None,
        seed: 0,
        ensemble: None,
    };
    let err = evaluate_with(&nan, &|| Box::new(Counter::new(5, false)), cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the policy proposed a chunk with a NaN or infinite action for episode 1 at its step 0: \
         its network has diverged"
    );
}

#[test]
fn a_recording_keeps_every_step_and_changes_nothing() {
    let cfg = EvalConfig {
        episodes: 6,
        execute: Some(2),
        seed: 3,
        ensemble: None,
    };
    let counter = || -> Box<dyn Env> { Box::new(Counter::new(100, true)) };
    let plain = evaluate_with(&script(), &counter, cfg).unwrap();
    let (report, recording) = evaluate_recorded_with(&script(), &counter, cfg).unwrap();
    assert_eq!(report, plain);
    assert_eq!(recording.env, "counter");
    assert_eq!(recording.scene, Scene::Signals);
    assert_eq!((recording.obs_dim, recording.act_dim), (1, 1));
    assert_eq!(recording.execute, 2);
    // Lengths 1, 4, 1, 4, 3, 2 (seed 3, see above). The observation is the
    // step count: 0, 1, ..., L. Chunks are asked for at t = 0 (history
    // [0, 0] -> 0, 1, 2) and t = 2 (history [1, 2] -> 20, 21, 22), two
    // steps of each executed: actions 0, 1, 20, 21 cut at L.
    let lengths = [1, 4, 1, 4, 3, 2];
    let all_actions = [0.0, 1.0, 20.0, 21.0];
    for (k, &length) in lengths.iter().enumerate() {
        let rollout = &recording.rollouts[k];
        let steps: Vec<f32> = (0..=length).map(|t| t as f32).collect();
        assert_eq!(rollout.observations, steps, "episode {k}");
        assert_eq!(rollout.actions, all_actions[..length], "episode {k}");
        assert!(!rollout.success, "no action reaches 40");
        assert_eq!(recording.steps(k), length);
        assert_eq!(report.episodes[k].length, length);
    }
    assert_eq!(recording.chunk_starts(4).collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(recording.chunk_starts(5).collect::<Vec<_>>(), vec![0, 2, 4]);
    // Five steps to the time limit: the third chunk's first action, 40,
    // is a success (see the first test).
    let cfg = EvalConfig { episodes: 1, ..cfg };
    let five = || -> Box<dyn Env> { Box::new(Counter::new(5, false)) };
    let (report, recording) = evaluate_recorded_with(&script(), &five, cfg).unwrap();
    assert!(report.episodes[0].success);
    let rollout = &recording.rollouts[0];
    assert_eq!(rollout.actions, [0.0, 1.0, 20.0, 21.0, 40.0]);
    assert!(rollout.success);
}

#[test]
fn the_built_in_tasks_name_their_pictures() {
    use crate::env::MazeLayout;
    let scene = |name: &str| make(name).unwrap().scene();
    assert_eq!(scene("pendulum"), Scene::Pendulum);
    assert_eq!(scene("pointmaze-umaze"), Scene::Maze(MazeLayout::UMaze));
    assert_eq!(
        scene("pointmaze-large-terminal"),
        Scene::Maze(MazeLayout::Large)
    );
}

#[test]
fn temporal_ensembling_asks_every_step_and_averages_the_proposals() {
    let actor = script();
    let cfg = EvalConfig {
        episodes: 1,
        execute: None,
        seed: 0,
        ensemble: Some(0.0),
    };
    let counter = || -> Box<dyn Env> { Box::new(Counter::new(5, false)) };
    let (report, recording) = evaluate_recorded_with(&actor, &counter, cfg).unwrap();
    // Asked at every step: histories [t - 1, t] (padded at t = 0).
    assert_eq!(
        *actor.histories.borrow(),
        vec![
            vec![0.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 2.0],
            vec![2.0, 3.0],
            vec![3.0, 4.0]
        ]
    );
    // The chunk asked for at t is [10t, 10t + 1, 10t + 2]; the plain mean
    // of the proposals for t (ensemble.rs): 0, 5.5, then 10t - 9.
    assert_eq!(recording.rollouts[0].actions, [0.0, 5.5, 11.0, 21.0, 31.0]);
    assert_eq!(report.episodes[0].episode_return, 68.5);
    assert!(!report.episodes[0].success, "no action reaches 40");
    assert_eq!((report.execute, recording.execute), (1, 1));
    assert_eq!(report.ensemble, Some(0.0));
    assert!(
        report
            .to_string()
            .starts_with("counter: 1 episode (temporal ensembling, m = 0), return 68.5"),
        "{report}"
    );
    // execute 1 is the same thing; anything else, or an m that is not a
    // number, is refused.
    let once = EvalConfig {
        execute: Some(1),
        ..cfg
    };
    assert_eq!(evaluate_with(&script(), &counter, once).unwrap(), report);
    let twice = EvalConfig {
        execute: Some(2),
        ..cfg
    };
    let err = evaluate_with(&script(), &counter, twice).unwrap_err();
    assert_eq!(err, EvalError::EnsembleExecute { execute: 2 });
    let nan = EvalConfig {
        ensemble: Some(f64::NAN),
        ..cfg
    };
    assert!(matches!(
        evaluate_with(&script(), &counter, nan),
        Err(EvalError::EnsembleWeight { .. })
    ));
}
