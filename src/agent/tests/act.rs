//! `act` with a real action range: the policy's chunk in [-1, 1] comes back in
//! raw action units; with best-of-N the candidate with the highest
//! min(Q1, Q2) of each state is returned whole; the EMA policy acts when
//! `act_with_ema` is set, the online one when not. For both policies.

use tch::{Device, Kind, Tensor, nn};

use super::*;
use crate::agent::{Algorithm, ChunkAgent, ChunkPolicy};
use crate::chunk::ChunkDims;
use crate::data::Normalizer;
use crate::noise::NoiseSource;
use crate::policy::{ConsistencyPolicy, DiffusionPolicy};

const H: usize = 3;
const A: usize = 2;
/// Action bounds: dimension 0 in [0, 10], dimension 1 in [-3, 1]; a scaled
/// action x maps to low + (x + 1) (high - low) / 2.
const LOW: [f32; A] = [0.0, -3.0];
const HIGH: [f32; A] = [10.0, 1.0];
/// Observation standardisation: (o - 1) / 2.
const OBS_MEAN: f32 = 1.0;
const OBS_STD: f32 = 2.0;

fn normalizer() -> Normalizer {
    Normalizer {
        obs_mean: vec![OBS_MEAN],
        obs_std: vec![OBS_STD],
        ..Normalizer::identity(1, A)
    }
    .with_action_bounds(LOW.to_vec(), HIGH.to_vec())
}

fn agent<P: ChunkPolicy>(change: impl FnOnce(&mut AgentConfig)) -> ChunkAgent<P> {
    one_thread();
    let mut cfg = small_config(8);
    linear_critics(&mut cfg);
    change(&mut cfg);
    let dims = ChunkDims {
        obs_dim: 1,
        act_dim: A,
        horizon: H,
        obs_horizon: 1,
    };
    ChunkAgent::<P>::new(cfg, dims, normalizer(), Device::Cpu, 0).unwrap()
}

/// Raw observation histories `[n, 1, 1]`.
fn histories(raw: &[f32]) -> Tensor {
    Tensor::from_slice(raw).view([raw.len() as i64, 1, 1])
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float))
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn assert_close(got: &[f64], expected: &[f64], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() < 1e-4,
            "{what}: got {got:?}\nexpected {expected:?}"
        );
    }
}

/// Scaled chunk `[H*A]` (row-major over steps, then action dimensions) ->
/// raw action units, by hand.
fn unscale(scaled: &[f64]) -> Vec<f64> {
    scaled
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let (low, high) = (f64::from(LOW[i % A]), f64::from(HIGH[i % A]));
            low + (x + 1.0) * (high - low) / 2.0
        })
        .collect()
}

/// Makes the `mlp` policy network in `vs` output a constant, so that with
/// silent noise the policy samples exactly `chunk` (`[H*A]`, each -1, 0 or
/// +1): a zero output weight, and a bias of 0 (the sample stays 0, see
/// `scale_policy_output`) or +-1e4, which drives each step's prediction of
/// the clean chunk past the bound, where it is clamped. DDPM predicts the
/// noise (x0 = (x - sqrt(1 - abar) eps) / sqrt(abar), so eps = -1e4 gives
/// +1; its last step returns that x0: posterior coefficients 1 and 0); the
/// consistency model returns c_skip x + c_out f with c_out > 0 (f = 1e4
/// gives +1).
fn pin_policy<P: ChunkPolicy>(vs: &nn::VarStore, chunk: &[f32]) {
    let sign = match P::ALGORITHM {
        Algorithm::Dql => -1.0,
        Algorithm::Cpql => 1.0,
    };
    let bias: Vec<f32> = chunk.iter().map(|c| c * sign * 1e4).collect();
    let vars = vs.variables();
    crate::nn::no_grad(|| {
        let _ = vars["net.mlp.out.weight"].shallow_clone().zero_();
        vars["net.mlp.out.bias"]
            .shallow_clone()
            .copy_(&Tensor::from_slice(&bias));
    });
}

/// Scaled chunks for the tests, each element -1, 0 or +1; every element of
/// `OTHER` differs from the same element of `CHUNK`.
const CHUNK: [f32; H * A] = [1.0, -1.0, 0.0, 1.0, -1.0, 0.0];
const OTHER: [f32; H * A] = [-1.0, 0.0, 1.0, -1.0, 0.0, 1.0];

/// (a) With silent noise both networks sample `CHUNK`; `act` returns it in
/// raw units, for every state: [[10, -3], [5, 1], [0, -1]].
fn act_returns_raw_action_units<P: ChunkPolicy>() {
    let agent = agent::<P>(|_| {});
    pin_policy::<P>(&agent.policy_vs, &CHUNK);
    pin_policy::<P>(&agent.ema_vs, &CHUNK);
    let raw = agent.act(
        &histories(&[0.5, -4.0]),
        &mut NoiseSource::silent(Device::Cpu),
    );
    assert_eq!(raw.size(), vec![2, H as i64, A as i64]);
    // By hand: dimension 0: +1 -> 10, 0 -> 5, -1 -> 0; dimension 1: -1 -> -3,
    // +1 -> 1, 0 -> -1. Without the unscaling the chunk would come back as
    // [1, -1, 0, 1, -1, 0]; with one dimension's bounds for both, or with
    // low + x (high - low) (0 and -1 move), other numbers.
    let expected = [10.0, -3.0, 5.0, 1.0, 0.0, -1.0];
    assert_close(&unscale(&CHUNK.map(f64::from)), &expected, "by hand");
    assert_close(&values(&raw), &[expected, expected].concat(), "act");
}

#[test]
fn diffusion_ql_acts_in_raw_action_units() {
    act_returns_raw_action_units::<DiffusionPolicy>();
}

#[test]
fn cpql_acts_in_raw_action_units() {
    act_returns_raw_action_units::<ConsistencyPolicy>();
}

/// (c) The online policy samples `CHUNK`, the EMA policy `OTHER`: `act`
/// returns the EMA's chunk with `act_with_ema`, the online one's without
/// (an `act` that ignores the switch fails one of the two).
fn act_uses_the_policy_the_config_names<P: ChunkPolicy>() {
    for with_ema in [true, false] {
        let agent = agent::<P>(|c| c.act_with_ema = with_ema);
        pin_policy::<P>(&agent.policy_vs, &CHUNK);
        pin_policy::<P>(&agent.ema_vs, &OTHER);
        let raw = agent.act(&histories(&[0.5]), &mut NoiseSource::silent(Device::Cpu));
        let expected = if with_ema { OTHER } else { CHUNK };
        assert_close(
            &values(&raw),
            &unscale(&expected.map(f64::from)),
            &format!("act_with_ema = {with_ema}"),
        );
    }
}

#[test]
fn diffusion_ql_acts_with_the_ema_policy_when_asked() {
    act_uses_the_policy_the_config_names::<DiffusionPolicy>();
}

#[test]
fn cpql_acts_with_the_ema_policy_when_asked() {
    act_uses_the_policy_the_config_names::<ConsistencyPolicy>();
}

/// Best-of-N: N candidates per state.
const N: usize = 6;
/// Raw observations of the states; standardised -0.5, 0, 0.5 and 1.
const STATES: [f32; 4] = [0.0, 1.0, 2.0, 3.0];
/// The linear critics' weights on the scaled chunk (row-major `[H*A]`).
const U: [f32; H * A] = [1.0, -0.5, 0.75, 0.25, -1.0, 0.5];

/// Q1(s, c) = s + 2 U.c and Q2(s, c) = 1 - s - 2 U.c on the standardised
/// state s and the scaled chunk c: min(Q1, Q2) is largest where U.c is
/// closest to (1 - 2 s) / 4, a point that depends on the state; Q1 alone
/// prefers the largest U.c, Q2 the smallest.
fn set_critics(vs: &nn::VarStore) {
    let q1: Vec<f32> = [1.0].into_iter().chain(U.map(|u| 2.0 * u)).collect();
    let q2: Vec<f32> = [-1.0].into_iter().chain(U.map(|u| -2.0 * u)).collect();
    set_linear_critics(vs, (&q1, 0.0), (&q2, 1.0));
}

/// How a candidate is scored, the right way and wrong ones.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// argmax_k min(Q1, Q2): what `act` must do.
    MaxOfMin,
    /// argmin_k min(Q1, Q2).
    MinOfMin,
    /// argmax_k Q1.
    MaxQ1,
    /// argmax_k max(Q1, Q2).
    MaxOfMax,
    /// argmax_k min(Q1, Q2) on the raw chunk (the critic fed raw actions).
    RawChunk,
    /// argmax_k min(Q1, Q2) on the raw state (no standardisation).
    RawState,
}

/// The index of the candidate `rule` picks among `candidates` (scaled,
/// `[H*A]` each) at raw state `raw_state`, in f64.
fn pick(rule: Rule, raw_state: f32, candidates: &[Vec<f64>]) -> usize {
    let s = match rule {
        Rule::RawState => f64::from(raw_state),
        _ => f64::from((raw_state - OBS_MEAN) / OBS_STD),
    };
    let score = |c: &Vec<f64>| {
        let c = match rule {
            Rule::RawChunk => unscale(c),
            _ => c.clone(),
        };
        let uc: f64 = U.iter().zip(&c).map(|(u, x)| f64::from(*u) * x).sum();
        let (q1, q2) = (s + 2.0 * uc, 1.0 - s - 2.0 * uc);
        match rule {
            Rule::MinOfMin => -q1.min(q2),
            Rule::MaxQ1 => q1,
            Rule::MaxOfMax => q1.max(q2),
            _ => q1.min(q2),
        }
    };
    (0..candidates.len())
        .max_by(|&i, &j| score(&candidates[i]).total_cmp(&score(&candidates[j])))
        .unwrap()
}

/// (b) With seeded noise, `act` samples N candidates per state from the
/// acting policy (the states repeated in place, `[s0 x N, s1 x N, ...]`,
/// the same draws as sampling those rows directly) and returns, per state,
/// the candidate with the highest min(Q1, Q2), whole and in raw units. The
/// online and EMA policies differ, so that the candidates show which one
/// acted. Preconditions: every wrong rule of [`Rule`] picks another
/// candidate for some state, the picks differ between states, and not
/// every pick is candidate 0, so that argmin, one critic, the max over
/// critics, raw chunks or states, candidate k of the wrong state (a gather
/// or view along the wrong dimension) or a fixed candidate all fail.
fn best_of_n_returns_the_highest_min_q_candidate<P: ChunkPolicy>(seed: u64) {
    for with_ema in [true, false] {
        let agent = agent::<P>(|c| {
            c.best_of_n = N;
            c.act_with_ema = with_ema;
        });
        set_critics(&agent.critic_vs);
        scale_policy_output(&agent.policy_vs, 0.5);
        scale_policy_output(&agent.ema_vs, -0.5);

        let obs = (histories(&STATES) - f64::from(OBS_MEAN)) / f64::from(OBS_STD);
        let repeated = obs
            .view([STATES.len() as i64, 1])
            .repeat_interleave_self_int(N as i64, 0, None);
        let sample = |policy: &P| {
            let chunks = policy.sample(&repeated, &mut NoiseSource::new(seed, Device::Cpu));
            let flat = values(&chunks);
            flat.chunks(H * A)
                .map(|c| c.to_vec())
                .collect::<Vec<Vec<f64>>>()
        };
        let (ema, online) = (sample(&agent.ema), sample(&agent.policy));
        let candidates = if with_ema { &ema } else { &online };
        let other = if with_ema { &online } else { &ema };

        let mut expected = Vec::new();
        let mut picks = Vec::new();
        for (i, &raw_state) in STATES.iter().enumerate() {
            let mine = &candidates[i * N..(i + 1) * N];
            let best = pick(Rule::MaxOfMin, raw_state, mine);
            picks.push(best);
            expected.extend(unscale(&mine[best]));
        }
        for wrong in [
            Rule::MinOfMin,
            Rule::MaxQ1,
            Rule::MaxOfMax,
            Rule::RawChunk,
            Rule::RawState,
        ] {
            assert!(
                STATES.iter().enumerate().any(|(i, &raw_state)| {
                    pick(wrong, raw_state, &candidates[i * N..(i + 1) * N]) != picks[i]
                }),
                "precondition: {wrong:?} picks the same candidates {picks:?}"
            );
        }
        assert!(
            picks.iter().any(|&p| p != picks[0]) && picks.iter().any(|&p| p != 0),
            "precondition: picks {picks:?}"
        );
        let largest = candidates
            .iter()
            .flatten()
            .fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(largest > 1e-3, "precondition: nonzero candidates");
        let distance: f64 = candidates
            .iter()
            .zip(other)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0.0, f64::max);
        assert!(distance > 1e-2, "precondition: the two policies differ");

        let raw = agent.act(
            &histories(&STATES),
            &mut NoiseSource::new(seed, Device::Cpu),
        );
        assert_eq!(raw.size(), vec![STATES.len() as i64, H as i64, A as i64]);
        assert_close(
            &values(&raw),
            &expected,
            &format!("act_with_ema = {with_ema}, picks {picks:?}"),
        );
    }
}

#[test]
fn diffusion_ql_best_of_n_returns_the_highest_min_q_candidate() {
    best_of_n_returns_the_highest_min_q_candidate::<DiffusionPolicy>(3);
}

#[test]
fn cpql_best_of_n_returns_the_highest_min_q_candidate() {
    best_of_n_returns_the_highest_min_q_candidate::<ConsistencyPolicy>(3);
}

/// A history of the wrong shape (no To axis, another O) or an empty one
/// panics naming the shape expected, not deep inside libtorch; a batch of
/// other dims is refused by `update` the same way. Caught, the panics leave
/// the agent as it was: it trains on afterwards (a panic inside `act`'s
/// no-gradient section leaves recording on too: `nn::no_grad`'s test).
#[test]
fn inputs_of_the_wrong_shape_are_refused_by_name_and_the_agent_trains_on() {
    let mut agent = agent::<DiffusionPolicy>(|_| {});
    let panic_of = |f: &mut dyn FnMut()| {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        err.downcast::<String>().map(|s| *s).unwrap_or_default()
    };
    let mut noise = NoiseSource::new(1, Device::Cpu);
    for (shape, got) in [
        (vec![4i64, 1], "[4, 1]"),
        (vec![4, 1, 2], "[4, 1, 2]"),
        (vec![0, 1, 1], "[0, 1, 1]"),
    ] {
        let bad = Tensor::zeros(shape.as_slice(), (Kind::Float, Device::Cpu));
        let message = panic_of(&mut || {
            let _ = agent.act(&bad, &mut noise);
        });
        assert_eq!(
            message,
            format!("act: obs_history has shape {got}, expected [B >= 1, 1, 1]")
        );
    }
    let message = panic_of(&mut || {
        let _ = agent.q_values(
            &histories(&[0.0, 1.0]),
            &Tensor::zeros([3, H as i64, A as i64], (Kind::Float, Device::Cpu)),
        );
    });
    assert_eq!(
        message,
        "q_values: chunks has shape [3, 3, 2], expected [2, 3, 2]"
    );

    let (index, _) = line_walk(5, H, 1);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let batch = index.sample(8, &mut rng);
    let message = panic_of(&mut || {
        agent.update(&batch);
    });
    assert!(
        message.starts_with("assertion `left == right` failed: update: a batch of other dims"),
        "{message}"
    );

    // The line walk's A is 1, the agent's 2: a batch of the agent's dims
    // trains, with gradients recorded.
    let mut good =
        crate::chunk::ChunkBatch::zeros(8, crate::chunk::ChunkSpec::new(H, 0.9, 1).unwrap(), 1, A);
    good.action_mask.fill(1.0);
    good.discount_factor.fill(0.9);
    // (With recording left off, the backward pass would panic: "element 0
    // of tensors does not require grad".)
    let metrics = agent.update(&good);
    assert!(
        metrics.critic_grad_norm > 0.0 && metrics.actor_loss.is_finite(),
        "{metrics:?}"
    );
}
