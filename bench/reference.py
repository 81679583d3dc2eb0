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

Run (after `scripts/setup.sh --bench`):
  .venv/bin/python bench/reference.py --config a            # eager steps/s
  .venv/bin/python bench/reference.py --config a --compile  # + torch.compile
  .venv/bin/python bench/reference.py --config b --check    # 10 updates, losses, parameter counts
  .venv/bin/python bench/reference.py --config b --count-flops  # FLOPs of one update (torch's counter)
  python3 bench/reference.py --config a --device cuda        # on a GPU
"""

import argparse
import copy
import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Settings: benches/update.rs's data and AgentConfig::default().

ROWS, EPISODE, OBS, ACT, BATCH, TO, GAMMA = 100_000, 1000, 17, 6, 256, 1, 0.99


@dataclass
class Hyper:
    """AgentConfig::default() (src/agent/config.rs) and its sections."""

    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    lr_min: float = 0.0
    lr_decay_steps: int = 1000  # cosine decay length; any value costs the same
    eta: float = 1.0
    tau: float = 0.005
    grad_clip: float = 5.0
    ema_decay: float = 0.995
    ema_every: int = 5
    ema_start: int = 1000
    reward_scale: float = 1.0
    # DiffusionConfig
    diffusion_steps: int = 5
    beta_min: float = 0.1
    beta_max: float = 10.0
    # DenoiserConfig (MLP)
    hidden: tuple = (256, 256, 256)
    time_dim: int = 16
    # UnetConfig
    down_dims: tuple = (64, 128, 256)
    kernel_size: int = 5
    n_groups: int = 8
    time_embed_dim: int = 64
    # ConsistencyConfig
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    scales: int = 40
    sample_steps: int = 1
    # CriticConfig
    critic_hidden: tuple = (256, 256, 256)
    critic_layer_norm: bool = True
    use_mask: bool = True
    state_hidden: tuple = (256,)
    state_dim: int = 128


@dataclass
class Setup:
    horizon: int
    algorithm: str  # "dql" | "cpql"
    policy_net: str  # "mlp" | "unet"
    critic_kind: str  # "mlp" | "unet"
    sample_each_step: bool


CONFIGS = {
    "a": Setup(4, "dql", "mlp", "mlp", False),
    "b": Setup(16, "dql", "unet", "unet", False),
    "c": Setup(4, "cpql", "mlp", "mlp", False),
    "loop": Setup(4, "dql", "mlp", "mlp", True),
}

# Parameters per network as chunkql builds them (derived from the Rust code,
# not from this file; the EMA policy and the target critics are copies, so
# they count the same). Linear(i, o): i*o + o. LayerNorm(w) and GroupNorm(w):
# 2w. Conv1d(i, o, k): i*o*k + o. ConvTranspose1d(i, o, k): i*o*k + o.
#
# MLP policy (src/policy/denoiser.rs, src/nn/{mlp,embedding}.rs), O=17, A=6,
# To=1, H=4: TimeEmbedding(16, 32) = (16*32+32) + (32*16+16) = 1072; Mlp input
# H*A + 16 + To*O = 24+16+17 = 57, no LayerNorm: (57*256+256) + 2*(256*256+256)
# + (256*24+24) = 14848 + 131584 + 6168 = 152600; total 153672 (the same
# network for DQL and CPQL).
#
# MLP critic (src/critic/chunk_critic.rs), H=4: input To*O + H*A + H = 45;
# (45*256+256) + 512 + 2*((256*256+256) + 512) + (256+1) = 145153 per critic,
# twin 290306.
#
# U-Net policy (src/nn/unet/mod.rs), A=6, H=16, widths [64,128,256], k 5,
# 8 groups, time embedding 64 -> 256 -> 64: cond = 64 + 17 = 81.
#   ResBlock(i, o, c) = block0 (i*o*5+o + 2o) + block1 (o*o*5+o + 2o)
#                       + film (c*2o + 2o) + residual (i*o+o, only if i != o)
#   time_emb (64*256+256) + (256*64+64)                            =    33088
#   down0: Res(6,64,81) 33728 + Res(64,64,81) 51840 + down 12352  =    97920
#   down1: Res(64,128,81) 152960 + Res(128,128,81) 185600 + 49280 =   387840
#   down2: Res(128,256,81) 568064 + Res(256,256,81) 698880        =  1266944
#   mid: 2 x Res(256,256,81)                                       =  1397760
#   up0: Res(512,128,81) 497024 + Res(128,128,81) 185600
#        + ConvT(128,128,4) 65664                                  =   748288
#   up1: Res(256,64,81) 129728 + Res(64,64,81) 51840 + ConvT 16448 =   198016
#   final: Conv1dBlock(64,64) 20672 + Conv1d(64,6,1) 390           =    21062
#   total                                                            4150918
#
# U-Net critic, H=16: state Mlp(17, [256], 128) = 4608 + 32896 = 37504;
# TemporalEncoder(A+1 = 7 channels, cond 128): down0 110336 + down1 411904 +
# down2 1315072 + mid 2 x 722944 = 3283200 (ResBlock(i, o, 128) as above);
# head Mlp(128+256 = 384, 3x256, 1, LayerNorm) = 98816 + 2*66304 + 257 =
# 231937; per critic 3552641, twin 7105282.
RUST_PARAMS = {
    "a": {"policy": 153_672, "critic": 290_306},
    "b": {"policy": 4_150_918, "critic": 7_105_282},
    "c": {"policy": 153_672, "critic": 290_306},
    "loop": {"policy": 153_672, "critic": 290_306},
}


# ---------------------------------------------------------------------------
# Building blocks (src/nn).


class Mlp(nn.Module):
    """[B, i] -> [B, o]: (Linear -> [LayerNorm] -> Mish) per hidden width, Linear."""

    def __init__(self, inp, hidden, out, layer_norm=False):
        super().__init__()
        layers, width = [], inp
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(nn.Mish())
            width = h
        layers.append(nn.Linear(width, out))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def sinusoidal(t, dim):
    """t [B] -> [B, dim] = [sin(t f), cos(t f)], f_k = exp(-k ln(1e4) / (dim/2 - 1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device) * (-math.log(10000.0) / (half - 1)))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeEmbedding(nn.Module):
    """t [B] -> [B, dim]: sinusoidal -> Linear(dim, hidden) -> Mish -> Linear(hidden, dim)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Mish(), nn.Linear(hidden, dim))

    def forward(self, t):
        return self.mlp(sinusoidal(t, self.dim))


class Conv1dBlock(nn.Sequential):
    """[B, i, T] -> [B, o, T]: Conv1d(k, same padding) -> GroupNorm -> Mish."""

    def __init__(self, cin, cout, kernel, groups):
        super().__init__(
            nn.Conv1d(cin, cout, kernel, padding=kernel // 2),
            nn.GroupNorm(groups, cout),
            nn.Mish(),
        )


class ResBlock(nn.Module):
    """Diffusion Policy's conditional residual block with FiLM scale * h + bias:
    x [B, i, T], cond [B, c] -> [B, o, T]."""

    def __init__(self, cin, cout, cond_dim, kernel, groups):
        super().__init__()
        self.cout = cout
        self.block0 = Conv1dBlock(cin, cout, kernel, groups)
        self.block1 = Conv1dBlock(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, cond):
        film = self.film(cond).unsqueeze(-1)
        scale, bias = film[:, : self.cout], film[:, self.cout :]
        h = self.block1(self.block0(x) * scale + bias)
        return h + self.residual(x)


class DownMid(nn.Module):
    """Down path (two ResBlocks per level, stride-2 Conv1d except at the last)
    and two mid ResBlocks: x [B, C, T] -> (mid features, skip per level)."""

    def __init__(self, input_dim, cond_dim, dims, kernel, groups):
        super().__init__()
        self.down = nn.ModuleList()
        din = input_dim
        for i, dout in enumerate(dims):
            last = i + 1 == len(dims)
            self.down.append(
                nn.ModuleList(
                    [
                        ResBlock(din, dout, cond_dim, kernel, groups),
                        ResBlock(dout, dout, cond_dim, kernel, groups),
                        nn.Identity() if last else nn.Conv1d(dout, dout, 3, stride=2, padding=1),
                    ]
                )
            )
            din = dout
        self.mid = nn.ModuleList(
            [ResBlock(dims[-1], dims[-1], cond_dim, kernel, groups) for _ in range(2)]
        )

    def forward(self, x, cond):
        skips = []
        for res0, res1, downsample in self.down:
            x = res1(res0(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, cond)
        return x, skips


def pad_time(x, multiple):
    """[B, H, C] -> [B, C, H'] with H' the next multiple, last step replicated."""
    x = x.transpose(1, 2)
    extra = (-x.shape[-1]) % multiple
    return F.pad(x, (0, extra), mode="replicate") if extra else x


class TemporalUnet(nn.Module):
    """ConditionalUnet1D over a chunk: x [B, H, A], t [B], cond [B, To*O] -> [B, H, A];
    FiLM conditioning cat[time embedding, cond]."""

    def __init__(self, input_dim, cond_dim, hp):
        super().__init__()
        dims, k, g = hp.down_dims, hp.kernel_size, hp.n_groups
        self.multiple = 2 ** (len(dims) - 1)
        full_cond = hp.time_embed_dim + cond_dim
        self.time_emb = TimeEmbedding(hp.time_embed_dim, 4 * hp.time_embed_dim)
        self.down_mid = DownMid(input_dim, full_cond, dims, k, g)
        self.up = nn.ModuleList()
        for i in reversed(range(1, len(dims))):
            din, dout = dims[i - 1], dims[i]
            self.up.append(
                nn.ModuleList(
                    [
                        ResBlock(2 * dout, din, full_cond, k, g),
                        ResBlock(din, din, full_cond, k, g),
                        nn.ConvTranspose1d(din, din, 4, stride=2, padding=1),
                    ]
                )
            )
        self.final = nn.Sequential(Conv1dBlock(dims[0], dims[0], k, g), nn.Conv1d(dims[0], input_dim, 1))

    def forward(self, x, t, cond):
        h = x.shape[1]
        cond = torch.cat([self.time_emb(t), cond], dim=1)
        y, skips = self.down_mid(pad_time(x, self.multiple), cond)
        for res0, res1, upsample in self.up:
            y = torch.cat([y, skips.pop()], dim=1)
            y = upsample(res1(res0(y, cond), cond))
        return self.final(y).transpose(1, 2)[:, :h]


class TemporalEncoder(nn.Module):
    """The U-Net's down path + mid blocks, mean-pooled over time:
    x [B, H, C], cond [B, c] -> [B, dims[-1]]."""

    def __init__(self, input_dim, cond_dim, hp):
        super().__init__()
        self.multiple = 2 ** (len(hp.down_dims) - 1)
        self.down_mid = DownMid(input_dim, cond_dim, hp.down_dims, hp.kernel_size, hp.n_groups)

    def forward(self, x, cond):
        mid, _ = self.down_mid(pad_time(x, self.multiple), cond)
        return mid.mean(dim=2)


class MlpDenoiser(nn.Module):
    """x [B, H, A], t [B], cond [B, To*O] -> [B, H, A]: MLP on
    [flattened chunk, time embedding, cond]."""

    def __init__(self, horizon, act_dim, cond_dim, hp):
        super().__init__()
        self.time = TimeEmbedding(hp.time_dim, 2 * hp.time_dim)
        self.mlp = Mlp(horizon * act_dim + hp.time_dim + cond_dim, hp.hidden, horizon * act_dim)

    def forward(self, x, t, cond):
        b = x.shape[0]
        return self.mlp(torch.cat([x.reshape(b, -1), self.time(t), cond], dim=1)).view_as(x)


def make_denoiser(setup, hp):
    if setup.policy_net == "mlp":
        return MlpDenoiser(setup.horizon, ACT, TO * OBS, hp)
    return TemporalUnet(ACT, TO * OBS, hp)


# ---------------------------------------------------------------------------
# Policies (src/policy).


class DiffusionPolicy(nn.Module):
    """DDPM over chunks with Diffusion-QL's VP schedule, epsilon prediction,
    x0 clipped to [-1, 1] at every reverse step."""

    def __init__(self, setup, hp):
        super().__init__()
        self.net = make_denoiser(setup, hp)
        self.shape = (setup.horizon, ACT)
        steps = hp.diffusion_steps
        t = np.arange(1, steps + 1, dtype=np.float64)
        alphas = np.exp(-hp.beta_min / steps - 0.5 * (hp.beta_max - hp.beta_min) * (2 * t - 1) / steps**2)
        betas = 1.0 - alphas
        abar = np.cumprod(alphas)
        abar_prev = np.concatenate([[1.0], abar[:-1]])
        coef = {  # per step i, for the reverse loop
            "recip": np.sqrt(1.0 / abar),
            "recipm1": np.sqrt(1.0 / abar - 1.0),
            "mean1": betas * np.sqrt(abar_prev) / (1.0 - abar),
            "mean2": (1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
            "std": np.exp(0.5 * np.log(np.maximum(betas * (1.0 - abar_prev) / (1.0 - abar), 1e-20))),
        }
        self.coef = {k: v.tolist() for k, v in coef.items()}  # host Python floats
        self.register_buffer("sqrt_abar", torch.tensor(np.sqrt(abar), dtype=torch.float32), persistent=False)
        self.register_buffer(
            "sqrt_one_minus_abar", torch.tensor(np.sqrt(1.0 - abar), dtype=torch.float32), persistent=False
        )

    def bc_loss(self, obs, actions, target=None):
        """Noise-prediction MSE at a uniform random step per sample."""
        b = actions.shape[0]
        t = torch.randint(0, len(self.coef["std"]), (b,), device=actions.device)
        noise = torch.randn_like(actions)
        noisy = actions * self.sqrt_abar[t].view(b, 1, 1) + noise * self.sqrt_one_minus_abar[t].view(b, 1, 1)
        return F.mse_loss(self.net(noisy, t.float(), obs), noise)

    def sample(self, obs):
        """obs [B, To*O] -> chunks [B, H, A] in [-1, 1], differentiable through every step."""
        b = obs.shape[0]
        c = self.coef
        x = torch.randn(b, *self.shape, device=obs.device)
        for i in reversed(range(len(c["std"]))):
            eps = self.net(x, torch.full((b,), float(i), device=obs.device), obs)
            x0 = (x * c["recip"][i] - eps * c["recipm1"][i]).clamp(-1.0, 1.0)
            mean = x0 * c["mean1"][i] + x * c["mean2"][i]
            x = mean + torch.randn(b, *self.shape, device=obs.device) * c["std"][i] if i > 0 else mean
        return x.clamp(-1.0, 1.0)


class ConsistencyPolicy(nn.Module):
    """Consistency policy (CPQL): Karras levels, D(x, s) = c_skip x + c_out F(c_in x, 250 ln s),
    pseudo-Huber consistency loss against the EMA copy, one-step sampling."""

    def __init__(self, setup, hp):
        super().__init__()
        self.net = make_denoiser(setup, hp)
        self.shape = (setup.horizon, ACT)
        self.hp = hp
        lo, hi = hp.sigma_min ** (1 / hp.rho), hp.sigma_max ** (1 / hp.rho)
        sigmas = [(hi + i / (hp.scales - 1) * (lo - hi)) ** hp.rho for i in range(hp.scales)]
        self.sigmas = sigmas
        self.register_buffer("sigma_table", torch.tensor(sigmas, dtype=torch.float32), persistent=False)
        self.huber_c = 0.00054 * math.sqrt(setup.horizon * ACT)
        last = hp.scales - 1
        self.levels = [sigmas[k * last // hp.sample_steps] for k in range(hp.sample_steps)]

    def denoise(self, x, sigma, obs):
        smin, sd = self.hp.sigma_min, self.hp.sigma_data
        b = x.shape[0]
        s2_sd2 = (sigma.square() + sd * sd).view(b, 1, 1)
        c_skip = sd * sd / ((sigma - smin).square().view(b, 1, 1) + sd * sd)
        c_out = (sigma - smin).view(b, 1, 1) * sd / s2_sd2.sqrt()
        c_in = s2_sd2.rsqrt()
        time = torch.log(sigma + 1e-44) * 250.0
        return c_skip * x + c_out * self.net(x * c_in, time, obs)

    def bc_loss(self, obs, actions, target):
        b = actions.shape[0]
        n = torch.randint(0, len(self.sigmas) - 1, (b,), device=actions.device)
        sigma, sigma_next = self.sigma_table[n], self.sigma_table[n + 1]
        z = torch.randn_like(actions)
        denoised = self.denoise(actions + z * sigma.view(b, 1, 1), sigma, obs)
        with torch.no_grad():
            pulled = target.denoise(actions + z * sigma_next.view(b, 1, 1), sigma_next, obs)
        squared = (denoised - pulled).square().sum(dim=(1, 2))
        c = self.huber_c
        distance = torch.sqrt(squared + c * c) - c
        return (distance / (sigma - sigma_next)).mean()

    def sample(self, obs):
        b = obs.shape[0]
        smin = self.hp.sigma_min
        x = torch.randn(b, *self.shape, device=obs.device) * self.levels[0]
        x = self.denoise(x, torch.full((b,), self.levels[0], device=obs.device), obs)
        for s in self.levels[1:]:
            noise = torch.randn(b, *self.shape, device=obs.device)
            x = x.clamp(-1.0, 1.0) + noise * math.sqrt(max(s * s - smin * smin, 0.0))
            x = self.denoise(x, torch.full((b,), s, device=obs.device), obs)
        return x.clamp(-1.0, 1.0)


# ---------------------------------------------------------------------------
# Critics (src/critic).


class MlpCritic(nn.Module):
    """Q(s, chunk): MLP on cat[obs, flattened chunk, mask] -> [B]."""

    def __init__(self, setup, hp):
        super().__init__()
        h = setup.horizon
        self.use_mask = hp.use_mask
        inp = TO * OBS + h * ACT + (h if hp.use_mask else 0)
        self.head = Mlp(inp, hp.critic_hidden, 1, hp.critic_layer_norm)

    def forward(self, obs, chunk, mask):
        parts = [obs, chunk.reshape(chunk.shape[0], -1)] + ([mask] if self.use_mask else [])
        return self.head(torch.cat(parts, dim=1)).squeeze(1)


class UnetCritic(nn.Module):
    """Q(s, chunk): state MLP -> Mish, temporal encoder of [chunk, mask] FiLM'd on
    the state embedding, head MLP on [state embedding, sequence embedding] -> [B]."""

    def __init__(self, setup, hp):
        super().__init__()
        self.use_mask = hp.use_mask
        self.state = Mlp(TO * OBS, hp.state_hidden, hp.state_dim)
        self.sequence = TemporalEncoder(ACT + (1 if hp.use_mask else 0), hp.state_dim, hp)
        self.head = Mlp(hp.state_dim + hp.down_dims[-1], hp.critic_hidden, 1, hp.critic_layer_norm)

    def forward(self, obs, chunk, mask):
        state = F.mish(self.state(obs))
        steps = torch.cat([chunk, mask.unsqueeze(2)], dim=2) if self.use_mask else chunk
        return self.head(torch.cat([state, self.sequence(steps, state)], dim=1)).squeeze(1)


class TwinCritic(nn.Module):
    def __init__(self, setup, hp):
        super().__init__()
        kind = MlpCritic if setup.critic_kind == "mlp" else UnetCritic
        self.q1, self.q2 = kind(setup, hp), kind(setup, hp)

    def forward(self, obs, chunk, mask):
        return self.q1(obs, chunk, mask), self.q2(obs, chunk, mask)


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

    def sample(self, generator):
        """One batch of raw arrays: obs [B,To,O], actions [B,H,A], mask [B,H],
        cumulative reward, done, discount [B], next obs [B,To,O]."""
        t = generator.integers(0, ROWS, BATCH)
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


def build(config, lr_decay_steps, device):
    setup = CONFIGS[config]
    data = Data(setup.horizon)
    hp = Hyper(lr_decay_steps=lr_decay_steps)
    agent = Agent(setup, hp, data.normalizer(), device)
    generator = np.random.default_rng(1)
    fixed = to_torch(data.sample(generator), device)

    def one_step():
        batch = to_torch(data.sample(generator), device) if setup.sample_each_step else fixed
        return agent.update(batch)

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
    agent, one_step = build(args.config, lr_decay_steps=1000, device=device)
    columns = [f"eager: {measure(one_step, args.seconds, args.warmup)}"]
    if args.compile:
        torch.manual_seed(0)
        agent, one_step = build(args.config, lr_decay_steps=1000, device=device)
        logging.getLogger("torch.utils.flop_counter").setLevel(logging.ERROR)  # "triton not found"
        agent.compile()
        try:
            start = time.perf_counter()
            one_step()  # compiles
            compile_s = time.perf_counter() - start
        except Exception as e:  # noqa: BLE001 - any compiler failure is reported the same way
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(f"reference {args.config} compile: torch.compile failed: {type(e).__name__}: {first}")
            sys.exit(1)
        columns.append(f"compile: {measure(one_step, args.seconds, args.warmup)} [first step {compile_s:.0f} s]")
    print(f"reference {args.config} " + " | ".join(columns))


if __name__ == "__main__":
    main()
