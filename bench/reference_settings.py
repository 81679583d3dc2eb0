"""Settings of bench/reference.py: the shapes of benches/update.rs's data,
AgentConfig::default() (src/agent/config.rs), issue 5's configurations, and
the parameter counts chunkql builds for them (checked by `--check`)."""

from dataclasses import dataclass


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

