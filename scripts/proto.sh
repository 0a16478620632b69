#!/usr/bin/env bash
# make proto: regenerate the Go and Python code of bridge/proto. Uses only
# tools from the package registries: protoc from PyPI's grpcio-tools (in the
# project virtualenv) and the Go plugins protoc-gen-go and protoc-gen-go-grpc
# (installed into .venv/gobin). OUT=DIR writes into DIR instead of the tree
# (the staleness check compares the two).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
gobin=$PWD/.venv/gobin
out=${OUT:-$PWD}
[ -x "$py" ] || { echo "no virtualenv: run make setup" >&2; exit 1; }
GOBIN=$gobin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN=$gobin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
mkdir -p "$out/bridge/proto" "$out/python/dspex_plugins/proto"
# Go: the DSPEx contracts (go-plugin's own services come compiled with it).
PATH=$gobin:$PATH "$py" -m grpc_tools.protoc -I bridge/proto \
  --go_out="$out" --go_opt=module=github.com/dspex/dspex \
  --go-grpc_out="$out" --go-grpc_opt=module=github.com/dspex/dspex \
  dspex/plugin/v1/plugin.proto
# Python: the contracts and go-plugin's controller and stdio services.
"$py" -m grpc_tools.protoc -I bridge/proto \
  --python_out="$out/python/dspex_plugins/proto" --pyi_out="$out/python/dspex_plugins/proto" \
  --grpc_python_out="$out/python/dspex_plugins/proto" \
  dspex/plugin/v1/plugin.proto goplugin/plugin.proto
# protoc writes each generated module's imports of its siblings relative to
# bridge/proto (`from dspex.plugin.v1 import plugin_pb2`); rewrite them to the
# package's absolute path, so the code imports without any sys.path change.
find "$out/python/dspex_plugins/proto" -type f \( -name '*_pb2.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.py' \) -print0 |
  xargs -0 sed -i -E 's/^(from|import) (dspex|goplugin)([. ])/\1 dspex_plugins.proto.\2\3/'
