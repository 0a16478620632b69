"""Generated protobuf and gRPC code for the plugin contracts (``make proto``).

protoc writes imports relative to ``bridge/proto`` (``from dspex.plugin.v1 import
plugin_pb2``), so this package puts its own directory on ``sys.path`` before loading the
generated modules; the files themselves stay exactly as protoc writes them. Import them
from here, under the names below, and never by another path: a second import path would
register the same descriptors twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dspex.plugin.v1 import plugin_pb2, plugin_pb2_grpc  # noqa: E402
from goplugin import plugin_pb2 as goplugin_pb2  # noqa: E402
from goplugin import plugin_pb2_grpc as goplugin_pb2_grpc  # noqa: E402

__all__ = ["goplugin_pb2", "goplugin_pb2_grpc", "plugin_pb2", "plugin_pb2_grpc"]
