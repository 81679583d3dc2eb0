"""Numeric parity of bench/reference_nets.py with chunkql's networks, given
the same weights and inputs (written by examples/parity_dump.rs):

  CARGO_TARGET_DIR=/work/helper-target-4 cargo run --release --example parity_dump -- /work/parity-out
  .venv/bin/python bench/parity.py /work/parity-out            # configurations a, b, c
  .venv/bin/python bench/parity.py /work/parity-out --config b

Per configuration it builds the reference policy and twin critic
(reference_settings.CONFIGS, Hyper), loads chunkql's weights through the
name table RULES (every variable on both sides must be used exactly once,
shapes equal), recomputes every dumped output in float32 and, for scale, in
float64, and prints max |chunkql - reference| and that over max |reference|.
It exits 1 when a relative difference exceeds its tolerance (TOLERANCE).
"""

import argparse
import copy
import json
import re
import struct
import sys
from contextlib import contextmanager

import numpy as np
import torch

from reference_nets import ConsistencyPolicy, DiffusionPolicy, TwinCritic
from reference_settings import CONFIGS, Hyper

# Max |chunkql - reference| / max |reference| per output. Both sides are
# float32 (unit roundoff 6e-8) with different summation orders (chunkql's
# stacked baddbmm critics, its own Mish kernel, tch vs nn.Module call paths);
# 1e-5 leaves ~100 roundoffs of headroom for a few hundred accumulated terms
# per output (the float64 column shows each side's own error, ~1e-7..1e-6).
# `sample` of DDPM amplifies eps errors by sqrt(1/abar - 1) (up to 12.4 at
# T = 5) before clamping x0, over 5 steps: 1e-4.
TOLERANCE = {"sample": {"dql": 1e-4, "cpql": 1e-5}}
DEFAULT_TOLERANCE = 1e-5


def mlp_index(i, layer_norm):
    """Position of hidden Linear i in reference_nets.Mlp's Sequential."""
    return (3 if layer_norm else 2) * i


def rules(hp):
    """The name table: (chunkql regex, PyTorch replacement), applied in order
    with re.sub to every chunkql variable name (stacked twins already split
    into q1./q2., see unstack)."""
    ln, hidden, state = hp.critic_layer_norm, len(hp.critic_hidden), len(hp.state_hidden)
    return [
        # Policy: DiffusionPolicy/ConsistencyPolicy -> net; U-Net under net.unet.
        (r"^net\.unet\.", "net."),
        (r"\b(time|time_emb)\.l1\.", r"\1.mlp.0."),  # TimeEmbedding: Linear, Mish, Linear
        (r"\b(time|time_emb)\.l2\.", r"\1.mlp.2."),
        (r"^net\.mlp\.l(\d+)\.", lambda m: f"net.mlp.net.{mlp_index(int(m[1]), False)}."),
        (r"^net\.mlp\.out\.", f"net.mlp.net.{mlp_index(len(hp.hidden), False)}."),
        # U-Net / TemporalEncoder blocks.
        (r"\bdown(\d+)\.res(\d)\.", r"down_mid.down.\1.\2."),
        (r"\bdown(\d+)\.downsample\.", r"down_mid.down.\1.2."),
        (r"\bmid(\d)\.", r"down_mid.mid.\1."),
        (r"\bup(\d+)\.res(\d)\.", r"up.\1.\2."),
        (r"\bup(\d+)\.upsample\.", r"up.\1.2."),
        (r"\bfinal\.block\.", "final.0."),
        (r"\bfinal\.conv\.", "final.1."),
        (r"\b(block\d?|final\.0)\.conv\.", r"\1.0."),  # Conv1dBlock: Conv1d, GroupNorm, Mish
        (r"\b(block\d?|final\.0)\.norm\.", r"\1.1."),
        (r"\bfilm\.", "film.1."),  # Mish, Linear
        # Critics: head Mlp (LayerNorm), U-Net critic's state Mlp.
        (r"\.head\.l(\d+)\.", lambda m: f".head.net.{mlp_index(int(m[1]), ln)}."),
        (r"\.head\.n(\d+)\.", lambda m: f".head.net.{mlp_index(int(m[1]), ln) + 1}."),
        (r"\.head\.out\.", f".head.net.{mlp_index(hidden, ln)}."),
        (r"\.state\.l(\d+)\.", lambda m: f".state.net.{mlp_index(int(m[1]), False)}."),
        (r"\.state\.out\.", f".state.net.{mlp_index(state, False)}."),
    ]


# StackedMlp (the twin MLP critic as one network): heads.<layer>.<suffix>
# [2, ...] -> q1./q2.head.<layer>.<name>, with the tensor's transform.
STACKED = {
    "stacked_weight": ("weight", lambda w: w.T),  # [in, out] -> Linear's [out, in]
    "stacked_bias": ("bias", lambda b: b.reshape(-1)),  # [1, out]
    "ln_gain": ("weight", lambda g: g.reshape(-1)),
    "ln_shift": ("bias", lambda s: s.reshape(-1)),
}


def unstack(name, tensor):
    m = re.fullmatch(r"heads\.(\w+)\.(\w+)", name)
    if not m:
        return [(name, tensor)]
    new, f = STACKED[m[2]]
    return [(f"q{k + 1}.head.{m[1]}.{new}", f(tensor[k])) for k in range(tensor.shape[0])]


def read_safetensors(path):
    """{name: float32 tensor} of a safetensors file (no safetensors package needed)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        start, end = meta["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(body[start:end], np.float32).reshape(meta["shape"]).copy())
    return out


def load(module, chunkql_vars, table):
    """Copies chunkql's variables into `module` through `table`; fails on any
    variable left unmapped on either side or mapped twice, or a shape mismatch."""
    params = dict(module.named_parameters())
    done = {}
    for name, tensor in sorted(chunkql_vars.items()):
        for split_name, t in unstack(name, tensor):
            py = split_name
            for pattern, repl in table:
                py = re.sub(pattern, repl, py)
            if py not in params:
                sys.exit(f"parity: chunkql {name} -> {py}: no such reference parameter")
            if py in done:
                sys.exit(f"parity: {py} mapped twice ({done[py]}, {name})")
            if tuple(t.shape) != tuple(params[py].shape):
                sys.exit(f"parity: {name} {tuple(t.shape)} vs {py} {tuple(params[py].shape)}")
            with torch.no_grad():
                params[py].copy_(t)
            done[py] = name
    missing = sorted(set(params) - set(done))
    if missing:
        sys.exit(f"parity: {len(missing)} reference parameters not set from chunkql: {missing[:5]}")
    return len(done)


@contextmanager
def replayed_randn(draws):
    """torch.randn returns chunkql's noise draws `[K, B, ...]`, in order."""
    queue, real = list(draws), torch.randn

    def randn(*shape, device=None, **_):
        d = queue.pop(0)
        assert tuple(d.shape) == tuple(shape), (d.shape, shape)
        return d.to(device)

    torch.randn = randn
    try:
        yield
    finally:
        torch.randn = real
    assert not queue, f"{len(queue)} draws unused"


def reference_outputs(setup, policy, critic, io, dtype):
    """The reference's value of every dumped output, with inputs cast to `dtype`."""
    policy, critic = copy.deepcopy(policy).to(dtype), copy.deepcopy(critic).to(dtype)
    x = {k: v.to(dtype) for k, v in io.items()}
    out, default = {}, torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # torch.full / arange inside the modules
    with torch.no_grad():
        if setup.algorithm == "dql":
            out["eps"] = policy.net(x["x"], x["t"], x["obs"])
        else:
            out["denoised"] = policy.denoise(x["x"], x["sigma"], x["obs"])
        with replayed_randn(x["sample_noise"]):
            out["sample"] = policy.sample(x["obs"])
        out["q1"], out["q2"] = critic(x["obs"], x["actions"], x["mask"])
        ones = torch.ones_like(x["mask"])
        out["q1_sample"], out["q2_sample"] = critic(x["obs"], x["sample"], ones)
    torch.set_default_dtype(default)
    return out


def check(config, folder):
    setup, hp = CONFIGS[config], Hyper()
    io = read_safetensors(f"{folder}/{config}/io.safetensors")
    policy_class = DiffusionPolicy if setup.algorithm == "dql" else ConsistencyPolicy
    policy, critic = policy_class(setup, hp), TwinCritic(setup, hp)
    table = rules(hp)
    n_policy = load(policy, read_safetensors(f"{folder}/{config}/policy.safetensors"), table)
    n_critic = load(critic, read_safetensors(f"{folder}/{config}/critic.safetensors"), table)
    print(f"parity {config} ({setup.algorithm}, {setup.policy_net} policy, {setup.critic_kind} critic, "
          f"H {setup.horizon}): {n_policy} policy + {n_critic} critic tensors mapped")
    ref32 = reference_outputs(setup, policy, critic, io, torch.float32)
    ref64 = reference_outputs(setup, policy, critic, io, torch.float64)
    ok = True
    for name, want in ref32.items():
        got, exact = io[name].double(), ref64[name]
        scale = want.abs().max().item()
        diff = (got - want.double()).abs().max().item()
        rel = diff / scale
        tol = TOLERANCE.get(name, {}).get(setup.algorithm, DEFAULT_TOLERANCE)
        own = [(t - exact).abs().max().item() / scale for t in (got, want.double())]
        verdict = "ok" if rel <= tol else "FAIL"
        ok &= rel <= tol
        print(f"  {name:13s} max|out| {scale:8.4f}  max abs diff {diff:.2e}  rel {rel:.2e} (tol {tol:.0e}) {verdict}"
              f"   vs float64: chunkql {own[0]:.1e}, reference {own[1]:.1e}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="parity_dump's output folder")
    parser.add_argument("--config", nargs="+", choices=["a", "b", "c"], default=["a", "b", "c"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = [check(c, args.folder) for c in args.config]
    if not all(results):
        print("parity: FAILED")
        sys.exit(1)
    print("parity: all outputs within tolerance")


if __name__ == "__main__":
    main()
