//! One update (DESIGN.md 1) over slices of the batch, each slice's forward
//! and backward passes on its own worker thread ([`Workers`]); the optimiser
//! steps, target updates and learning rates run between the phases on the
//! calling thread.
//!
//! Every loss is a sum over the slice's rows divided by the whole batch's
//! size, so the slices' gradients add up to the gradient of the batch-mean
//! loss. Each slice's gradient is taken on its own (packed `[N]`, see
//! [`packed_gradient`]) and the calling thread adds them in slice order, so
//! the result does not depend on thread timing. Two quantities need the
//! whole batch, hence three phases:
//!
//! - A, per slice: next chunks from the EMA policy -> target y -> critic
//!   loss and its gradient; the behaviour-cloning loss; a_pi sampled with
//!   gradients through every denoising step.
//! - critic clip and Adam step; the critic is frozen.
//! - B, per slice: Q1, Q2 of a_pi with the updated critic.
//! - the normaliser mean |Q2| over the whole batch.
//! - C, per slice: the gradient of BC - eta Q1 / normaliser.
//! - actor clip and Adam step, soft target and EMA updates, learning rates.

use tch::{Device, Kind, Tensor};

use super::{
    AgentConfig, ChunkAgent, ChunkPolicy, Metrics, TargetKind, TensorBatch, bellman_target,
    max_over_samples, repeat_rows, set_requires_grad,
};
use crate::chunk::{ChunkBatch, ChunkDims};
use crate::critic::{TwinCritic, full_mask};
use crate::nn::packed_gradient;
use crate::noise::NoiseSource;

/// What the worker threads share: the networks and the settings.
pub(super) struct Nets<'a, P> {
    pub config: &'a AgentConfig,
    pub dims: ChunkDims,
    pub device: Device,
    pub policy: &'a P,
    pub ema: &'a P,
    pub critic: &'a TwinCritic,
    pub target: &'a TwinCritic,
}

// SAFETY: tch's `Tensor` is `Send` but not `Sync` only because Rust cannot
// see libtorch's rules. During a phase the worker threads use these
// networks' parameters only as inputs of new operations (libtorch tensors are
// atomically reference-counted, and reading one from several threads is
// safe), and their backward passes take gradients with respect to the
// parameters (`nn::packed_gradient`) without writing any parameter's `.grad`.
// Nothing writes a parameter or
// switches its gradient tracking while a phase runs: the optimisers, the
// target and EMA updates and `set_requires_grad` run on the calling thread
// between phases, when no worker holds a `Nets`.
unsafe impl<P> Sync for Nets<'_, P> {}

/// What phase A measured on one slice (sums over its rows) and kept.
struct SliceA {
    /// d critic loss / d critic variables from this slice, packed `[N]`.
    critic_grad: Tensor,
    critic_loss: f64,
    q1_sum: f64,
    y_sum: f64,
    /// The slice's share of the behaviour-cloning loss, with its graph.
    bc: Tensor,
    bc_loss: f64,
    obs: Tensor,
    /// a_pi `[n, H, A]` with its graph (when eta > 0).
    chunks: Option<Tensor>,
}

/// Phase B's result on one slice: the slice's BC loss kept from A, Q1(s,
/// a_pi) `[n]` with its graph, and sums of Q1 and |Q2| over the slice.
struct SliceB {
    bc: Tensor,
    q1: Tensor,
    q1_sum: f64,
    q2_abs_sum: f64,
}

impl<P: ChunkPolicy> Nets<'_, P> {
    /// The next states the target bootstraps from: the chunk's s_{t+tau}
    /// (SMDP) or s_{t+1} (one-step ablation). `[B, To*O]`.
    pub fn bootstrap_obs<'b>(&self, b: &'b TensorBatch) -> &'b Tensor {
        match (self.config.target, &b.one_step) {
            (TargetKind::Smdp, _) => &b.next_obs,
            (TargetKind::OneStep, Some(one)) => &one.next_obs,
            (TargetKind::OneStep, None) => {
                panic!("the one-step target needs a batch from ChunkBatch::with_one_step")
            }
        }
    }

    /// k next-state samples per state (k > 1 with max-Q backup).
    pub fn backup_samples(&self) -> i64 {
        if self.config.max_q_backup {
            self.config.max_q_samples as i64
        } else {
            1
        }
    }

    /// Chunks a' ~ pi_ema( . | s'), k per next state: `[B*k, H, A]`, rows
    /// grouped by state.
    pub fn next_chunks(&self, b: &TensorBatch, noise: &mut NoiseSource) -> Tensor {
        let next_obs = repeat_rows(self.bootstrap_obs(b), self.backup_samples());
        crate::nn::no_grad(|| self.ema.sample(&next_obs, noise))
    }

    /// y = R + (1 - done) * discount * max_k min(Q1', Q2')(s', a'_k) with the
    /// target critics, for `next_chunks` `[B*k, H, A]` -> `[B]`.
    pub fn critic_target(&self, b: &TensorBatch, next_chunks: &Tensor) -> Tensor {
        let batch = b.len();
        let k = next_chunks.size()[0] / batch;
        let next_obs = repeat_rows(self.bootstrap_obs(b), k);
        crate::nn::no_grad(|| {
            let mask = full_mask(batch * k, self.dims.horizon as i64, self.device);
            let next_q = max_over_samples(&self.target.min(&next_obs, next_chunks, &mask), batch);
            match (self.config.target, &b.one_step) {
                (TargetKind::OneStep, Some(one)) => {
                    bellman_target(&one.reward, &one.done, &one.discount, &next_q)
                }
                _ => bellman_target(&b.reward, &b.done, &b.discount, &next_q),
            }
        })
    }

    /// Phase A on slice `b` of a batch of `total` rows; `critic_vars` in the
    /// order of the critic's packed gradient.
    fn critic_and_bc(
        &self,
        b: &TensorBatch,
        noise: &mut NoiseSource,
        total: i64,
        critic_vars: &[Tensor],
    ) -> SliceA {
        let share = b.len() as f64 / total as f64;
        let next = self.next_chunks(b, noise);
        let y = self.critic_target(b, &next);
        let (q1, q2) = self.critic.forward(&b.obs, &b.actions, &b.critic_mask);
        let critic_loss = critic_loss(&q1, &q2, &y, total);
        let critic_grad = packed_gradient(&critic_loss, critic_vars);

        let bc = self.policy.bc_loss(&b.obs, &b.actions, self.ema, noise) * share;
        let chunks = (self.config.eta > 0.0).then(|| self.policy.sample(&b.obs, noise));
        let [critic_loss, q1_sum, y_sum, bc_loss] =
            host_scalars([&critic_loss, &q1.sum(Kind::Float), &y.sum(Kind::Float), &bc]);
        SliceA {
            critic_grad,
            critic_loss,
            q1_sum,
            y_sum,
            bc_loss,
            bc,
            obs: b.obs.shallow_clone(),
            chunks,
        }
    }

    /// Phase B: the (frozen) critic on a_pi.
    fn q_of_policy(&self, a: SliceA) -> SliceB {
        let chunks = a.chunks.expect("phase A sampled a_pi");
        let mask = full_mask(chunks.size()[0], self.dims.horizon as i64, self.device);
        let (q1, q2) = self.critic.q1_tracked(&a.obs, &chunks, &mask);
        let [q1_sum, q2_abs_sum] = host_scalars([&q1.sum(Kind::Float), &q2.abs().sum(Kind::Float)]);
        SliceB {
            bc: a.bc,
            q1_sum,
            q2_abs_sum,
            q1,
        }
    }
}

/// L = mean (Q1 - y)^2 + mean (Q2 - y)^2, the means over a batch of `total`
/// rows, of which q1, q2, y `[b]` are a slice (b = total: the whole loss).
pub(super) fn critic_loss(q1: &Tensor, q2: &Tensor, y: &Tensor, total: i64) -> Tensor {
    ((q1 - y).square().sum(Kind::Float) + (q2 - y).square().sum(Kind::Float)) / total as f64
}

/// The values of N scalar tensors, read to the host in one copy: on a GPU
/// one wait for the device instead of one per number.
fn host_scalars<const N: usize>(scalars: [&Tensor; N]) -> [f64; N] {
    let stacked = crate::nn::no_grad(|| Tensor::stack(&scalars, 0).to_kind(Kind::Double));
    let values = Vec::<f64>::try_from(stacked.to_device(tch::Device::Cpu))
        .expect("a stack of scalars reads as f64");
    values.try_into().expect("N values")
}

/// A [`Nets`] of an agent, borrowing only the fields it names (so that the
/// agent's noise and optimisers stay usable beside it).
macro_rules! nets {
    ($agent:expr) => {
        $crate::agent::step::Nets {
            config: &$agent.config,
            dims: $agent.dims,
            device: $agent.device,
            policy: &$agent.policy,
            ema: &$agent.ema,
            critic: &$agent.critic,
            target: &$agent.target,
        }
    };
}
pub(super) use nets;

impl<P: ChunkPolicy> ChunkAgent<P> {
    /// One training step on `batch` (see the module doc).
    ///
    /// # Panics
    /// If `batch` is empty or its dims (H, To, O, A) are not the agent's.
    pub fn update(&mut self, batch: &ChunkBatch) -> Metrics {
        assert!(!batch.is_empty(), "update: the batch is empty");
        assert_eq!(
            batch.dims(),
            self.dims,
            "update: a batch of other dims than the agent's (left: the batch's)"
        );
        let workers = self.workers.clone();
        workers.install(|| self.update_in_slices(batch))
    }

    fn update_in_slices(&mut self, batch: &ChunkBatch) -> Metrics {
        let b = self.tensors(batch);
        let rows = b.len();
        let total = rows as f64;
        let jobs: Vec<(TensorBatch, NoiseSource)> = b
            .split(self.workers.count())
            .into_iter()
            .map(|slice| (slice, self.noise.fork()))
            .collect();
        let (critic_vars, policy_vars) = (self.critic_opt.variables(), self.actor_opt.variables());

        let a = {
            let nets = nets!(self);
            let critic_vars = Shared(&critic_vars);
            self.workers.run(jobs, |(slice, mut noise)| {
                nets.critic_and_bc(&slice, &mut noise, rows, critic_vars.get())
            })
        };
        let sum = |f: fn(&SliceA) -> f64| a.iter().map(f).sum::<f64>();
        let (critic_loss, bc_loss) = (sum(|s| s.critic_loss), sum(|s| s.bc_loss));
        let (q_mean, target_mean) = (sum(|s| s.q1_sum) / total, sum(|s| s.y_sum) / total);
        let parts: Vec<Tensor> = a.iter().map(|s| s.critic_grad.shallow_clone()).collect();
        let critic_grad_norm = self.critic_opt.step_on(&parts, self.config.grad_clip);

        let eta = self.config.eta;
        let policy_vars = Shared(&policy_vars);
        let (q_loss, parts) = if eta > 0.0 {
            set_requires_grad(&self.critic_vs, false);
            let q = {
                let nets = nets!(self);
                self.workers.run(a, |slice| nets.q_of_policy(slice))
            };
            set_requires_grad(&self.critic_vs, true);
            let norm = q.iter().map(|s| s.q2_abs_sum).sum::<f64>() / total;
            let q1_sum: f64 = q.iter().map(|s| s.q1_sum).sum();
            // d/d theta of eta * (-Q1 mean / norm), norm held constant.
            let scale = -eta / (total * norm);
            let parts = self.workers.run(q, |s| {
                packed_gradient(&(s.bc + s.q1.sum(Kind::Float) * scale), policy_vars.get())
            });
            (-q1_sum / total / norm, parts)
        } else {
            let parts = self
                .workers
                .run(a, |s| packed_gradient(&s.bc, policy_vars.get()));
            (0.0, parts)
        };
        let actor_grad_norm = self.actor_opt.step_on(&parts, self.config.grad_clip);

        self.update_targets();
        let actor_lr = self.actor_opt.lr();
        self.step += 1;
        self.set_learning_rates();
        Metrics {
            step: self.step,
            critic_loss,
            actor_loss: bc_loss + eta * q_loss,
            bc_loss,
            q_loss,
            q_mean,
            target_mean,
            critic_grad_norm,
            actor_grad_norm,
            actor_lr,
        }
    }
}

/// Variables shared with the worker threads (for `packed_gradient`).
struct Shared<'a>(&'a [Tensor]);

// SAFETY: as for `Nets`: the workers only read these tensors, as the inputs
// of a gradient computation, while nothing on the calling thread writes them.
unsafe impl Sync for Shared<'_> {}

impl Shared<'_> {
    /// (A method, so that closures capture the `Shared`, not its field.)
    fn get(&self) -> &[Tensor] {
        self.0
    }
}
