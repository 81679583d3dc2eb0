#!/usr/bin/env bash
# Idempotent set-up of everything chunkql needs beyond the Rust toolchain:
#   - a project-local venv (.venv) with the PyPI torch wheel, whose libtorch
#     tch links against (CPU only: torch without its CUDA dependencies, plus the
#     two small CUDA runtime libraries libtorch_cpu links to), numpy and h5py
#     (bench script, test fixtures);
#   - `.libtorch`, a link to the wheel's torch directory (.cargo/config.toml);
#   - with --hdf5: Debian's libhdf5-dev for the `hdf5` cargo feature.
#   - with --cuda: the full torch wheel with its CUDA dependencies (GPU machines).
#   - with --bench: what `import torch` needs in .venv for bench/reference.py,
#     the torch wheel itself left as it is (so that the PyTorch reference runs
#     on the very libtorch chunkql links): torch's pure-Python dependencies,
#     and the CUDA libraries torch's Python extension links to (it loads
#     libtorch_cuda, which needs cuDNN, cuBLAS, NCCL, ... even on a CPU-only
#     machine); about 2.7 GB more, triton and cuda-bindings left out.
# A second run with nothing missing takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
CPU_PKGS=(nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85)
PY_PKGS=(numpy==2.3.5 h5py==3.15.1)
# --bench: what `pip install typing_extensions sympy networkx jinja2 fsspec
# filelock` picked (with sympy's and jinja2's own dependencies) ...
BENCH_PKGS=(typing_extensions==4.16.0 sympy==1.14.0 mpmath==1.3.0 networkx==3.6.1
  jinja2==3.1.6 MarkupSafe==3.0.4 fsspec==2026.9.0 filelock==4.2.12
# ... and torch 2.13.0's CUDA requirements (its METADATA) as pip resolved them.
  "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3"
  nvidia-cudnn-cu13==9.20.0.48 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.29.7
  nvidia-nvshmem-cu13==3.4.5 nvidia-cublas==13.1.1.3 nvidia-cuda-nvrtc==13.0.88
  nvidia-cufft==12.0.0.61 nvidia-cufile==1.15.1.6 nvidia-curand==10.4.0.35
  nvidia-cusolver==12.0.4.66 nvidia-cusparse==12.6.3.3 nvidia-nvjitlink==13.5.37
  nvidia-nvtx==13.0.85)
want_hdf5=0
want_cuda=0
want_bench=0
for arg in "$@"; do
  case "$arg" in
    --hdf5) want_hdf5=1 ;;
    --cuda) want_cuda=1 ;;
    --bench) want_bench=1 ;;
    *) echo "setup.sh: unknown option $arg (use --hdf5, --cuda, --bench)" >&2; exit 2 ;;
  esac
done

say() { echo "[setup] $*" >&2; }

py=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
done
[ -n "$py" ] || { echo "setup.sh: python3 not found (Python 3.11 is expected)" >&2; exit 1; }

stamp=".venv/.chunkql-setup-$TORCH_VERSION-$want_cuda"
if [ ! -f "$stamp" ]; then
  if [ ! -x .venv/bin/pip ]; then
    # (a venv made without pip, as Debian's python3 does without the
    # python3-venv package, is made again)
    "$py" -c 'import ensurepip' 2>/dev/null || {
      echo "setup.sh: $py cannot make a virtual environment with pip; install Debian's python3-venv (apt-get install python3-venv)" >&2
      exit 1
    }
    say "creating .venv with $py"
    rm -rf .venv
    "$py" -m venv .venv
  fi
  if [ "$want_cuda" = 1 ]; then
    say "installing torch==$TORCH_VERSION with CUDA (about 4.7 GB)"
    .venv/bin/pip install -q --disable-pip-version-check "torch==$TORCH_VERSION"
  else
    say "installing torch==$TORCH_VERSION for CPU (libtorch only, about 1.2 GB)"
    .venv/bin/pip install -q --disable-pip-version-check --no-deps "torch==$TORCH_VERSION" "${CPU_PKGS[@]}"
  fi
  say "installing ${PY_PKGS[*]}"
  .venv/bin/pip install -q --disable-pip-version-check "${PY_PKGS[@]}"
  touch "$stamp"
fi

torch_dir=$(echo .venv/lib/python3*/site-packages/torch)
[ -f "$torch_dir/lib/libtorch_cpu.so" ] || { echo "setup.sh: no libtorch in $torch_dir; delete .venv and run again" >&2; exit 1; }
if [ "$(readlink .libtorch 2>/dev/null)" != "$torch_dir" ]; then
  ln -sfn "$torch_dir" .libtorch
fi

bench_stamp=".venv/.chunkql-bench-$TORCH_VERSION"
if [ "$want_bench" = 1 ] && [ ! -f "$bench_stamp" ]; then
  say "installing torch's dependencies for bench/reference.py (about 2.7 GB)"
  # On success pip's only complaint is that triton, cuda-bindings and
  # setuptools>=77 are missing for torch: none of them is needed on the CPU.
  log=$(.venv/bin/pip install -q --disable-pip-version-check "${BENCH_PKGS[@]}" 2>&1) \
    || { echo "$log" >&2; echo "setup.sh: pip failed for --bench" >&2; exit 1; }
  .venv/bin/python -c "import torch" || { echo "setup.sh: import torch still fails after --bench" >&2; exit 1; }
  touch "$bench_stamp"
fi

apt_install() {
  local sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "setup.sh: needs Debian's $* and is neither root nor has sudo: install them (apt-get install $*) and run it again" >&2
      exit 1
    }
    sudo_cmd="sudo"
  fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$@" >/dev/null
}

if [ "$want_hdf5" = 1 ] && ! dpkg -s libhdf5-dev >/dev/null 2>&1; then
  say "installing Debian's libhdf5-dev (for --features hdf5)"
  apt_install libhdf5-dev pkg-config
fi

# The test suite (the --hdf5 set-up is `make test`'s) compiles a stand-in
# libtorch_cuda with g++ to check the CUDA load order without a GPU.
if [ "$want_hdf5" = 1 ] && ! command -v g++ >/dev/null 2>&1; then
  say "installing Debian's g++ (for a test of the CUDA load order)"
  apt_install g++
fi
