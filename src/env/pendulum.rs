//! Gymnasium's Pendulum-v1 (`gymnasium/envs/classic_control/pendulum.py`
//! with its 200-step `TimeLimit`) and its scripted swing-up expert.
//!
//! State `(th, thdot)`, th = 0 upright and never wrapped; observation
//! `[cos th, sin th, thdot]`; one torque in [-2, 2]; reward minus the cost of
//! the pre-step state and torque. Episodes only end by truncation.

use std::f64::consts::PI;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{Behaviour, Env, EnvSpec, Level, RandomBehaviour, Scene, StepResult};

const GRAVITY: f64 = 10.0;
const MASS: f64 = 1.0;
const LENGTH: f64 = 1.0;
const DT: f64 = 0.05;
const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f64 = 2.0;
const MAX_STEPS: usize = 200;

/// `((x + pi) mod 2pi) - pi` with Python's floored modulo: the angle in
/// [-pi, pi), 0 upright.
pub fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

/// One Pendulum-v1 step from `(th, thdot)` under torque `u`, clipped to
/// [-2, 2]; returns `(newth, newthdot, cost)`:
///
/// cost = angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2 (pre-step state),
/// newthdot = clip(thdot + (3g/(2l) sin th + 3/(m l^2) u) dt, -8, 8),
/// newth = th + newthdot dt (semi-implicit Euler).
///
/// All in f64 (NumPy 2 would round the two torque terms to f32, a difference
/// in the 8th significant digit).
pub fn pendulum_step(th: f64, thdot: f64, u: f64) -> (f64, f64, f64) {
    let u = u.clamp(-MAX_TORQUE, MAX_TORQUE);
    let cost = angle_normalize(th).powi(2) + 0.1 * thdot * thdot + 0.001 * u * u;
    let accel = 3.0 * GRAVITY / (2.0 * LENGTH) * th.sin() + 3.0 / (MASS * LENGTH * LENGTH) * u;
    let newthdot = (thdot + accel * DT).clamp(-MAX_SPEED, MAX_SPEED);
    let newth = th + newthdot * DT;
    (newth, newthdot, cost)
}

/// Gymnasium's Pendulum-v1 with its 200-step time limit.
#[derive(Debug, Clone)]
pub struct Pendulum {
    spec: EnvSpec,
    th: f64,
    thdot: f64,
    /// Steps since the last reset.
    steps: usize,
}

impl Default for Pendulum {
    fn default() -> Self {
        Self::new()
    }
}

impl Pendulum {
    /// Hanging straight down at rest until the first `reset`.
    pub fn new() -> Self {
        Self::with_state(PI, 0.0)
    }

    /// A pendulum at `(th, thdot)` with a fresh time limit (for tests and
    /// demonstrations; `reset` draws a new state).
    pub fn with_state(th: f64, thdot: f64) -> Self {
        let spec = EnvSpec {
            name: "pendulum".to_string(),
            obs_dim: 3,
            action_low: vec![-MAX_TORQUE as f32],
            action_high: vec![MAX_TORQUE as f32],
            max_steps: MAX_STEPS,
            has_success: false,
        };
        Self {
            spec,
            th,
            thdot,
            steps: 0,
        }
    }

    /// `(th, thdot)`; th is not wrapped.
    pub fn state(&self) -> (f64, f64) {
        (self.th, self.thdot)
    }

    /// obs: [3] = [cos th, sin th, thdot].
    fn write_obs(&self, obs: &mut [f32]) {
        obs[0] = self.th.cos() as f32;
        obs[1] = self.th.sin() as f32;
        obs[2] = self.thdot as f32;
    }
}

impl Env for Pendulum {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// th ~ U(-pi, pi), thdot ~ U(-1, 1) (Gymnasium's defaults).
    fn reset(&mut self, seed: u64, obs: &mut [f32]) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.th = rng.random_range(-PI..PI);
        self.thdot = rng.random_range(-1.0..1.0);
        self.steps = 0;
        self.write_obs(obs);
    }

    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> StepResult {
        let (th, thdot, cost) = pendulum_step(self.th, self.thdot, action[0] as f64);
        self.th = th;
        self.thdot = thdot;
        self.steps += 1;
        self.write_obs(obs);
        StepResult {
            reward: -cost,
            terminated: false,
            // As `TimeLimit`: the 200th step and any after it.
            truncated: self.steps >= MAX_STEPS,
            success: false,
        }
    }

    fn behaviour(&self, level: Level) -> Box<dyn Behaviour> {
        match level {
            Level::Expert => Box::new(SwingUp::expert()),
            Level::Medium => Box::new(SwingUp::medium()),
            Level::Random => Box::new(RandomBehaviour {
                low: self.spec.action_low.clone(),
                high: self.spec.action_high.clone(),
            }),
        }
    }

    fn scene(&self) -> Scene {
        Scene::Pendulum
    }
}

/// Gains of the energy-pumping swing-up with a PD catch near the top.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwingUpGains {
    /// Torque per unit of (energy excess x velocity) while swinging.
    pub pump: f64,
    /// |angle| (rad) below which the PD law takes over.
    pub catch_angle: f64,
    /// PD gains: u = -(kp angle + kd thdot). Holding needs 3 kp > 15.
    pub kp: f64,
    pub kd: f64,
}

/// The controller's torque at `(th, thdot)`, in [-2, 2].
///
/// Swing: with thddot = 15 sin th + 3u the energy
/// E = thdot^2 / 2 + 15 (cos th - 1) is 0 upright at rest and
/// dE/dt = 3 u thdot, so u = -pump E thdot pushes along the velocity while
/// E < 0 and brakes while E > 0. Catch: PD on the normalised angle.
pub fn swing_up_torque(th: f64, thdot: f64, gains: &SwingUpGains) -> f64 {
    let angle = angle_normalize(th);
    let u = if angle.abs() < gains.catch_angle {
        -(gains.kp * angle + gains.kd * thdot)
    } else {
        let energy = 0.5 * thdot * thdot + 1.5 * GRAVITY / LENGTH * (angle.cos() - 1.0);
        // At rest the product vanishes: push anyway, or it stays down.
        let velocity = if thdot == 0.0 { 1.0 } else { thdot };
        -gains.pump * energy * velocity
    };
    u.clamp(-MAX_TORQUE, MAX_TORQUE)
}

/// The scripted behaviour: `swing_up_torque` on the state read back from the
/// observation, plus N(0, sigma^2) torque noise; an episode uses the `sloppy`
/// gains with probability `p_sloppy`.
#[derive(Debug, Clone)]
struct SwingUp {
    gains: SwingUpGains,
    sloppy: SwingUpGains,
    p_sloppy: f64,
    sigma: f64,
    /// The current episode's gains, drawn at its first action (`reset` has
    /// no random stream).
    episode: Option<SwingUpGains>,
}

impl SwingUp {
    /// Tuned on 100 episodes (mean return about -155 with sigma 0.1).
    const EXPERT: SwingUpGains = SwingUpGains {
        pump: 0.3,
        catch_angle: 0.8,
        kp: 8.0,
        kd: 2.0,
    };

    fn expert() -> Self {
        Self {
            gains: Self::EXPERT,
            sloppy: Self::EXPERT,
            p_sloppy: 0.0,
            sigma: 0.1,
            episode: None,
        }
    }

    /// Much more noise and, in half of the episodes, a PD barely stronger
    /// than gravity (3 x 5.2 vs 15) that lets the pendulum fall over again.
    fn medium() -> Self {
        let sloppy = SwingUpGains {
            kp: 5.2,
            kd: 0.3,
            ..Self::EXPERT
        };
        Self {
            gains: Self::EXPERT,
            sloppy,
            p_sloppy: 0.5,
            sigma: 0.8,
            episode: None,
        }
    }
}

impl Behaviour for SwingUp {
    fn reset(&mut self, _obs: &[f32]) {
        self.episode = None;
    }

    fn act(&mut self, obs: &[f32], rng: &mut ChaCha8Rng, action: &mut [f32]) {
        let gains = *self.episode.get_or_insert_with(|| {
            if self.p_sloppy > 0.0 && rng.random_bool(self.p_sloppy) {
                self.sloppy
            } else {
                self.gains
            }
        });
        let th = (obs[1] as f64).atan2(obs[0] as f64);
        let noise: f64 = rng.sample(StandardNormal);
        action[0] = (swing_up_torque(th, obs[2] as f64, &gains) + self.sigma * noise) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::super::seed_for;
    use super::*;

    fn step_from(th: f64, thdot: f64, u: f32) -> (StepResult, (f64, f64), [f32; 3]) {
        let mut env = Pendulum::with_state(th, thdot);
        let mut obs = [0f32; 3];
        let result = env.step(&[u], &mut obs);
        (result, env.state(), obs)
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-6, "{actual} != {expected}");
    }

    #[test]
    fn step_matches_gymnasium_by_hand() {
        // (th, thdot) = (1.0, 0.5), u = 1.5:
        // cost = 1.0^2 + 0.1 * 0.25 + 0.001 * 2.25 = 1 + 0.025 + 0.00225 = 1.02725
        // sin 1 = 0.841470985; 15 sin 1 = 12.622064772; + 3 * 1.5 = 17.122064772
        // newthdot = 0.5 + 17.122064772 * 0.05 = 0.5 + 0.856103239 = 1.356103239
        // newth = 1.0 + 1.356103239 * 0.05 = 1.067805162
        // obs = [cos 1.067805162, sin 1.067805162, 1.356103239]
        //     = [0.482048384, 0.876144597, 1.356103239]
        let (result, (th, thdot), obs) = step_from(1.0, 0.5, 1.5);
        assert_close(result.reward, -1.02725);
        assert_close(thdot, 1.356103239);
        assert_close(th, 1.067805162);
        let expected = [0.482048384, 0.876144597, 1.356103239];
        for (o, e) in obs.iter().zip(expected) {
            assert!((*o as f64 - e).abs() < 1e-6, "{obs:?}");
        }
        assert!(!result.terminated && !result.truncated && !result.success);
    }

    #[test]
    fn torque_is_clipped_before_cost_and_dynamics() {
        // (0.3, -1.0), u = 5 -> 2:
        // cost = 0.09 + 0.1 * 1 + 0.001 * 4 = 0.194 (not 0.001 * 25)
        // 15 sin 0.3 = 15 * 0.295520207 = 4.432803100; + 3 * 2 = 10.432803100
        // newthdot = -1 + 10.432803100 * 0.05 = -1 + 0.521640155 = -0.478359845
        // newth = 0.3 - 0.478359845 * 0.05 = 0.3 - 0.023917992 = 0.276082008
        let (result, (th, thdot), _) = step_from(0.3, -1.0, 5.0);
        assert_close(result.reward, -0.194);
        assert_close(thdot, -0.478359845);
        assert_close(th, 0.276082008);
        // The lower bound too: u = -5 acts as -2.
        let (low, state, _) = step_from(0.3, -1.0, -5.0);
        let (two, expected, _) = step_from(0.3, -1.0, -2.0);
        assert_eq!((low, state), (two, expected));
    }

    #[test]
    fn velocity_is_clipped_at_max_speed() {
        // (1.5, 7.5), u = 2: 15 sin 1.5 = 14.962424799; + 6 = 20.962424799
        // newthdot = 7.5 + 1.048121240 = 8.548121240 -> 8; newth = 1.5 + 8 * 0.05 = 1.9
        // cost = 2.25 + 0.1 * 56.25 + 0.004 = 7.879
        let (result, (th, thdot), obs) = step_from(1.5, 7.5, 2.0);
        assert_close(result.reward, -7.879);
        assert_eq!(thdot, 8.0);
        assert_close(th, 1.9);
        assert_eq!(obs[2], 8.0);
        // Mirrored: -7.5 - 1.048121240 -> -8.
        let (_, (th, thdot), _) = step_from(-1.5, -7.5, -2.0);
        assert_eq!(thdot, -8.0);
        assert_close(th, -1.9);
    }

    #[test]
    fn cost_uses_the_normalised_angle() {
        // angle_normalize(3.5) = ((3.5 + pi) mod 2pi) - pi = 3.5 - 2pi = -2.783185307
        // (th, thdot) = (3.5, -2), u = -1:
        // cost = 2.783185307^2 + 0.1 * 4 + 0.001 * 1 = 7.746120454 + 0.401 = 8.147120454
        // sin 3.5 = -0.350783228; 15 sin 3.5 = -5.261748415; - 3 = -8.261748415
        // newthdot = -2 - 0.413087421 = -2.413087421; newth = 3.5 - 0.120654371 = 3.379345629
        let (result, (th, thdot), _) = step_from(3.5, -2.0, -1.0);
        assert_close(angle_normalize(3.5), -2.783185307);
        assert_close(result.reward, -8.147120454);
        assert_close(thdot, -2.413087421);
        // Not wrapped in the state.
        assert_close(th, 3.379345629);
        // angle_normalize(-4) = -4 + 2pi = 2.283185307; (th, thdot) = (-4, 1), u = 0.5:
        // cost = 5.212935147 + 0.1 + 0.00025 = 5.313185147
        let (result, _, _) = step_from(-4.0, 1.0, 0.5);
        assert_close(angle_normalize(-4.0), 2.283185307);
        assert_close(result.reward, -5.313185147);
        // Python's modulo: pi and -pi both map to -pi.
        assert_eq!(angle_normalize(PI), -PI);
        assert_eq!(angle_normalize(-PI), -PI);
        assert_close(angle_normalize(2.0 * PI + 0.25), 0.25);
    }

    #[test]
    fn truncates_exactly_at_step_200_and_never_terminates() {
        let mut env = Pendulum::new();
        let mut obs = [0f32; 3];
        for episode in 0..2 {
            env.reset(seed_for(1, episode), &mut obs);
            for t in 1..=200 {
                let result = env.step(&[1.0], &mut obs);
                assert!(!result.terminated && !result.success);
                assert_eq!(result.truncated, t == 200, "step {t}");
            }
        }
        // Stepping on past the limit stays truncated, as under `TimeLimit`.
        assert!(env.step(&[0.0], &mut obs).truncated);
    }

    #[test]
    fn reset_is_seeded_and_within_gymnasium_ranges() {
        let mut env = Pendulum::new();
        let (mut a, mut b) = ([0f32; 3], [0f32; 3]);
        env.reset(7, &mut a);
        env.step(&[2.0], &mut b);
        env.reset(7, &mut b);
        assert_eq!(a, b);
        env.reset(8, &mut b);
        assert_ne!(a, b);
        let (mut negative, mut positive) = (false, false);
        for k in 0..500 {
            env.reset(seed_for(3, k), &mut a);
            let (th, thdot) = env.state();
            assert!((-PI..PI).contains(&th) && (-1.0..1.0).contains(&thdot));
            assert!((-1.0..=1.0).contains(&a[2]));
            assert!((a[0] * a[0] + a[1] * a[1] - 1.0).abs() < 1e-6);
            negative |= th < -3.0;
            positive |= th > 3.0;
        }
        assert!(negative && positive, "th should cover (-pi, pi)");
    }

    #[test]
    fn spec_is_pendulum_v1() {
        let spec = Pendulum::new().spec().clone();
        assert_eq!(spec.name, "pendulum");
        assert_eq!((spec.obs_dim, spec.act_dim(), spec.max_steps), (3, 1, 200));
        assert_eq!((spec.action_low, spec.action_high), (vec![-2.0], vec![2.0]));
        assert!(!spec.has_success);
    }

    /// Per episode: (return, mean |angle| over the last 50 steps), rolled as
    /// `generate::record` does (episode k reset with `seed_for(seed, k)`,
    /// actions from one stream seeded with `seed`, clipped to the bounds).
    fn roll(level: Level, episodes: u64, seed: u64) -> Vec<(f64, f64)> {
        let mut env = Pendulum::new();
        let mut behaviour = env.behaviour(level);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut obs, mut action) = ([0f32; 3], [0f32; 1]);
        let mut episodes_out = vec![];
        for k in 0..episodes {
            env.reset(seed_for(seed, k), &mut obs);
            behaviour.reset(&obs);
            let (mut ret, mut late_angle) = (0.0, 0.0);
            for t in 0..MAX_STEPS {
                behaviour.act(&obs, &mut rng, &mut action);
                action[0] = action[0].clamp(-2.0, 2.0);
                let result = env.step(&action, &mut obs);
                ret += result.reward;
                if t >= MAX_STEPS - 50 {
                    late_angle += angle_normalize(env.state().0).abs() / 50.0;
                }
                assert_eq!(result.truncated, t + 1 == MAX_STEPS);
            }
            episodes_out.push((ret, late_angle));
        }
        episodes_out
    }

    fn mean_return(episodes: &[(f64, f64)]) -> f64 {
        episodes.iter().map(|(ret, _)| ret).sum::<f64>() / episodes.len() as f64
    }

    #[test]
    fn expert_beats_medium_beats_random() {
        let expert = mean_return(&roll(Level::Expert, 20, 0));
        let medium = mean_return(&roll(Level::Medium, 20, 0));
        let random = mean_return(&roll(Level::Random, 20, 0));
        assert!(expert > -250.0, "expert {expert}");
        assert!(expert > medium + 100.0, "expert {expert}, medium {medium}");
        assert!(medium > random + 300.0, "medium {medium}, random {random}");
    }

    #[test]
    fn expert_holds_the_pendulum_up() {
        for (k, (_, late_angle)) in roll(Level::Expert, 20, 0).into_iter().enumerate() {
            assert!(
                late_angle < 0.3,
                "episode {k}: mean |angle| {late_angle} over the last 50 steps"
            );
        }
    }

    #[test]
    fn swing_up_starts_from_rest_at_the_bottom() {
        // thdot = 0 exactly must not stall the energy pump.
        let u = swing_up_torque(PI, 0.0, &SwingUp::EXPERT);
        assert!(u != 0.0);
        // Near the top the PD law pushes back towards upright.
        assert!(swing_up_torque(0.2, 0.0, &SwingUp::EXPERT) < 0.0);
        assert!(swing_up_torque(-0.2, 0.0, &SwingUp::EXPERT) > 0.0);
    }

    #[test]
    fn behaviours_are_reproducible_from_the_stream() {
        for level in [Level::Expert, Level::Medium, Level::Random] {
            assert_eq!(roll(level, 3, 5), roll(level, 3, 5));
        }
    }
}
