"""A plugin for the tests that writes to stdout: while registering its services (before
the handshake) and in its Echo handler (after it), through ``print`` and through file
descriptor 1. None of it may reach the host's stdout."""

from __future__ import annotations

import os

import grpc

from dspex_plugins import sdk
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc


class PrintingEcho(plugin_pb2_grpc.EchoServicer):
    def Echo(
        self, request: plugin_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.EchoResponse:
        print(f"print:{request.message}", flush=True)
        os.write(1, f"fd1:{request.message}\n".encode())
        return plugin_pb2.EchoResponse(message=request.message, pid=os.getpid())


def register(server: grpc.Server) -> None:
    print("print:register", flush=True)
    plugin_pb2_grpc.add_EchoServicer_to_server(PrintingEcho(), server)


if __name__ == "__main__":
    sdk.serve("stdout-test", "0", ["echo"], register)
