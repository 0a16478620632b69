"""The plugin side of DSPEx's bridge: go-plugin's handshake, the shared services, and logs.

Every plugin module ends in a call to :func:`serve` (or builds a :class:`Plugin` and calls
:meth:`Plugin.run`). The Go host starts the plugin process through hashicorp/go-plugin;
this module does what go-plugin expects of a gRPC plugin written in any language:

1. check the magic cookie and the app protocol versions the host offers (exit 1 if they
   do not match, with a message on stderr);
2. serve, on one gRPC server, ``grpc.health.v1.Health`` (service ``plugin``: SERVING),
   go-plugin's ``plugin.GRPCController`` (Shutdown) and ``plugin.GRPCStdio``
   (StreamStdio), DSPEx's ``dspex.plugin.v1.PluginInfo``, and the plugin's own
   capability services, added by its ``register`` callback;
3. listen on a unix socket (or on TCP 127.0.0.1 within the host's port range), start
   serving, then print the handshake line ``1|1|unix|<path>|grpc`` on stdout;
4. from then on send stdout to stderr, ignore SIGINT (the host stops plugins with
   Shutdown), stop gracefully on Shutdown or SIGTERM and exit 0.

Logs are JSON lines on stderr in hclog's format (:func:`hclog_line`,
:class:`HclogHandler`); go-plugin parses them into the host's logger. Plugin code logs
with the standard :mod:`logging` module: :meth:`Plugin.run` routes the root logger
through :class:`HclogHandler`.

The contract is written up in docs/plugins.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from datetime import UTC, datetime
from typing import NoReturn, TextIO

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from dspex_plugins import __version__
from dspex_plugins.proto import goplugin_pb2, goplugin_pb2_grpc, plugin_pb2, plugin_pb2_grpc

MAGIC_COOKIE_KEY = "DSPEX_PLUGIN_MAGIC_COOKIE"
"""Environment variable the host sets to :data:`MAGIC_COOKIE_VALUE`."""
MAGIC_COOKIE_VALUE = "7c1a3f9e-dspex-plugin-v1"
CORE_PROTOCOL_VERSION = 1
"""go-plugin's own protocol version, the handshake line's first field."""
APP_PROTOCOL_VERSION = 1
"""The DSPEx plugin protocol version, the handshake line's second field."""
PROTOCOL = "dspex.plugin.v1"
"""The contract's proto package, reported by PluginInfo.Info."""
HEALTH_SERVICE = "plugin"
"""The service name go-plugin's host checks with grpc.health.v1.Health."""

NETWORK_ENV = "DSPEX_PLUGIN_NETWORK"
"""``unix`` (the default) or ``tcp``: where the plugin listens."""
LOG_LEVEL_ENV = "DSPEX_PLUGIN_LOG_LEVEL"
"""``trace``, ``debug``, ``info`` (the default), ``warn`` or ``error``."""
PROTOCOL_VERSIONS_ENV = "PLUGIN_PROTOCOL_VERSIONS"
MIN_PORT_ENV = "PLUGIN_MIN_PORT"
MAX_PORT_ENV = "PLUGIN_MAX_PORT"
UNIX_SOCKET_DIR_ENV = "PLUGIN_UNIX_SOCKET_DIR"
CLIENT_CERT_ENV = "PLUGIN_CLIENT_CERT"

TRACE = 5
"""A stdlib logging level below DEBUG, written as hclog's ``trace``."""

Register = Callable[[grpc.Server], None]
"""Adds a plugin's capability services to the server (``add_XServicer_to_server``)."""

_NOT_A_PLUGIN_HOST = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically. (DSPEx starts its plugins itself and sets "
    f"{MAGIC_COOKIE_KEY}; see docs/plugins.md.)"
)

# After a clean stop, the process exits normally; a handler thread that ignores
# cancellation would hold that exit up, so past this many seconds it is cut short.
_EXIT_WATCHDOG_SECONDS = 2.0


class HandshakeError(Exception):
    """The host's environment does not let this plugin start; the message says why."""


# ---- Refusals -----------------------------------------------------------------------


class StatusError(Exception):
    """A request a plugin refuses or cannot carry out, with the gRPC status to answer it
    with. Each plugin's own error (sampler.SamplerError, finetune.FineTuneError) is one."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def abort(
    context: grpc.ServicerContext,
    err: StatusError,
    log: logging.Logger,
    what: str,
    level: int = logging.INFO,
) -> NoReturn:
    """Answer the call with err's status and message, logged at level as "<what> call
    refused". context.abort raises; so does this."""
    log.log(level, f"{what} call refused", extra={"code": err.code.name, "error": str(err)})
    context.abort(err.code, str(err))
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


# ---- Logs ---------------------------------------------------------------------------

_HCLOG_LEVELS = ((logging.ERROR, "error"), (logging.WARNING, "warn"), (logging.INFO, "info"))
_LEVELS_BY_NAME = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Attributes every LogRecord has; any other attribute came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def hclog_level(levelno: int) -> str:
    """Return hclog's name for a stdlib logging level (``trace`` below DEBUG)."""
    for threshold, name in _HCLOG_LEVELS:
        if levelno >= threshold:
            return name
    return "debug" if levelno >= logging.DEBUG else "trace"


def parse_log_level(name: str) -> int:
    """Return the stdlib level for an hclog level name; raises ValueError if unknown."""
    try:
        return _LEVELS_BY_NAME[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}") from None


def hclog_line(
    level: str,
    message: str,
    *,
    module: str = "",
    timestamp: datetime | None = None,
    **fields: object,
) -> str:
    """Return one log entry in hclog's JSON format, without the newline.

    ``@level``, ``@message``, ``@timestamp`` (UTC, microseconds, the layout go-plugin
    parses: ``2006-01-02T15:04:05.000000Z07:00``) and ``@module`` are hclog's keys; each
    other field becomes a key/value pair of the entry on the host side. Values JSON
    cannot hold are written as their ``str()``; a field may not replace hclog's keys.
    """
    when = (timestamp or datetime.now(UTC)).astimezone(UTC)
    entry: dict[str, object] = {
        "@level": level,
        "@message": message,
        "@timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    if module:
        entry["@module"] = module
    for key, value in fields.items():
        entry.setdefault(key, value)
    return json.dumps(entry, default=str)


class HclogHandler(logging.Handler):
    """A logging handler that writes records as hclog JSON lines (one per record).

    The record's logger name becomes ``@module`` under ``module`` (the root logger's
    records get ``module`` itself); attributes passed with ``extra=`` become key/values;
    an exception becomes ``error`` (its text) and ``stack`` (the traceback). Writes go
    to ``stream``, or to whatever ``sys.stderr`` is at the time. Safe for concurrent use.
    """

    def __init__(self, module: str = "", stream: TextIO | None = None) -> None:
        super().__init__()
        self._module = module
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                k: v
                for k, v in vars(record).items()
                if k not in _RECORD_ATTRS and not k.startswith("_")
            }
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = str(record.exc_info[1]) or type(record.exc_info[1]).__name__
                fields["stack"] = logging.Formatter().formatException(record.exc_info)
            line = hclog_line(
                hclog_level(record.levelno),
                record.getMessage(),
                module=self._module_for(record.name),
                timestamp=datetime.fromtimestamp(record.created, UTC),
                **fields,
            )
            stream = self._stream or sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def _module_for(self, logger_name: str) -> str:
        if logger_name == "root":
            return self._module
        if not self._module:
            return logger_name
        return f"{self._module}.{logger_name}"


def configure_logging(module: str, level: int | str = logging.INFO) -> HclogHandler:
    """Route the root logger, and so every stdlib logger, through one HclogHandler.

    Replaces the root logger's handlers (logging's configuration is per process, like
    the plugin) and returns the new handler.
    """
    handler = HclogHandler(module)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(parse_log_level(level) if isinstance(level, str) else level)
    return handler


_log = logging.getLogger("sdk")


# ---- The host's environment ---------------------------------------------------------


def parse_protocol_versions(value: str) -> list[int]:
    """Return the versions in a PLUGIN_PROTOCOL_VERSIONS list (``"1,2"``), skipping junk."""
    versions = []
    for part in value.split(","):
        try:
            versions.append(int(part.strip()))
        except ValueError:
            continue
    return versions


def port_range(environ: Mapping[str, str]) -> tuple[int, int]:
    """Return PLUGIN_MIN_PORT..PLUGIN_MAX_PORT (unset: 0, an ephemeral port).

    Raises HandshakeError for a value that is not a port or a range that is empty.
    """
    bounds = []
    for key in (MIN_PORT_ENV, MAX_PORT_ENV):
        raw = environ.get(key, "").strip() or "0"
        try:
            port = int(raw)
        except ValueError:
            raise HandshakeError(f"plugin: {key}={raw!r} is not a port number") from None
        if not 0 <= port <= 65535:
            raise HandshakeError(f"plugin: {key}={port} is outside 0..65535")
        bounds.append(port)
    low, high = bounds
    if low > high:
        raise HandshakeError(f"plugin: {MIN_PORT_ENV}={low} is greater than {MAX_PORT_ENV}={high}")
    return low, high


def check_environment(environ: Mapping[str, str]) -> None:
    """Check that the host that started this process is one this plugin can serve.

    Raises HandshakeError, whose message is meant for a person, when the magic cookie is
    missing or wrong, when PLUGIN_PROTOCOL_VERSIONS does not offer
    :data:`APP_PROTOCOL_VERSION` (an unset or empty list is go-plugin's legacy host and
    means our version), when the host asks for AutoMTLS (PLUGIN_CLIENT_CERT, not
    supported), or when the network or the port range is not valid.
    """
    if environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        raise HandshakeError(_NOT_A_PLUGIN_HOST)
    offered = environ.get(PROTOCOL_VERSIONS_ENV, "").strip()
    if offered and APP_PROTOCOL_VERSION not in parse_protocol_versions(offered):
        raise HandshakeError(
            f"plugin: the host offers app protocol versions {offered!r} "
            f"({PROTOCOL_VERSIONS_ENV}) but this plugin speaks version "
            f"{APP_PROTOCOL_VERSION} only: update the plugin or the host"
        )
    if environ.get(CLIENT_CERT_ENV):
        raise HandshakeError(
            f"plugin: the host asked for automatic mTLS ({CLIENT_CERT_ENV}), which "
            "DSPEx plugins do not support: start them without AutoMTLS"
        )
    network = environ.get(NETWORK_ENV, "").strip()
    if network not in ("", "unix", "tcp"):
        raise HandshakeError(f"plugin: {NETWORK_ENV}={network!r}: want 'unix' or 'tcp'")
    port_range(environ)


# ---- Cancellation -------------------------------------------------------------------


def sleep(context: grpc.ServicerContext, seconds: float) -> bool:
    """Wait ``seconds`` unless the call ends first (cancelled, past its deadline, or
    the server stopping).

    Returns True when the whole time passed with the call still active, False when it
    ended first. A negative time is zero; a time too long to wait for (or NaN) waits
    until the call ends.
    """
    done = threading.Event()
    if not context.add_callback(done.set) or not context.is_active():
        return False
    timeout: float | None = max(0.0, seconds)
    if not math.isfinite(seconds) or seconds >= threading.TIMEOUT_MAX:
        timeout = None
    return not done.wait(timeout)


# ---- Services every plugin serves ---------------------------------------------------


class _Controller(goplugin_pb2_grpc.GRPCControllerServicer):
    def __init__(self, plugin: Plugin) -> None:
        self._plugin = plugin

    def Shutdown(
        self, request: goplugin_pb2.Empty, context: grpc.ServicerContext
    ) -> goplugin_pb2.Empty:
        _log.info("shutdown requested by the host")
        self._plugin.stop()
        return goplugin_pb2.Empty()


class _Stdio(goplugin_pb2_grpc.GRPCStdioServicer):
    """StreamStdio streams nothing: the plugin's stdout and stderr both reach the host
    through the process's stderr pipe. The stream stays open until the call ends or
    the plugin stops, as go-plugin's host expects of it."""

    def __init__(self, plugin: Plugin) -> None:
        self._plugin = plugin

    def StreamStdio(
        self, request: empty_pb2.Empty, context: grpc.ServicerContext
    ) -> Iterator[goplugin_pb2.StdioData]:
        self._plugin._wait_until_stopping(context)
        return iter(())


class _Info(plugin_pb2_grpc.PluginInfoServicer):
    def __init__(self, response: plugin_pb2.InfoResponse) -> None:
        self._response = response

    def Info(
        self, request: plugin_pb2.InfoRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.InfoResponse:
        return self._response


# ---- The plugin process -------------------------------------------------------------


class Plugin:
    """One plugin process: its gRPC server and the state of its life cycle.

    ``name``, ``version`` and ``capabilities`` are what PluginInfo.Info answers, with
    ``details`` (plus the SDK's own: ``python``, ``sdk``, ``pid``). ``register`` adds
    the capability services. The server runs ``max_workers`` handler threads and
    accepts at most ``max_concurrent_rpcs`` calls at once (more are refused with
    RESOURCE_EXHAUSTED); messages may be up to ``max_message_bytes`` each way. On stop,
    calls in flight get ``shutdown_grace`` seconds to finish before they are cancelled.

    ``environ`` is the environment to read (``os.environ`` by default). A Plugin runs
    once; :meth:`stop` is safe to call from any thread, at any time (before
    :meth:`run` too), more than once.
    """

    def __init__(
        self,
        name: str,
        version: str,
        capabilities: Sequence[str],
        register: Register,
        *,
        details: Mapping[str, str] | None = None,
        max_workers: int = 32,
        max_concurrent_rpcs: int = 64,
        max_message_bytes: int = 64 << 20,
        shutdown_grace: float = 1.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.capabilities = list(capabilities)
        self._register = register
        self._details = dict(details or {})
        self._max_workers = max_workers
        self._max_concurrent_rpcs = max_concurrent_rpcs
        self._max_message_bytes = max_message_bytes
        self._shutdown_grace = shutdown_grace
        self._environ = os.environ if environ is None else environ

        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._health = health.HealthServicer()
        self._started = False
        self._stopping = False
        self._waiters: set[threading.Event] = set()
        self._socket_path: str | None = None

    def run(self) -> int:
        """Check the environment, serve until stopped, and return the exit code.

        Returns 1 (after saying why on stderr) when the host's environment does not
        match or the server cannot start, and 0 after a stop (Shutdown or SIGTERM).
        Replaces stdout (file descriptor 1 and ``sys.stdout``) with stderr for the rest
        of the process, so nothing but the handshake line reaches the host's stdout.
        Call it from the main thread, which is the only one that can set signal
        handlers.
        """
        try:
            check_environment(self._environ)
        except HandshakeError as err:
            sys.stderr.write(f"{err}\n")
            sys.stderr.flush()
            return 1
        level = self._environ.get(LOG_LEVEL_ENV, "") or "info"
        try:
            configure_logging(self.name, level)
        except ValueError:
            configure_logging(self.name)
            _log.warning("unknown log level, using info", extra={"level": level})

        handshake_out = _take_stdout()
        try:
            server = self._build_server()
            network, address = self._listen(server)
        except Exception as err:
            _log.error("plugin failed to start", exc_info=err)
            os.close(handshake_out)
            return 1
        server.start()
        with self._lock:
            self._started = True
            stopped_early = self._stopping
        if stopped_early:
            server.stop(self._shutdown_grace)
        # Before the handshake: the host may signal the plugin as soon as it has read it.
        self._handle_signals()
        try:
            with os.fdopen(handshake_out, "w") as out:
                out.write(
                    f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|{network}|{address}|grpc\n"
                )
        except OSError as err:
            _log.error("cannot write the handshake: the host is gone", exc_info=err)
            server.stop(None)
            self._remove_socket()
            return 1
        _log.info(
            "plugin serving",
            extra={
                "network": network,
                "address": address,
                "pid": os.getpid(),
                "version": self.version,
                "capabilities": self.capabilities,
            },
        )
        server.wait_for_termination()
        self._remove_socket()
        _log.info("plugin stopped")
        return 0

    def serve(self) -> NoReturn:
        """:meth:`run`, then exit the process with its code: 0 after Shutdown or
        SIGTERM, 1 if the plugin could not start."""
        code = self.run()
        sys.stderr.flush()
        watchdog = threading.Timer(_EXIT_WATCHDOG_SECONDS, os._exit, args=(code,))
        watchdog.daemon = True
        watchdog.start()
        raise SystemExit(code)

    def stop(self) -> None:
        """Stop serving: health turns NOT_SERVING, open StreamStdio calls end, calls in
        flight get the grace period, then :meth:`run` returns 0. Does not block."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            waiters = list(self._waiters)
            # Before start, run() stops the server once it has started.
            server = self._server if self._started else None
        self._health.enter_graceful_shutdown()
        for waiter in waiters:
            waiter.set()
        if server is not None:
            server.stop(self._shutdown_grace)

    def _wait_until_stopping(self, context: grpc.ServicerContext) -> None:
        """Block until the call ends or the plugin stops."""
        done = threading.Event()
        with self._lock:
            if self._stopping:
                return
            self._waiters.add(done)
        try:
            if context.add_callback(done.set):
                done.wait()
        finally:
            with self._lock:
                self._waiters.discard(done)

    def _build_server(self) -> grpc.Server:
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix=f"{self.name}-rpc"
            ),
            options=[
                ("grpc.max_send_message_length", self._max_message_bytes),
                ("grpc.max_receive_message_length", self._max_message_bytes),
                # A port another process holds must fail to bind, so that the next
                # port of the host's range is tried.
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=self._max_concurrent_rpcs,
        )
        serving = health_pb2.HealthCheckResponse.SERVING
        self._health.set(HEALTH_SERVICE, serving)
        self._health.set("", serving)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        goplugin_pb2_grpc.add_GRPCControllerServicer_to_server(_Controller(self), server)
        goplugin_pb2_grpc.add_GRPCStdioServicer_to_server(_Stdio(self), server)
        details = {
            "python": sys.version.split()[0],
            "sdk": __version__,
            "pid": str(os.getpid()),
            **self._details,
        }
        info = plugin_pb2.InfoResponse(
            name=self.name,
            version=self.version,
            capabilities=self.capabilities,
            protocol=PROTOCOL,
            details=details,
        )
        plugin_pb2_grpc.add_PluginInfoServicer_to_server(_Info(info), server)
        self._register(server)
        self._server = server
        return server

    def _listen(self, server: grpc.Server) -> tuple[str, str]:
        """Bind the server and return the handshake's network and address."""
        network = self._environ.get(NETWORK_ENV, "").strip() or "unix"
        if network == "unix" and hasattr(socket, "AF_UNIX"):
            directory = self._environ.get(UNIX_SOCKET_DIR_ENV, "") or tempfile.gettempdir()
            path = os.path.join(directory, f"plugin{secrets.token_hex(8)}")
            try:
                _add_port(server, f"unix:{path}")
            except RuntimeError as err:
                _log.warning(
                    "cannot listen on a unix socket, using tcp",
                    extra={"path": path, "error": str(err)},
                )
            else:
                self._socket_path = path
                return "unix", path
        low, high = port_range(self._environ)
        for port in range(low, high + 1):
            try:
                bound = _add_port(server, f"127.0.0.1:{port}")
            except RuntimeError:
                continue
            return "tcp", f"127.0.0.1:{bound}"
        raise RuntimeError(f"no free tcp port on 127.0.0.1 in {low}..{high}")

    def _handle_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            _log.warning("not on the main thread: SIGINT and SIGTERM left as they are")
            return
        # The host's terminal sends SIGINT to the whole process group on ^C; the host
        # decides when its plugins stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        # A signal handler runs on the main thread between two bytecodes, maybe while
        # that thread holds a lock stop() needs: stop from another thread.
        threading.Thread(target=self._stop_on_signal, name=f"{self.name}-stop", daemon=True).start()

    def _stop_on_signal(self) -> None:
        _log.info("SIGTERM received, stopping")
        self.stop()

    def _remove_socket(self) -> None:
        if self._socket_path is None:
            return
        try:
            os.unlink(self._socket_path)
        except FileNotFoundError:
            pass
        except OSError as err:
            _log.warning(
                "cannot remove the socket", extra={"path": self._socket_path, "error": str(err)}
            )


def _add_port(server: grpc.Server, address: str) -> int:
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise RuntimeError(f"listen on {address}: {err}") from err
    if port == 0:
        raise RuntimeError(f"listen on {address}: bind failed")
    return port


def _take_stdout() -> int:
    """Point file descriptor 1 and ``sys.stdout`` at stderr; return a descriptor for
    the original stdout, on which only the handshake line is written."""
    sys.stdout.flush()
    original = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return original


def serve(
    name: str,
    version: str,
    capabilities: Sequence[str],
    register: Register,
    *,
    details: Mapping[str, str] | None = None,
) -> NoReturn:
    """Run a plugin with the default settings and exit the process with its exit code.

    Shorthand for ``Plugin(name, version, capabilities, register, details=...).serve()``.
    """
    Plugin(name, version, capabilities, register, details=details).serve()
