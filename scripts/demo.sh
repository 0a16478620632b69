#!/usr/bin/env bash
# make demo: start the simulated LM on a free loopback port, run the example
# program over the bundled questions, print the predictions, stop the server.
set -euo pipefail
dspex=${1:-bin/dspex}
cd "$(dirname "$0")/.."
log=$(mktemp)
"$dspex" mock-lm --addr 127.0.0.1:0 --script examples/qa/sim-script.yaml >"$log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true; wait $sim 2>/dev/null || true; rm -f "$log"' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -n1)
  [ -n "$url" ] && break
  kill -0 $sim 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "simulated LM did not start:"; cat "$log"; exit 1; }
echo "== simulated LM (a simulator, not a model) at $url"
echo "== dspex run --program examples/qa/program.yaml --inputs examples/qa/questions.jsonl"
DSPEX_LM_BASE_URL=$url "$dspex" run --program examples/qa/program.yaml --inputs examples/qa/questions.jsonl
