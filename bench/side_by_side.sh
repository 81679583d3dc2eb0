#!/usr/bin/env bash
# chunkql's update step next to the same step in PyTorch (bench/reference.py),
# in one sitting on this machine, both on 2 threads: chunkql as `chunkql
# train` runs it (the batch split into one slice per thread), and with the
# whole batch on one thread with 2 intra-op threads (the "1 slice" column,
# how PyTorch runs its step).
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

# The median of the numbers given ("-" when there are none).
median() {
  if [ "$#" -eq 0 ]; then echo "-"; return; fi
  printf "%s\n" "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { if [ "$2" = "-" ]; then echo "-"; else awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; fi; }

echo "$rounds round(s) of $seconds s per column; steps/s, medians over rounds"
printf "%-6s %10s %10s %12s %14s %9s %9s %9s\n" config chunkql "1 slice" torch-eager torch-compile "x eager" "x compile" "1 slice x eager"
for c in "${configs[@]}"; do
  speed() { target/release/examples/update_speed "$c" --seconds "$seconds" --threads 2 "$@" | awk -v c="$c" '$2 == c":" && $4 == "steps/s" {print $3}'; }
  # torch.compile of the U-Net config takes minutes to compile: eager only.
  flags=(--config "$c" --seconds "$seconds" --threads 2)
  [ "$c" != b ] && flags+=(--compile)
  rust=() single=() eager=() compiled=()
  for ((r = 0; r < rounds; r++)); do
    rust+=("$(speed)")
    single+=("$(speed --workers 1)")
    line=$(.venv/bin/python bench/reference.py "${flags[@]}" 2>/dev/null || true)
    e=$(sed -n 's/.*eager: \([0-9.]*\) steps.*/\1/p' <<< "$line")
    k=$(sed -n 's/.*compile: \([0-9.]*\) steps.*/\1/p' <<< "$line")
    [ -n "$e" ] && eager+=("$e")
    [ -n "$k" ] && compiled+=("$k")
  done
  rust_m=$(median "${rust[@]}")
  single_m=$(median "${single[@]}")
  eager_m=$(median "${eager[@]+"${eager[@]}"}")
  compiled_m=$(median "${compiled[@]+"${compiled[@]}"}")
  printf "%-6s %10s %10s %12s %14s %9s %9s %9s\n" "$c" "$rust_m" "$single_m" "$eager_m" "$compiled_m" \
    "$(ratio "$rust_m" "$eager_m")" "$(ratio "$rust_m" "$compiled_m")" "$(ratio "$single_m" "$eager_m")"
  if [ "$rounds" -gt 1 ]; then
    echo "       rounds: chunkql ${rust[*]} | 1 slice ${single[*]} | eager ${eager[*]-} | compile ${compiled[*]-}"
  fi
done
target/release/examples/update_speed a --seconds "$seconds" --threads 2 | sed -n 2p
