"""The plugin contract end to end: real plugin processes, spoken to as go-plugin's host
speaks to them (handshake on stdout, gRPC over the address it names)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import ECHO, STDOUT_PLUGIN, Launch
from dspex_plugins import __version__, sdk
from dspex_plugins.proto import goplugin_pb2, goplugin_pb2_grpc, plugin_pb2, plugin_pb2_grpc

COOKIE_MESSAGE = "This binary is a plugin. These are not meant to be executed directly."


def shutdown(channel: grpc.Channel) -> None:
    goplugin_pb2_grpc.GRPCControllerStub(channel).Shutdown(goplugin_pb2.Empty(), timeout=5)


def test_handshake_services_and_shutdown(launch: Launch, socket_dir: str) -> None:
    plugin = launch()
    assert plugin.network == "unix"
    assert os.path.dirname(plugin.address) == socket_dir
    assert os.path.exists(plugin.address)

    with plugin.channel() as channel:
        # typeshed's HealthStub declares no methods; the generated class has Check.
        check = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest(service="plugin"), timeout=5
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING

        info = plugin_pb2_grpc.PluginInfoStub(channel).Info(plugin_pb2.InfoRequest(), timeout=5)
        assert info.name == "echo"
        assert info.version == __version__
        assert list(info.capabilities) == ["echo"]
        assert info.protocol == "dspex.plugin.v1"
        assert info.details["pid"] == str(plugin.pid)

        echo = plugin_pb2_grpc.EchoStub(channel)
        got = echo.Echo(plugin_pb2.EchoRequest(message="hi", payload=b"\x00\xff"), timeout=5)
        assert (got.message, got.payload, got.pid) == ("hi", b"\x00\xff", plugin.pid)

        echo.Sleep(plugin_pb2.SleepRequest(seconds=0.01), timeout=5)

        start = time.monotonic()
        shutdown(channel)
        assert plugin.wait() == 0
        assert time.monotonic() - start < 3

    assert not os.path.exists(plugin.address), "socket left behind"
    plugin.wait_for_stderr("plugin stopped")


def test_sleep_ends_when_the_call_is_cancelled(launch: Launch) -> None:
    plugin = launch(env={sdk.LOG_LEVEL_ENV: "debug"})
    with plugin.channel() as channel:
        echo = plugin_pb2_grpc.EchoStub(channel)
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            echo.Sleep(plugin_pb2.SleepRequest(seconds=60), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - start < 2
        # The handler saw the cancellation and returned: the server did not wait 60s.
        plugin.wait_for_stderr("sleep ended early")

        future = echo.Sleep.future(plugin_pb2.SleepRequest(seconds=60))
        time.sleep(0.1)
        future.cancel()
        deadline = time.monotonic() + 5
        while plugin.stderr().count("sleep ended early") < 2:
            assert time.monotonic() < deadline, "a cancelled Sleep went on"
            time.sleep(0.01)
        assert echo.Echo(plugin_pb2.EchoRequest(message="still here"), timeout=5).message


def test_shutdown_cancels_calls_in_flight_after_the_grace(launch: Launch) -> None:
    plugin = launch()
    with plugin.channel() as channel:
        sleeping = plugin_pb2_grpc.EchoStub(channel).Sleep.future(
            plugin_pb2.SleepRequest(seconds=60)
        )
        time.sleep(0.1)
        start = time.monotonic()
        shutdown(channel)
        assert plugin.wait() == 0
        # The default grace is a second; a 60 s Sleep does not hold the exit.
        assert time.monotonic() - start < 3
        with pytest.raises(grpc.RpcError):
            sleeping.result(timeout=5)


def test_stream_stdio_stays_open_until_shutdown(launch: Launch) -> None:
    plugin = launch()
    with plugin.channel() as channel:
        stdio = goplugin_pb2_grpc.GRPCStdioStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            list(stdio.StreamStdio(empty_pb2.Empty(), timeout=0.3))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        # As go-plugin's host does: one stream, open for the plugin's life.
        received: list[object] = []
        errors: list[grpc.RpcError] = []
        stream = stdio.StreamStdio(empty_pb2.Empty())

        def read() -> None:
            try:
                received.extend(stream)
            except grpc.RpcError as err:
                errors.append(err)

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.1)

        shutdown(channel)
        reader.join(timeout=5)
        assert not reader.is_alive(), "StreamStdio still open after Shutdown"
        # Ended by the plugin (status OK), not cancelled when the grace ran out.
        assert errors == []
        assert received == []
        assert plugin.wait() == 0


def test_stdout_goes_to_stderr(launch: Launch) -> None:
    plugin = launch(STDOUT_PLUGIN)
    # After the handshake the plugin's stdout is closed: nothing more ever comes.
    assert plugin.read_stdout_line(timeout=5) == ""
    with plugin.channel() as channel:
        plugin_pb2_grpc.EchoStub(channel).Echo(plugin_pb2.EchoRequest(message="hello"), timeout=5)
        for text in ("print:register", "print:hello", "fd1:hello"):
            plugin.wait_for_stderr(text)
        shutdown(channel)
    assert plugin.wait() == 0


@pytest.mark.parametrize(
    "env",
    [
        {sdk.MAGIC_COOKIE_KEY: None},
        {sdk.MAGIC_COOKIE_KEY: "wrong"},
    ],
    ids=["no-cookie", "wrong-cookie"],
)
def test_refuses_to_run_without_the_cookie(launch: Launch, env: dict[str, str | None]) -> None:
    plugin = launch(env=env, handshake=False)
    assert plugin.wait() == 1
    assert plugin.read_stdout_line() == ""
    plugin.wait_for_stderr(COOKIE_MESSAGE)


@pytest.mark.parametrize("versions", ["2", "2,3", "x"])
def test_refuses_other_protocol_versions(launch: Launch, versions: str) -> None:
    plugin = launch(env={sdk.PROTOCOL_VERSIONS_ENV: versions}, handshake=False)
    assert plugin.wait() == 1
    assert plugin.read_stdout_line() == ""
    plugin.wait_for_stderr("speaks version 1 only")


def test_crash_exits_with_the_code(launch: Launch) -> None:
    plugin = launch()
    with plugin.channel() as channel:
        with pytest.raises(grpc.RpcError) as err:
            plugin_pb2_grpc.EchoStub(channel).Crash(plugin_pb2.CrashRequest(exit_code=7), timeout=5)
        assert err.value.code() != grpc.StatusCode.OK
    assert plugin.wait() == 7


def test_sigint_is_ignored_and_sigterm_stops(launch: Launch) -> None:
    plugin = launch()
    plugin.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert plugin.proc.poll() is None, f"SIGINT stopped the plugin; stderr:\n{plugin.stderr()}"
    with plugin.channel() as channel:
        echo = plugin_pb2_grpc.EchoStub(channel)
        assert echo.Echo(plugin_pb2.EchoRequest(message="x"), timeout=5).pid == plugin.pid
    plugin.proc.send_signal(signal.SIGTERM)
    assert plugin.wait() == 0
    plugin.wait_for_stderr("SIGTERM received")


def test_tcp_within_the_port_range(launch: Launch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        low = busy.getsockname()[1]
        plugin = launch(
            env={
                sdk.NETWORK_ENV: "tcp",
                "PLUGIN_MIN_PORT": str(low),
                "PLUGIN_MAX_PORT": str(low + 20),
            }
        )
        assert plugin.network == "tcp"
        host, port = plugin.address.rsplit(":", 1)
        assert host == "127.0.0.1"
        # The first port of the range is taken: the plugin must have moved on.
        assert low < int(port) <= low + 20
        with plugin.channel() as channel:
            echo = plugin_pb2_grpc.EchoStub(channel)
            assert echo.Echo(plugin_pb2.EchoRequest(message="tcp"), timeout=5).message == "tcp"
            shutdown(channel)
        assert plugin.wait() == 0


def test_tcp_with_no_free_port_fails(launch: Launch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        plugin = launch(
            env={sdk.NETWORK_ENV: "tcp", "PLUGIN_MIN_PORT": port, "PLUGIN_MAX_PORT": port},
            handshake=False,
        )
        assert plugin.wait() == 1
        assert plugin.read_stdout_line() == ""
        plugin.wait_for_stderr("no free tcp port")


def test_unix_socket_dir_missing_falls_back_to_tcp(launch: Launch, socket_dir: str) -> None:
    plugin = launch(env={sdk.UNIX_SOCKET_DIR_ENV: os.path.join(socket_dir, "missing")})
    assert plugin.network == "tcp"
    with plugin.channel() as channel:
        plugin_pb2_grpc.PluginInfoStub(channel).Info(plugin_pb2.InfoRequest(), timeout=5)
        shutdown(channel)
    assert plugin.wait() == 0


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def test_logs_are_hclog_json_lines(launch: Launch) -> None:
    plugin = launch()
    with plugin.channel() as channel:
        shutdown(channel)
    assert plugin.wait() == 0
    plugin.close()  # joins the stderr reader: every line is in

    lines = plugin.stderr_lines()
    assert lines
    entries = []
    for line in lines:
        entry = json.loads(line)
        assert entry["@level"] in {"trace", "debug", "info", "warn", "error"}
        assert isinstance(entry["@message"], str)
        assert TIMESTAMP.match(entry["@timestamp"]), entry["@timestamp"]
        assert entry["@module"].startswith("echo")
        entries.append(entry)
    serving = next(e for e in entries if e["@message"] == "plugin serving")
    assert serving["address"] == plugin.address
    assert serving["network"] == "unix"
    assert serving["pid"] == plugin.pid
    assert [e["@message"] for e in entries][-1] == "plugin stopped"


def test_echo_module_runs_as_main(launch: Launch) -> None:
    plugin = launch(ECHO)
    with plugin.channel() as channel:
        info = plugin_pb2_grpc.PluginInfoStub(channel).Info(plugin_pb2.InfoRequest(), timeout=5)
        assert info.details["python"]
        shutdown(channel)
    assert plugin.wait() == 0
