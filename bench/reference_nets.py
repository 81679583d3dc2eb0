"""The networks of bench/reference.py in plain PyTorch: src/nn's building
blocks (MLP, time embedding, temporal U-Net), src/policy's DDPM and
consistency policies, src/critic's chunk critics."""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_settings import ACT, OBS, TO

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

