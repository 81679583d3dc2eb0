"""Configuration (b)'s 1-D convolutions three ways, on the step's shapes:
libtorch's conv1d (oneDNN's direct convolution, what chunkql and
bench/reference.py run), and lowered to one matrix product (pad, unfold,
addmm on MKL) over channels-first [B, C, T] and channels-last [B, T, C]
input. GFLOP/s, forward alone (no_grad) and forward + backward (weights,
bias and input gradients; 3x the forward's FLOPs). docs/benchmarks.md
records what it showed.

Run: .venv/bin/python bench/conv_lowering.py   (needs `scripts/setup.sh --bench`)
"""

import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
BATCH = 256
# (in, out, T, kernel): the U-Net's levels at H = 16 (T = 16, 8, 4), the up
# path's first block after the skip concatenation (512 in), the first layer.
SHAPES = [(64, 64, 16, 5), (128, 128, 8, 5), (256, 256, 4, 5), (512, 128, 4, 5), (6, 64, 16, 5)]


def rate(f, flop, seconds=1.0):
    for _ in range(3):
        f()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        f()
        n += 1
    return flop * n / (time.perf_counter() - start) / 1e9


def main():
    print(f"{'in -> out, T, k':>20} {'pass':>5} {'conv1d':>8} {'lowered':>8} {'lowered, [B,T,C]':>17}  GFLOP/s")
    for cin, cout, t, k in SHAPES:
        x = torch.randn(BATCH, cin, t, requires_grad=True)
        w = torch.randn(cout, cin, k, requires_grad=True)
        b = torch.randn(cout, requires_grad=True)
        x_last = torch.randn(BATCH, t, cin, requires_grad=True)
        w_last = torch.randn(k * cin, cout, requires_grad=True)
        flop = 2 * BATCH * cin * cout * k * t

        def conv():
            return F.conv1d(x, w, b, padding=k // 2)

        def lowered():
            cols = F.pad(x, (k // 2, k // 2)).unfold(2, k, 1)  # [B, in, T, k]
            cols = cols.permute(0, 2, 1, 3).reshape(BATCH * t, cin * k)
            y = torch.addmm(b, cols, w.reshape(cout, cin * k).t())
            return y.reshape(BATCH, t, cout).permute(0, 2, 1)

        def lowered_last():
            cols = F.pad(x_last, (0, 0, k // 2, k // 2)).unfold(1, k, 1)  # [B, T, in, k]
            cols = cols.transpose(2, 3).reshape(BATCH * t, k * cin)
            return torch.addmm(b, cols, w_last).reshape(BATCH, t, cout)

        grad = torch.randn(BATCH, cout, t)
        grad_last = torch.randn(BATCH, t, cout)

        def with_backward(f, g):
            return lambda: f().backward(g)

        name = f"{cin} -> {cout}, {t}, {k}"
        with torch.no_grad():
            fwd = [rate(conv, flop), rate(lowered, flop), rate(lowered_last, flop)]
        both = [
            rate(with_backward(conv, grad), 3 * flop),
            rate(with_backward(lowered, grad), 3 * flop),
            rate(with_backward(lowered_last, grad_last), 3 * flop),
        ]
        print(f"{name:>20} {'fwd':>5} {fwd[0]:8.1f} {fwd[1]:8.1f} {fwd[2]:17.1f}")
        print(f"{'':>20} {'f+b':>5} {both[0]:8.1f} {both[1]:8.1f} {both[2]:17.1f}")


if __name__ == "__main__":
    main()
