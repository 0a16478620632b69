"""A test-only plugin: the echo plugin whose Echo reports what the process can see.

bridge's sandbox tests start it with ``sandbox: true``. Echo's message is a probe,
``<what>:<argument>``; the answer's message is what the probe found:

- ``uid:`` — the process's uid;
- ``listdir:PATH`` — the sorted entries of PATH, or the error's class name;
- ``read:PATH`` — ``ok`` if PATH can be opened for reading, or the error's class name;
- ``env:NAME`` — the variable's value, or ``<unset>``;
- ``connect:HOST:PORT`` — ``connected`` or the error's class name.
"""

from __future__ import annotations

import os
import socket
import sys

import grpc

from dspex_plugins import __version__, echo, sdk
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc


def probe(message: str) -> str:
    what, _, arg = message.partition(":")
    try:
        if what == "uid":
            return str(os.getuid())
        if what == "listdir":
            return ",".join(sorted(os.listdir(arg)))
        if what == "read":
            with open(arg, "rb"):
                return "ok"
        if what == "env":
            return os.environ.get(arg, "<unset>")
        if what == "connect":
            host, _, port = arg.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=3):
                return "connected"
    except OSError as err:
        return type(err).__name__
    return "unknown probe " + what


class ProbeService(echo.EchoService):
    def Echo(
        self, request: plugin_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.EchoResponse:
        return plugin_pb2.EchoResponse(message=probe(request.message), pid=os.getpid())


def register(server: grpc.Server) -> None:
    plugin_pb2_grpc.add_EchoServicer_to_server(ProbeService(), server)


if __name__ == "__main__":
    sys.exit(sdk.serve("sandbox-probe", __version__, ("echo",), register))
