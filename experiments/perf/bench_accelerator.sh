#!/usr/bin/env bash
# The accelerator rows of docs/performance.md in one go: a Last-FM-size epoch and all-user
# evaluation, and an ML-20M-size run's peak device memory, KGAT-AX at the paper's schedule
# (configs/recipes/paper.py: batch 1024, layers (64, 32, 16), full propagation per step).
#
#   bash experiments/perf/bench_accelerator.sh [OUT_DIR] [PREFIX]
#
# writes OUT_DIR/PREFIX-synthetic-SET-kgat_ax.json per set (default docs/bench, "gpu") and the
# markdown table OUT_DIR/PREFIX.md. SETS="small:1 last-fm:1 ml-20m:0" (preset:epochs; 0 = estimate
# the epoch from timed steps) picks the synthetic presets; extra arguments after PREFIX
# (--config.k=v, --profile 1) go to every run.
set -euo pipefail
out=${1:-docs/bench}
prefix=${2:-gpu}
shift $(( $# < 2 ? $# : 2 ))
python=${PYTHON:-python}
bench=experiments/perf/bench.py
mkdir -p "$out"
rows=()
for set in ${SETS:-small:1 last-fm:1 ml-20m:0}; do
  name=${set%%:*}
  epochs=${set##*:}
  json="$out/$prefix-synthetic-$name-kgat_ax.json"
  echo "== synthetic-$name (epochs $epochs) -> $json"
  config="configs/recipes/paper.py:model=kgat_ax,dataset=synthetic-$name"
  "$python" "$bench" --config "$config" --epochs "$epochs" --out "$json" "$@" \
      | tee "$out/$prefix-synthetic-$name.log"
  rows+=("$(tail -n 1 "$out/$prefix-synthetic-$name.log")")
done
{ "$python" "$bench" --header
  printf '%s\n' "${rows[@]}"; } > "$out/$prefix.md"
cat "$out/$prefix.md"
