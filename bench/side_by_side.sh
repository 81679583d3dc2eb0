#!/usr/bin/env bash
# chunkql's update step next to the same step in PyTorch (bench/reference.py),
# in one sitting on this machine, both on 2 threads: chunkql as `chunkql
# train` runs it (the batch split into one slice per thread), and with the
# whole batch on one thread with 2 intra-op threads (the "1 slice" column,
# how PyTorch runs its step).
#   bench/side_by_side.sh [SECONDS] [CONFIGS...]     (default 20 s each; a b c loop)
# Needs `scripts/setup.sh --bench` (torch importable from Python).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
configs=("${@:-a b c loop}")
read -r -a configs <<< "${configs[*]}"
scripts/setup.sh --bench
cargo build --release --example update_speed -q
printf "%-6s %10s %10s %12s %14s %9s %9s %9s\n" config chunkql "1 slice" torch-eager torch-compile "x eager" "x compile" "1 slice x eager"
for c in "${configs[@]}"; do
  speed() { target/release/examples/update_speed "$c" --seconds "$seconds" --threads 2 "$@" | awk -v c="$c" '$2 == c":" && $4 == "steps/s" {print $3}'; }
  rust=$(speed)
  single=$(speed --workers 1)
  # torch.compile of the U-Net config takes minutes to compile: eager only.
  flags=(--config "$c" --seconds "$seconds" --threads 2)
  [ "$c" != b ] && flags+=(--compile)
  line=$(.venv/bin/python bench/reference.py "${flags[@]}" 2>/dev/null || true)
  eager=$(sed -n 's/.*eager: \([0-9.]*\) steps.*/\1/p' <<< "$line")
  compiled=$(sed -n 's/.*compile: \([0-9.]*\) steps.*/\1/p' <<< "$line")
  [ -n "$eager" ] || eager="-"
  [ -n "$compiled" ] || compiled="-"
  ratio() { if [ "$2" = "-" ]; then echo "-"; else awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; fi; }
  printf "%-6s %10s %10s %12s %14s %9s %9s %9s\n" "$c" "$rust" "$single" "$eager" "$compiled" \
    "$(ratio "$rust" "$eager")" "$(ratio "$rust" "$compiled")" "$(ratio "$single" "$eager")"
done
target/release/examples/update_speed a --seconds "$seconds" --threads 2 | sed -n 2p
