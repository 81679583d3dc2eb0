"""What an update step costs on a GPU beyond its arithmetic, for docs/scaling.md.

At batch 256 the networks of issue 5's configurations are small: an H200 does
the arithmetic of one update in well under a millisecond, and the step's time
goes to the host driving it. This measures the pieces of that on the machine
it runs on:

  launch   host time per kernel launch, enqueued back to back (x.add_(1) on
           256 floats, one synchronisation at the end)
  sync     one launch plus one blocking read of a scalar (x.item())
  copy     one blocking copy of a [256, 17] float32 array from ordinary
           (pageable) host memory to the GPU, and the same from pinned memory
  per update (PyTorch reference, bench/reference.py, configurations a c b):
           kernels launched, host-to-GPU and GPU-to-host copies, the GPU's busy
           time (the kernels' own durations summed) against the step's wall
           time, from torch.profiler over 10 updates.

  python3 bench/gpu_overhead.py [--device cuda]
"""

import argparse
import statistics
import time

import numpy as np
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from reference import build


def per_call(fn, n, device, repeats=5):
    """Median over `repeats` of the mean seconds of `fn` over `n` calls."""
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def primitives(device):
    x = torch.zeros(256, device=device)
    launch = per_call(lambda: x.add_(1.0), 20000, device)
    sync = per_call(lambda: x.add_(1.0)[0].item(), 2000, device)
    host = np.random.default_rng(0).standard_normal((256, 17)).astype(np.float32)
    copy = per_call(lambda: torch.from_numpy(host).to(device), 2000, device)
    pinned = torch.from_numpy(host).pin_memory()
    copy_pinned = per_call(lambda: pinned.to(device, non_blocking=True), 2000, device)
    print(
        f"gpu_overhead: launch {launch * 1e6:.1f} us, launch + blocking read of one float "
        f"{sync * 1e6:.1f} us, pageable copy [256, 17] {copy * 1e6:.1f} us, "
        f"pinned copy {copy_pinned * 1e6:.1f} us"
    )


def per_update(config, device, updates=10):
    torch.manual_seed(0)
    _, one_step = build(config, lr_decay_steps=1000, device=device)
    for _ in range(5):
        one_step()
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(updates):
            one_step()
        torch.cuda.synchronize(device)
    wall = (time.perf_counter() - start) / updates  # under the profiler: slower
    kernels = h2d = d2h = 0
    busy_us = 0.0
    for e in prof.events():
        if e.device_type != DeviceType.CUDA:
            continue
        name = e.name
        if name.startswith("Memcpy HtoD"):
            h2d += 1
        elif name.startswith("Memcpy DtoH"):
            d2h += 1
        elif not name.startswith("Memcpy") and not name.startswith("Memset"):
            kernels += 1
        busy_us += e.time_range.elapsed_us()
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(updates * 5):
        one_step()
    torch.cuda.synchronize(device)
    plain = (time.perf_counter() - start) / (updates * 5)
    print(
        f"gpu_overhead {config}: {kernels / updates:.0f} kernels, {h2d / updates:.0f} host-to-GPU and "
        f"{d2h / updates:.0f} GPU-to-host copies per update; GPU busy {busy_us / updates / 1e3:.2f} ms "
        f"of {plain * 1e3:.1f} ms per update ({wall * 1e3:.1f} ms under the profiler)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--configs", default="a,c,b")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise SystemExit(f"gpu_overhead: measures a CUDA GPU; {args.device} is not one here")
    torch.set_num_threads(8)
    primitives(device)
    for config in args.configs.split(","):
        try:
            per_update(config, device)
        except Exception as e:  # noqa: BLE001 - one failed count leaves the others
            print(f"gpu_overhead {config}: failed: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
