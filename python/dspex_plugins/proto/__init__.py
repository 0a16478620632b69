"""Generated protobuf and gRPC code for the plugin contracts (``make proto``).

protoc writes the modules under the paths of their ``.proto`` files in ``bridge/proto``
(``dspex/plugin/v1``, ``goplugin``); ``scripts/proto.sh`` rewrites their imports of one
another to this package's absolute path (``dspex_plugins.proto.dspex.plugin.v1``), so
they load without any change to ``sys.path``. Import them from here, under the names
below.
"""

from __future__ import annotations

from dspex_plugins.proto.dspex.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from dspex_plugins.proto.goplugin import plugin_pb2 as goplugin_pb2
from dspex_plugins.proto.goplugin import plugin_pb2_grpc as goplugin_pb2_grpc

__all__ = ["goplugin_pb2", "goplugin_pb2_grpc", "plugin_pb2", "plugin_pb2_grpc"]
