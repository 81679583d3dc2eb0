"""The machine's practical ceiling for the update step's matrix products:
float32 GEMM throughput of libtorch (MKL, the very library chunkql's step
runs on) and of numpy (OpenBLAS) on the shapes of configuration (a), on one
thread and on two. The update step's GFLOP/s (`update_speed a`) is read
against these figures rather than against the vector units' paper peak.

Run: .venv/bin/python bench/gemm_ceiling.py   (needs `scripts/setup.sh --bench`)
On a non-Intel CPU, MKL as installed runs generic kernels; chunkql's
binaries override that (src/device/mkl.rs). The same override for this
script: gcc -O2 -shared -fPIC bench/mkl_by_isa.c -o target/libmkl_by_isa.so,
then LD_PRELOAD=$PWD/target/libmkl_by_isa.so .venv/bin/python bench/gemm_ceiling.py
"""

import os
import time

# numpy's OpenBLAS reads its thread count once, at import: one thread here,
# so its column is the single-core figure.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

# [rows, in, out]: a half batch (one slice) and the whole batch through a
# 256-wide hidden layer, the denoiser's first layer (H*A + time + obs = 57)
# and the critic's (obs + H*A + H = 45).
SHAPES = [(128, 256, 256), (256, 256, 256), (256, 57, 256), (256, 45, 256)]


def rate(f, flop, seconds=1.0):
    """GFLOP/s of `f`, the median of 5 windows after a warm-up."""
    for _ in range(20):
        f()
    rates = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            f()
            n += 1
        rates.append(n * flop / (time.perf_counter() - start) / 1e9)
    return sorted(rates)[2]


def main():
    rng = np.random.default_rng(0)
    print(f"{'rows x in x out':>16} {'torch 1 thread':>15} {'torch 2 threads':>16} {'numpy 1 thread':>15}")
    for m, k, n in SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out = torch.empty(m, n)
        flop = 2 * m * k * n
        columns = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            columns.append(rate(lambda: torch.mm(ta, tb, out=out), flop))
        columns.append(rate(lambda: a @ b, flop))
        print(f"{f'{m} x {k} x {n}':>16} " + " ".join(f"{c:>15.1f}" for c in columns) + "  GFLOP/s")


if __name__ == "__main__":
    main()
