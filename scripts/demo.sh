#!/usr/bin/env bash
# Continue the bundled timed-out example run twice: replay-only (no model needed),
# then in full against the scripted model. Outputs go to a fresh folder, printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BFC=.venv/bin/benchflow-continue
RUN=examples/runs/inventory-report__timeout
OUT="$(mktemp -d "${TMPDIR:-/tmp}/bfc-demo-XXXXXX")"

echo "== 1. replay-only: rebuild the workspace at the cut-point, verify, stop"
$BFC "$RUN" --tasks-dir examples/tasks --replay-only --output "$OUT/replay-only"

echo
echo "== 2. full continuation: replay, then the scripted model takes over at the cut-point"
$BFC scripted-model examples/scripts/inventory-report.json --latency 1 > "$OUT/scripted-model.url" &
MODEL_PID=$!
trap 'kill $MODEL_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$OUT/scripted-model.url" ] && break; sleep 0.1; done
OPENAI_BASE_URL="$(head -1 "$OUT/scripted-model.url")" \
  $BFC "$RUN" --tasks-dir examples/tasks --model openai/scripted --output "$OUT/full"

echo
echo "outputs in $OUT"
