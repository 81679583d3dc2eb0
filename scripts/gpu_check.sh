#!/usr/bin/env bash
# The GPU check of docs/scaling.md, prepared on the CPU machine and run on a
# GPU machine that has PyTorch installed but cannot download anything.
#
#   scripts/gpu_check.sh build   # here: binaries for the GPU machine's torch, in .gpu/
#   scripts/gpu_check.sh run     # there: the checks and the GPU figures (log in $OUT or .gpu/)
#   scripts/gpu_check.sh run batches   # there: only the step's time against the batch size
#
# The project's device tool carries `.gpu` to the GPU machine:
#   run(command="scripts/gpu_check.sh run", carry=[".gpu/bin"], timeout_s=540)
#
# Why a build of its own: the GPU machine's image holds torch 2.11.0 (CUDA 13)
# and nothing can be fetched there, while chunkql links tch 0.26, which wants
# libtorch 2.13. tch 0.24 is the same API for torch 2.11.0 (chunkql builds
# with it unchanged), so `build` compiles a copy of the working tree with tch
# pinned to 0.24 against the CPU part of the torch 2.11.0 wheel, and `run`
# points the binaries at the GPU machine's own torch/lib (libtorch_cuda is
# loaded from there at run time, src/device/mod.rs). Nothing here changes the
# project's own build.
set -euo pipefail
cd "$(dirname "$0")/.."

GPU_TORCH=2.11.0   # the GPU image's torch (`python3 -c 'import torch; print(torch.__version__)'` there)
GPU_TCH=0.24.0     # the tch release for that libtorch
say() { echo "[gpu_check] $*" >&2; }

build() {
  local venv=.gpu/venv src=.gpu/src
  mkdir -p .gpu/bin
  if [ ! -f "$venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so" ]; then
    say "installing torch==$GPU_TORCH (libtorch only) into $venv"
    python3.11 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "torch==$GPU_TORCH" \
      nvidia-cuda-runtime nvidia-cuda-cupti
  fi
  local libtorch
  libtorch=$(cd "$venv/lib/python3.11/site-packages/torch" && pwd)
  say "copying the working tree to $src with tch pinned to $GPU_TCH"
  rm -rf "$src" && mkdir -p "$src"   # a fresh copy: files deleted here go there too
  git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$src"
  sed -i "s/^tch = \"=[0-9.]*\"/tch = \"=$GPU_TCH\"/" "$src/Cargo.toml"
  grep -q "^tch = \"=$GPU_TCH\"" "$src/Cargo.toml" || { echo "gpu_check: could not pin tch in $src/Cargo.toml" >&2; exit 1; }
  say "building chunkql, update_speed and the library tests (release)"
  (
    cd "$src"
    export LIBTORCH="$libtorch" CARGO_TARGET_DIR=../target
    cargo build --release -q --bin chunkql --example update_speed
    # (not -q: the test binary's path is read from cargo's 'Executable' line)
    cargo test --release --lib --no-run 2>&1 | tee ../test-build.log >&2
  )
  local tests
  tests=$(sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))/\1/p' .gpu/test-build.log | tail -n 1)
  [ -n "$tests" ] || { echo "gpu_check: no library test binary in .gpu/test-build.log" >&2; exit 1; }
  cp .gpu/target/release/chunkql .gpu/target/release/examples/update_speed .gpu/bin/
  cp ".gpu/src/$tests" .gpu/bin/chunkql-lib-tests
  du -sh .gpu/bin >&2
  say "done: carry .gpu/bin, run scripts/gpu_check.sh run"
}

run() {
  local out=${OUT:-.gpu/out}
  mkdir -p "$out"
  checks "$out" "${1:-all}" 2>&1 | tee "$out/gpu_check.log"
  return "${PIPESTATUS[0]}"
}

# The update step at growing batch sizes, chunkql then PyTorch eager: (a) and
# the U-Net configuration (b). At the issue's 256 a GPU waits on the host
# most of the time (bench/gpu_overhead.py), so a larger batch costs little.
batches() {
  local py=$1 status=0
  echo "== the update step against the batch size: chunkql, then PyTorch eager"
  for b in 256 1024 4096 16384; do
    .gpu/bin/update_speed a --device cuda --seconds 3 --threads 8 --batch "$b" || status=1
    PYTHONUNBUFFERED=1 $py bench/reference.py --config a --device cuda --seconds 3 --threads 8 --batch "$b" || status=1
  done
  for b in 1024 4096; do
    .gpu/bin/update_speed b --device cuda --seconds 3 --threads 8 --batch "$b" || status=1
    PYTHONUNBUFFERED=1 $py bench/reference.py --config b --device cuda --seconds 3 --threads 8 --batch "$b" || status=1
  done
  return "$status"
}

checks() {
  local out=$1 which=$2
  [ -x .gpu/bin/chunkql ] || { echo "gpu_check: no .gpu/bin/chunkql: run 'scripts/gpu_check.sh build' first and carry .gpu/bin"; exit 1; }
  local py=python3 torch_lib version
  torch_lib=$($py -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  version=$($py -c 'import torch; print(torch.__version__)')
  echo "== machine"
  nvidia-smi -L || true
  nproc
  echo "torch $version at $torch_lib (binaries built for $GPU_TORCH)"
  case "$version" in "$GPU_TORCH"*) ;; *) echo "gpu_check: WARNING: torch is $version, not $GPU_TORCH" ;; esac
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local status=0
  if [ "$which" = batches ]; then
    batches "$py" || status=1
    echo "== exit status $status"
    return "$status"
  fi

  echo "== libtorch_cuda loads and finds the GPU (cuda:0; cuda:1 named as missing on one GPU)"
  .gpu/bin/chunkql-lib-tests --exact device::tests::asking_for_cuda_here_gives_a_gpu_or_a_clear_error \
    --nocapture || status=1

  echo "== every tensor of an update is on the GPU (both agents, whole batch and split)"
  CHUNKQL_TEST_DEVICE=cuda .gpu/bin/chunkql-lib-tests on_the_agent_device || status=1

  echo "== chunkql train --device cuda (pendulum, Diffusion-QL, H 4, 300 updates) and its evaluation"
  rm -rf .gpu/run
  .gpu/bin/chunkql train --device cuda --steps 300 --out .gpu/run --set eval_every=0 || status=1
  # Back with the log: the summary and the pictures (the device tool returns 8 files at most).
  cp .gpu/run/summary.json .gpu/run/curves.png .gpu/run/rollouts.png "$out/" || status=1
  echo "== chunkql eval --device cuda (replays the run's own evaluation episodes: same score expected)"
  .gpu/bin/chunkql eval .gpu/run --device cuda || status=1

  echo "== update step on the GPU: chunkql, then PyTorch eager, configurations a c loop b"
  for c in a c loop b; do
    .gpu/bin/update_speed "$c" --device cuda --seconds 5 --threads 8 || status=1
    PYTHONUNBUFFERED=1 $py bench/reference.py --config "$c" --device cuda --seconds 5 --threads 8 || status=1
  done
  echo "== where a GPU step's time goes: launch, read-back and copy costs; kernels per PyTorch update"
  PYTHONUNBUFFERED=1 $py bench/gpu_overhead.py --device cuda || status=1
  echo "== PyTorch with torch.compile, configuration a (compiling bounded at 240 s)"
  PYTHONUNBUFFERED=1 timeout 240 $py bench/reference.py --config a --device cuda --seconds 5 --threads 8 --compile \
    || status=1
  batches "$py" || status=1
  echo "== exit status $status"
  return "$status"
}

case "${1:-}" in
  build) build ;;
  run)
    case "${2:-}" in
      "" | batches) run "${2:-}" ;;
      *) echo "gpu_check: unknown part '${2}' (run, or run batches)" >&2; exit 2 ;;
    esac ;;
  *) echo "usage: scripts/gpu_check.sh build|run [batches]" >&2; exit 2 ;;
esac
