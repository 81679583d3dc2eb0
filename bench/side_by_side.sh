#!/usr/bin/env bash
# chunkql's update step next to the same step in PyTorch (bench/reference.py),
# in one sitting on this machine, both on 2 threads: chunkql as `chunkql
# train` runs it (the batch split into one slice per thread), and with the
# whole batch on one thread with 2 intra-op threads (the "1 slice" column,
# how PyTorch runs its step). chunkql lets MKL pick its matrix-product kernels
# by instruction set on any CPU (src/device/mkl.rs); PyTorch as installed
# keeps MKL's vendor check (generic AVX2 kernels on an AMD CPU), and the
# chunkql binaries keep freed memory for the next update
# (src/device/allocator.rs) where Python runs with glibc's defaults. So
# PyTorch eager runs twice: as installed ("torch-eager", the issue's
# reference) and with chunkql's process settings ("eager+tuned": the MKL
# override preloaded from bench/mkl_by_isa.c and the same malloc settings
# as GLIBC_TUNABLES).
#   bench/side_by_side.sh [SECONDS] [CONFIGS...]     (default 20 s each; a b c loop)
# ROUNDS=R (default 1) runs every column R times, interleaved (chunkql,
# 1 slice, PyTorch, chunkql, ...), and prints each column's median: on a
# noisy VM this keeps a slow minute from landing on one side only.
# Needs `scripts/setup.sh --bench` (torch importable from Python).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
configs=("${@:-a b c loop}")
read -r -a configs <<< "${configs[*]}"
rounds=${ROUNDS:-1}
scripts/setup.sh --bench
cargo build --release --example update_speed -q
mkdir -p target
gcc -O2 -shared -fPIC bench/mkl_by_isa.c -o target/libmkl_by_isa.so
# src/device/allocator.rs's settings, for glibc in the Python process.
tunables=glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=16777216:glibc.malloc.mmap_threshold=33554432

# The median of the numbers given ("-" when there are none).
median() {
  if [ "$#" -eq 0 ]; then echo "-"; return; fi
  printf "%s\n" "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# The steps/s reference.py printed for MODE (eager, compile) in LINE, or nothing.
rate() { sed -n "s/.*$1: \([0-9.]*\) steps.*/\1/p" <<< "$2"; }
ratio() { if [ "$2" = "-" ]; then echo "-"; else awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; fi; }

# What reference.py said on stderr (a torch.compile failure, say): kept.
errors=target/side_by_side.stderr
: > "$errors"
echo "$rounds round(s) of $seconds s per column; steps/s, medians over rounds"
printf "%-6s %10s %10s %12s %10s %14s %9s %11s %9s %9s\n" config chunkql "1 slice" torch-eager eager+tuned torch-compile "x eager" "x tuned" "x compile" "1 slice x eager"
for c in "${configs[@]}"; do
  speed() { target/release/examples/update_speed "$c" --seconds "$seconds" --threads 2 "$@" | awk -v c="$c" '$2 == c":" && $4 == "steps/s" {print $3}'; }
  # torch.compile of the U-Net config takes minutes to compile: eager only.
  flags=(--config "$c" --seconds "$seconds" --threads 2)
  [ "$c" != b ] && flags+=(--compile)
  rust=() single=() eager=() tuned=() compiled=()
  for ((r = 0; r < rounds; r++)); do
    rust+=("$(speed)")
    single+=("$(speed --workers 1)")
    line=$(.venv/bin/python bench/reference.py "${flags[@]}" 2>>"$errors" || true)
    e=$(rate eager "$line") k=$(rate compile "$line")
    [ -n "$e" ] && eager+=("$e")
    [ -n "$k" ] && compiled+=("$k")
    line=$(LD_PRELOAD="$PWD/target/libmkl_by_isa.so" GLIBC_TUNABLES="$tunables" \
      .venv/bin/python bench/reference.py --config "$c" --seconds "$seconds" --threads 2 2>>"$errors" || true)
    e=$(rate eager "$line")
    [ -n "$e" ] && tuned+=("$e")
  done
  rust_m=$(median "${rust[@]}")
  single_m=$(median "${single[@]}")
  eager_m=$(median "${eager[@]+"${eager[@]}"}")
  tuned_m=$(median "${tuned[@]+"${tuned[@]}"}")
  compiled_m=$(median "${compiled[@]+"${compiled[@]}"}")
  printf "%-6s %10s %10s %12s %10s %14s %9s %11s %9s %9s\n" "$c" "$rust_m" "$single_m" "$eager_m" "$tuned_m" \
    "$compiled_m" "$(ratio "$rust_m" "$eager_m")" "$(ratio "$rust_m" "$tuned_m")" \
    "$(ratio "$rust_m" "$compiled_m")" "$(ratio "$single_m" "$eager_m")"
  if [ "$rounds" -gt 1 ]; then
    echo "       rounds: chunkql ${rust[*]} | 1 slice ${single[*]} | eager ${eager[*]-} | eager+tuned ${tuned[*]-} | compile ${compiled[*]-}"
  fi
done
target/release/examples/update_speed a --seconds "$seconds" --threads 2 | sed -n 2p
if [ -s "$errors" ]; then
  echo "(the PyTorch side's messages are in $errors: where a column shows '-', the reason is there)"
fi
