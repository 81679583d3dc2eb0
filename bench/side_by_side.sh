#!/usr/bin/env bash
# chunkql's update step next to the same step in PyTorch (bench/reference.py),
# in one sitting on this machine, both with 2 intra-op threads.
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
printf "%-6s %14s %14s %14s %9s %9s\n" config chunkql torch-eager torch-compile "x eager" "x compile"
for c in "${configs[@]}"; do
  rust=$(target/release/examples/update_speed "$c" --seconds "$seconds" --threads 2 | awk -v c="$c" '$2 == c":" && $4 == "steps/s" {print $3}')
  # torch.compile of the U-Net config takes minutes to compile: eager only.
  flags=(--config "$c" --seconds "$seconds" --threads 2)
  [ "$c" != b ] && flags+=(--compile)
  line=$(.venv/bin/python bench/reference.py "${flags[@]}" 2>/dev/null || true)
  eager=$(sed -n 's/.*eager: \([0-9.]*\) steps.*/\1/p' <<< "$line")
  compiled=$(sed -n 's/.*compile: \([0-9.]*\) steps.*/\1/p' <<< "$line")
  [ -n "$eager" ] || eager="-"
  [ -n "$compiled" ] || compiled="-"
  ratio() { if [ "$2" = "-" ]; then echo "-"; else awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; fi; }
  printf "%-6s %14s %14s %14s %9s %9s\n" "$c" "$rust" "$eager" "$compiled" "$(ratio "$rust" "$eager")" "$(ratio "$rust" "$compiled")"
done
target/release/examples/update_speed a --seconds "$seconds" --threads 2 | sed -n 2p
