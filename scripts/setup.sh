#!/usr/bin/env bash
# Idempotent set-up of everything chunkql needs beyond the Rust toolchain:
#   - a project-local venv (.venv) with the PyPI torch wheel, whose libtorch
#     tch links against (CPU only: torch without its CUDA dependencies, plus the
#     two small CUDA runtime libraries libtorch_cpu links to), numpy and h5py
#     (bench script, test fixtures);
#   - `.libtorch`, a link to the wheel's torch directory (.cargo/config.toml);
#   - with --hdf5: Debian's libhdf5-dev for the `hdf5` cargo feature.
#   - with --cuda: the full torch wheel with its CUDA dependencies (GPU machines).
# A second run with nothing missing takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
CPU_PKGS=(nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85)
PY_PKGS=(numpy==2.3.5 h5py==3.15.1)
want_hdf5=0
want_cuda=0
for arg in "$@"; do
  case "$arg" in
    --hdf5) want_hdf5=1 ;;
    --cuda) want_cuda=1 ;;
    *) echo "setup.sh: unknown option $arg (use --hdf5, --cuda)" >&2; exit 2 ;;
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
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $py"
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

if [ "$want_hdf5" = 1 ] && ! dpkg -s libhdf5-dev >/dev/null 2>&1; then
  say "installing Debian's libhdf5-dev (for --features hdf5)"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libhdf5-dev pkg-config >/dev/null
fi
