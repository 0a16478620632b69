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
    # Go's fuzz coordinator can give up on a worker that a loaded machine
    # starves ("context deadline exceeded", no failing input written): that
    # is not a finding, so such a run is tried once more.
    for try in 1 2; do
      if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s >"$log" 2>&1; then
        break
      fi
      if [ "$try" = 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
        echo "  (the fuzz coordinator timed out on a starved worker; trying once more)"
        continue
      fi
      cat "$log"; exit 1
    done
  done
done
