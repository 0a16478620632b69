#!/usr/bin/env bash
# make demo: start the simulated LM on a free loopback port, then
#  1. run the example QA program over the bundled questions, and
#  2. on the bundled capitals task: score the program on the dev set,
#     optimize it on the training set with BootstrapFewShotWithRandomSearch
#     (one line per candidate), score the optimized program on the dev set,
#     and print the dev-set result (the held-out, honest figure).
# The simulator is a simulator: its scores measure the optimizer, not a model.
set -euo pipefail
dspex=${1:-bin/dspex}
# A relative path given is the caller's; the default is the repository's.
if [ $# -gt 0 ] && [[ $dspex == */* && $dspex != /* ]]; then
  dspex=$PWD/$dspex
fi
cd "$(dirname "$0")/.."
work=$(mktemp -d)
log=$work/mock-lm.log
"$dspex" mock-lm --addr 127.0.0.1:0 --script examples/qa/sim-script.yaml \
  --dataset examples/capitals/train.jsonl --dataset examples/capitals/dev.jsonl >"$log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true; wait $sim 2>/dev/null || true; rm -rf "$work"' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -n1)
  [ -n "$url" ] && break
  kill -0 $sim 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "simulated LM did not start:"; cat "$log"; exit 1; }
export DSPEX_LM_BASE_URL=$url
# The demo keeps its cache and traces to itself.
flags=(--cache "$work/cache.db" --db "$work/traces.db")

echo "== simulated LM (a simulator, not a model) at $url"
echo "   It answers the example questions from examples/qa/sim-script.yaml, and the"
echo "   capitals questions from examples/capitals/*.jsonl with a documented skill"
echo "   model that does better with good demos (docs/simulated-lm.md)."
echo
echo "== 1. dspex run --program examples/qa/program.yaml --inputs examples/qa/questions.jsonl"
"$dspex" run --program examples/qa/program.yaml --inputs examples/qa/questions.jsonl --no-progress "${flags[@]}"
echo
echo "== 2. the capitals task: score the program on the dev set (97 examples it is never optimized on)"
"$dspex" eval --program examples/capitals/program.yaml --data examples/capitals/dev.jsonl --no-progress "${flags[@]}" | tee "$work/before.txt"
echo
echo "== 3. optimize it with random search (BootstrapFewShotWithRandomSearch, --candidates 6) on the training set"
"$dspex" optimize --program examples/capitals/program.yaml --train examples/capitals/train.jsonl \
  --optimizer random-search --candidates 6 --out "$work/capitals.state.json" "${flags[@]}"
echo
echo "== 4. score the optimized program on the dev set (dspex eval --state)"
"$dspex" eval --program examples/capitals/program.yaml --data examples/capitals/dev.jsonl \
  --state "$work/capitals.state.json" --no-progress "${flags[@]}" | tee "$work/after.txt"
echo
score() { sed -n 's/^score: \([0-9.]*\).*/\1/p' "$1"; }
echo "== result on the dev set (held out, the honest figure): $(score "$work/before.txt") before, $(score "$work/after.txt") after"
echo "   (exact match × 100 against the simulator: it measures the optimizer, not a model)"
echo
echo "== dspex traces list (every run above is recorded)"
"$dspex" traces list --db "$work/traces.db" -n 5
