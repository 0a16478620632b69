#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a short time ($1, e.g. 3s).
set -euo pipefail
fuzztime=${1:-3s}
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s >"$log" 2>&1 || {
      cat "$log"; exit 1; }
  done
done
