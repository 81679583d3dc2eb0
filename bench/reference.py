"""chunkql's agent update written in plain PyTorch (eager), for issue 5's
side-by-side benchmark only: the same networks, losses, optimiser settings and
target/EMA schedule as src/agent (Diffusion-QL and CPQL over action chunks),
the way a PyTorch user would write them (nn.Module classes, torch.optim.Adam,
clip_grad_norm_, no_grad targets). Not a second implementation to train with.

Configurations (issue 5; obs 17, action 6, To = 1, batch 256, T = 5):
  a     Diffusion-QL, MLP policy 3x256 Mish, twin MLP critics 3x256 Mish + LayerNorm, H = 4
  b     the same with H = 16, U-Net policy and U-Net critic (default CPU widths)
  c     CPQL (one-step consistency policy) with (a)'s shapes
  loop  (a) with a fresh batch per step: numpy fancy-indexing chunk gather,
        torch.from_numpy, update (the training loop)
(a), (b), (c) update on one batch sampled once, as benches/update.rs does.
The networks are in reference_nets.py, the settings in reference_settings.py.

Run (after `scripts/setup.sh --bench`):
  .venv/bin/python bench/reference.py --config a            # eager steps/s
  .venv/bin/python bench/reference.py --config a --compile  # + torch.compile
  .venv/bin/python bench/reference.py --config b --check    # 10 updates, losses, parameter counts
  .venv/bin/python bench/reference.py --config b --count-flops  # FLOPs of one update (torch's counter)
  python3 bench/reference.py --config a --device cuda        # on a GPU
  python3 bench/reference.py --config a --device cuda --batch 16384   # another batch size
"""

import argparse
import copy
import logging
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_nets import ConsistencyPolicy, DiffusionPolicy, TwinCritic
from reference_settings import ACT, BATCH, CONFIGS, EPISODE, GAMMA, OBS, ROWS, RUST_PARAMS, TO, Hyper


# ---------------------------------------------------------------------------
# The agent (src/agent/mod.rs).


def cosine_lr(lr, lr_min, step, decay_steps):
    if decay_steps == 0:
        return lr
    progress = min(step, decay_steps) / decay_steps
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))


def param_count(module):
    return sum(p.numel() for p in module.parameters())


class Agent:
    def __init__(self, setup, hp, normalizer, device):
        self.setup, self.hp = setup, hp
        policy_class = DiffusionPolicy if setup.algorithm == "dql" else ConsistencyPolicy
        self.policy = policy_class(setup, hp).to(device)
        self.ema = copy.deepcopy(self.policy).requires_grad_(False)
        self.critic = TwinCritic(setup, hp).to(device)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.policy.parameters(), lr=hp.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=hp.critic_lr)
        self.obs_mean, self.obs_std, self.act_center, self.act_half = (v.to(device) for v in normalizer)
        self.step = 0
        # The loss computations; --compile replaces them with compiled versions.
        self.critic_target_fn = self.critic_target
        self.critic_loss_fn = self.critic_loss
        self.actor_loss_fn = self.actor_loss

    def compile(self):
        self.critic_target_fn = torch.compile(self.critic_target)
        self.critic_loss_fn = torch.compile(self.critic_loss)
        self.actor_loss_fn = torch.compile(self.actor_loss)

    def normalise(self, raw):
        """Raw batch -> obs/next_obs standardised and flattened [B, To*O], chunks in [-1, 1]."""
        obs, actions, mask, reward, done, discount, next_obs = raw
        b = obs.shape[0]
        return (
            ((obs - self.obs_mean) / self.obs_std).view(b, -1),
            (actions - self.act_center) / self.act_half,
            mask,
            reward * self.hp.reward_scale,
            done,
            discount,
            ((next_obs - self.obs_mean) / self.obs_std).view(b, -1),
        )

    def critic_target(self, reward, done, discount, next_obs):
        """y = R + (1 - done) gamma^tau min(Q1', Q2')(s', a'), a' ~ EMA policy."""
        with torch.no_grad():
            next_chunks = self.ema.sample(next_obs)
            full_mask = torch.ones(next_obs.shape[0], self.setup.horizon, device=next_obs.device)
            q1, q2 = self.target(next_obs, next_chunks, full_mask)
            return reward + (1.0 - done) * discount * torch.minimum(q1, q2)

    def critic_loss(self, obs, actions, mask, y):
        q1, q2 = self.critic(obs, actions, mask)
        return F.mse_loss(q1, y) + F.mse_loss(q2, y), q1

    def actor_loss(self, obs, actions):
        """L_bc + eta * (-Q1(s, a_pi) / mean|Q2(s, a_pi)|), a_pi through every sampling step
        (the critic's parameters are frozen by the caller)."""
        bc = self.policy.bc_loss(obs, actions, self.ema)
        chunks = self.policy.sample(obs)
        q1, q2 = self.critic(obs, chunks, torch.ones(obs.shape[0], self.setup.horizon, device=obs.device))
        q_loss = -q1.mean() / q2.abs().mean().detach()
        return bc + q_loss * self.hp.eta, bc, q_loss

    def update(self, raw):
        hp = self.hp
        obs, actions, mask, reward, done, discount, next_obs = self.normalise(raw)

        y = self.critic_target_fn(reward, done, discount, next_obs)
        critic_loss, q1 = self.critic_loss_fn(obs, actions, mask, y)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        critic_grad_norm = nn.utils.clip_grad_norm_(self.critic.parameters(), hp.grad_clip)
        self.critic_opt.step()

        self.critic.requires_grad_(False)
        actor_loss, bc, q_loss = self.actor_loss_fn(obs, actions)
        self.critic.requires_grad_(True)
        self.actor_opt.zero_grad()
        actor_loss.backward()
        actor_grad_norm = nn.utils.clip_grad_norm_(self.policy.parameters(), hp.grad_clip)
        self.actor_opt.step()

        with torch.no_grad():
            for follower, source in zip(self.target.parameters(), self.critic.parameters()):
                follower.lerp_(source, hp.tau)
            if self.step % hp.ema_every == 0:
                for follower, source in zip(self.ema.parameters(), self.policy.parameters()):
                    if self.step < hp.ema_start:
                        follower.copy_(source)
                    else:
                        follower.lerp_(source, 1.0 - hp.ema_decay)
        self.step += 1
        for opt, lr in ((self.actor_opt, hp.actor_lr), (self.critic_opt, hp.critic_lr)):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(lr, hp.lr_min, self.step, hp.lr_decay_steps)

        return {  # the same scalars chunkql's Metrics reads back
            "critic_loss": critic_loss.item(),
            "q_mean": q1.mean().item(),
            "target_mean": y.mean().item(),
            "critic_grad_norm": critic_grad_norm.item(),
            "actor_loss": actor_loss.item(),
            "bc_loss": bc.item(),
            "q_loss": q_loss.item(),
            "actor_grad_norm": actor_grad_norm.item(),
        }


# ---------------------------------------------------------------------------
# Data: benches/update.rs's random step data, chunks gathered with numpy
# fancy indexing (as bench/numpy_sampling.py, here for any To).


class Data:
    def __init__(self, horizon):
        rng = np.random.default_rng(0)
        self.obs = rng.uniform(-1, 1, (ROWS, OBS)).astype(np.float32)
        self.actions = rng.uniform(-1, 1, (ROWS, ACT)).astype(np.float32)
        self.rewards = rng.uniform(-1, 1, ROWS).astype(np.float32)
        self.terminals = np.zeros(ROWS, dtype=bool)
        timeouts = np.arange(ROWS) % EPISODE == EPISODE - 1
        self.next_obs = rng.uniform(-1, 1, (ROWS, OBS)).astype(np.float32)
        self.horizon = horizon
        self.gamma_powers = (GAMMA ** np.arange(horizon + 1)).astype(np.float32)
        # Per row: episode start, chunk length tau (next_observations present,
        # so every row is a sampleable start).
        ends = np.flatnonzero(self.terminals | timeouts)
        if len(ends) == 0 or ends[-1] != ROWS - 1:
            ends = np.append(ends, ROWS - 1)
        episode = np.searchsorted(ends, np.arange(ROWS))
        starts = np.concatenate([[0], ends[:-1] + 1])
        self.episode_start = starts[episode]
        self.tau = np.minimum(horizon, ends[episode] - np.arange(ROWS) + 1)

    def normalizer(self):
        """Normalizer::fit: observation mean and population std (at least 1e-3),
        action centre and half range, as float32 tensors."""
        mean = self.obs.astype(np.float64).mean(0)
        std = np.maximum(self.obs.astype(np.float64).std(0), 1e-3)
        low, high = self.actions.min(0), self.actions.max(0)
        f = lambda v: torch.tensor(np.asarray(v, dtype=np.float32))  # noqa: E731
        return f(mean), f(std), f(0.5 * (low + high)), f(0.5 * (high - low))

    def sample(self, generator, batch=BATCH):
        """One batch of raw arrays: obs [B,To,O], actions [B,H,A], mask [B,H],
        cumulative reward, done, discount [B], next obs [B,To,O]."""
        t = generator.integers(0, ROWS, batch)
        start, tau = self.episode_start[t], self.tau[t]
        steps = np.arange(self.horizon)
        hist = np.arange(TO) - (TO - 1)
        obs = self.obs[np.maximum(t[:, None] + hist, start[:, None])]
        act_rows = t[:, None] + np.minimum(steps, tau[:, None] - 1)
        mask = (steps[None, :] < tau[:, None]).astype(np.float32)
        reward = (self.rewards[act_rows] * self.gamma_powers[None, : self.horizon] * mask).sum(1)
        last = t + tau - 1
        next_hist = np.maximum((t + tau)[:, None] + hist[:-1], start[:, None])
        next_obs = np.concatenate([self.obs[next_hist], self.next_obs[last][:, None, :]], axis=1)
        return (
            obs,
            self.actions[act_rows],
            mask,
            reward.astype(np.float32),
            self.terminals[last].astype(np.float32),
            self.gamma_powers[tau],
            next_obs,
        )


def to_torch(arrays, device):
    """numpy arrays -> tensors on `device` (one copy each off the CPU)."""
    return tuple(torch.from_numpy(a).to(device) for a in arrays)


# ---------------------------------------------------------------------------
# Command line.


def build(config, lr_decay_steps, device, batch=BATCH):
    setup = CONFIGS[config]
    data = Data(setup.horizon)
    hp = Hyper(lr_decay_steps=lr_decay_steps)
    agent = Agent(setup, hp, data.normalizer(), device)
    generator = np.random.default_rng(1)
    fixed = to_torch(data.sample(generator, batch), device)

    def one_step():
        chunks = to_torch(data.sample(generator, batch), device) if setup.sample_each_step else fixed
        return agent.update(chunks)

    return agent, one_step


def check_counts(config, agent):
    counts = {
        "policy": param_count(agent.policy),
        "ema": param_count(agent.ema),
        "critic (twin)": param_count(agent.critic),
        "target (twin)": param_count(agent.target),
    }
    rust = RUST_PARAMS[config]
    expected = {
        "policy": rust["policy"],
        "ema": rust["policy"],
        "critic (twin)": rust["critic"],
        "target (twin)": rust["critic"],
    }
    for name, n in counts.items():
        print(f"  params {name}: {n} (chunkql {expected[name]})")
    assert counts == expected, f"parameter counts differ from chunkql's: {counts} vs {expected}"


def run_check(config, device):
    torch.manual_seed(0)
    agent, one_step = build(config, lr_decay_steps=10, device=device)
    setup = CONFIGS[config]
    print(f"reference {config} check: {setup}")
    check_counts(config, agent)
    for _ in range(10):
        m = one_step()
        print(
            f"  step {agent.step:2d}: critic {m['critic_loss']:.4f} actor {m['actor_loss']:.4f} "
            f"bc {m['bc_loss']:.4f} q {m['q_loss']:.4f} q_mean {m['q_mean']:.4f} "
            f"target {m['target_mean']:.4f} |g_c| {m['critic_grad_norm']:.3f} |g_a| {m['actor_grad_norm']:.3f}"
        )
        bad = [k for k, v in m.items() if not math.isfinite(v)]
        assert not bad, f"non-finite metrics at step {agent.step}: {bad}"
    print(f"reference {config} check: ok")


def count_flops(config, device):
    """FLOPs of one update as torch.utils.flop_counter counts them: matrix
    products and convolutions, forward and backward, as autograd runs them
    (no weight gradients where parameters are frozen); elementwise work is
    not counted. Cross-checks the count from layer shapes in
    examples/update_speed.rs."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    agent, one_step = build(config, lr_decay_steps=1000, device=device)
    one_step()  # the first update of a fresh agent costs the same; run one anyway
    counter = FlopCounterMode(display=False)
    with counter:
        one_step()
    total = counter.get_total_flops()
    by_op = sorted(counter.get_flop_counts()["Global"].items(), key=lambda kv: -kv[1])
    ops = ", ".join(f"{op.__name__ if hasattr(op, '__name__') else op} {n / 1e9:.3f}" for op, n in by_op)
    print(f"reference {config} flops: {total / 1e9:.3f} GFLOP per update ({ops})")


def measure(one_step, seconds, warmup, windows=5):
    for _ in range(warmup):
        one_step()
    rates = []
    for _ in range(windows):
        n, start = 0, time.perf_counter()
        while True:
            one_step()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / windows:
                break
        rates.append(n / elapsed)
    rate = statistics.median(rates)
    return f"{rate:.2f} steps/s ({1e3 / rate:.1f} ms/step, median of {windows} windows)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="a")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per mode (5 windows)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates first (as update_speed.rs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time the update with torch.compile")
    parser.add_argument("--check", action="store_true", help="10 updates: losses, parameter counts")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (every tensor is made there)")
    parser.add_argument("--count-flops", action="store_true", help="FLOPs of one update (torch.utils.flop_counter)")
    parser.add_argument("--batch", type=int, default=BATCH, help="chunks per batch (the issue's 256 by default)")
    args = parser.parse_args()

    # Each update reads its losses back (.item()), so a GPU step is timed to
    # its end, as update_speed's is.
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.check:
        run_check(args.config, device)
        return
    if args.count_flops:
        count_flops(args.config, device)
        return

    torch.manual_seed(0)
    agent, one_step = build(args.config, lr_decay_steps=1000, device=device, batch=args.batch)
    columns = [f"eager: {measure(one_step, args.seconds, args.warmup)}"]
    if args.compile:
        torch.manual_seed(0)
        agent, one_step = build(args.config, lr_decay_steps=1000, device=device, batch=args.batch)
        logging.getLogger("torch.utils.flop_counter").setLevel(logging.ERROR)  # "triton not found"
        agent.compile()
        try:
            start = time.perf_counter()
            one_step()  # compiles
            compile_s = time.perf_counter() - start
        except Exception as e:  # noqa: BLE001 - any compiler failure is reported the same way
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            # The eager figure stands on its own: printed with the failure.
            print(f"reference {args.config} " + " | ".join(columns)
                  + f" | compile: torch.compile failed: {type(e).__name__}: {first}")
            sys.exit(1)
        columns.append(f"compile: {measure(one_step, args.seconds, args.warmup)} [first step {compile_s:.0f} s]")
    name = args.config if args.batch == BATCH else f"{args.config} (batch {args.batch})"
    print(f"reference {name} " + " | ".join(columns))


if __name__ == "__main__":
    main()

