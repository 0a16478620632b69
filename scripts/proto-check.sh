#!/usr/bin/env bash
# Fails when the committed generated code of bridge/proto is not what
# `make proto` produces from the .proto files (run by make test).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OUT=$tmp bash scripts/proto.sh
stale=0
while read -r f; do
  if ! cmp -s "$tmp/$f" "$f"; then
    echo "stale generated code: $f (run make proto)"
    stale=1
  fi
done < <(cd "$tmp" && find . -type f \( -name '*.pb.go' -o -name '*_pb2.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.py' \) | sed 's|^\./||')
exit $stale
