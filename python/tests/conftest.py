"""Fixtures that start plugin processes the way go-plugin's host does, and always stop
them: every process a test starts is killed and reaped when the test ends."""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import grpc
import pytest

from dspex_plugins import sdk

TESTS = Path(__file__).resolve().parent
ECHO = ("-m", "dspex_plugins.echo")
STDOUT_PLUGIN = (str(TESTS / "stdout_plugin.py"),)
START_TIMEOUT = 15.0


def plugin_env(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment go-plugin's host gives a plugin, with overrides (None unsets)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PLUGIN_", "DSPEX_PLUGIN_", "GRPC_"))
    }
    env[sdk.MAGIC_COOKIE_KEY] = sdk.MAGIC_COOKIE_VALUE
    env[sdk.PROTOCOL_VERSIONS_ENV] = "1"
    for key, value in dict(overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class PluginProcess:
    """A plugin process with its stdout (the handshake) and stderr (collected by a
    thread, line by line) piped."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._stderr: list[str] = []
        self._stderr_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.network = ""
        self.address = ""

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._stderr_lock:
                self._stderr.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_stdout_line(self, timeout: float = START_TIMEOUT) -> str:
        """Read one line of stdout; "" at EOF. Fails the test on timeout."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        data = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    pytest.fail(f"no line on stdout within {timeout}s; stderr:\n{self.stderr()}")
                chunk = os.read(fd, 1)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    def handshake(self) -> list[str]:
        """Read and check the handshake line; remember the network and address."""
        line = self.read_stdout_line()
        parts = line.rstrip("\n").split("|")
        assert len(parts) == 5, f"handshake {line!r}; stderr:\n{self.stderr()}"
        assert parts[0] == "1"
        assert parts[1] == "1"
        assert parts[4] == "grpc"
        self.network, self.address = parts[2], parts[3]
        return parts

    def channel(self) -> grpc.Channel:
        target = f"unix:{self.address}" if self.network == "unix" else self.address
        return grpc.insecure_channel(target)

    def wait(self, timeout: float = 5.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        with self._stderr_lock:
            return "\n".join(self._stderr)

    def stderr_lines(self) -> list[str]:
        with self._stderr_lock:
            return list(self._stderr)

    def wait_for_stderr(self, text: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} not on stderr within {timeout}s; stderr:\n{self.stderr()}")
            time.sleep(0.01)

    def close(self) -> None:
        """Kill the process if it still runs, reap it, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


Launch = Callable[..., PluginProcess]


@pytest.fixture
def socket_dir() -> Iterator[str]:
    # A short path of its own: a unix socket's path is limited to about 100 bytes.
    path = tempfile.mkdtemp(prefix="dspex-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def launch(socket_dir: str) -> Iterator[Launch]:
    """Start plugin processes: launch(args=ECHO, env={...overrides}, handshake=True)."""
    started: list[PluginProcess] = []

    def start(
        args: Sequence[str] = ECHO,
        env: Mapping[str, str | None] | None = None,
        *,
        handshake: bool = True,
    ) -> PluginProcess:
        overrides = {sdk.UNIX_SOCKET_DIR_ENV: socket_dir, **dict(env or {})}
        plugin = PluginProcess(args, plugin_env(overrides))
        started.append(plugin)
        if handshake:
            plugin.handshake()
        return plugin

    try:
        yield start
    finally:
        for plugin in started:
            plugin.close()


# ---- The simulated LM (`dspex mock-lm`), a real Go server on 127.0.0.1 -------------------

REPO = TESTS.parent.parent
DSPEX_ENV = "DSPEX"
"""A prebuilt dspex binary to use instead of building one (``make build``'s bin/dspex)."""


@pytest.fixture(scope="session")
def dspex_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The dspex binary: $DSPEX, else ``go build ./cmd/dspex`` into a temporary folder."""
    given = os.environ.get(DSPEX_ENV, "")
    if given:
        if not os.access(given, os.X_OK):
            pytest.fail(f"${DSPEX_ENV}={given!r} is not an executable")
        return given
    go = shutil.which("go")
    if go is None:
        pytest.skip(f"needs Go to build dspex (or ${DSPEX_ENV} set to a dspex binary)")
    out = str(tmp_path_factory.mktemp("dspex-bin") / "dspex")
    built = subprocess.run(
        [go, "build", "-o", out, "./cmd/dspex"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"go build ./cmd/dspex failed:\n{built.stderr}")
    return out


class MockLM:
    """A running ``dspex mock-lm``; url is its OpenAI base URL (http://127.0.0.1:PORT/v1)."""

    def __init__(self, binary: str, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [binary, "mock-lm", "--addr", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        prefix = "dspex mock-lm listening on "
        if not line.startswith(prefix):
            self.close()
            pytest.fail(f"mock-lm did not start: {line!r}")
        self.url = line[len(prefix) :].strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


StartMockLM = Callable[..., MockLM]


@pytest.fixture
def mock_lm(dspex_binary: str) -> Iterator[StartMockLM]:
    """Start simulators: mock_lm("--finetune-step", "100ms", ...); all stop at the end."""
    started: list[MockLM] = []

    def start(*args: str) -> MockLM:
        sim = MockLM(dspex_binary, args)
        started.append(sim)
        return sim

    try:
        yield start
    finally:
        for sim in started:
            sim.close()
