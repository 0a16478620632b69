"""The echo plugin: a small capability for checking the bridge end to end.

Run as ``python -m dspex_plugins.echo`` (by the host, which sets the magic cookie). It
serves PluginInfo (capabilities ``["echo"]``) and the Echo service: Echo answers with what
it was given and the serving process's pid, Sleep waits (ending early when the call is
cancelled), Crash exits the process at once with the given code. The Go side's
supervisor, breaker and conformance tests drive it.
"""

from __future__ import annotations

import logging
import os
from typing import NoReturn

import grpc

from dspex_plugins import __version__, sdk
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc

NAME = "echo"
CAPABILITIES = ("echo",)

_log = logging.getLogger(NAME)


class EchoService(plugin_pb2_grpc.EchoServicer):
    """The Echo service. Holds no state; safe for concurrent use."""

    def Echo(
        self, request: plugin_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.EchoResponse:
        return plugin_pb2.EchoResponse(
            message=request.message, payload=request.payload, pid=os.getpid()
        )

    def Sleep(
        self, request: plugin_pb2.SleepRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.SleepResponse:
        if not sdk.sleep(context, request.seconds):
            _log.debug("sleep ended early: the call ended", extra={"seconds": request.seconds})
        return plugin_pb2.SleepResponse()

    def Crash(self, request: plugin_pb2.CrashRequest, context: grpc.ServicerContext) -> NoReturn:
        _log.warning("crashing on request", extra={"exit_code": request.exit_code})
        # No cleanup, no answer: this is what a crash looks like to the host.
        os._exit(request.exit_code)


def register(server: grpc.Server) -> None:
    """Add the Echo service to a plugin's server."""
    plugin_pb2_grpc.add_EchoServicer_to_server(EchoService(), server)


def main() -> NoReturn:
    sdk.serve(NAME, __version__, CAPABILITIES, register)


if __name__ == "__main__":
    main()
