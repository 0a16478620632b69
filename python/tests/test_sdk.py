"""The SDK's parts that need no process: the environment checks, logs and waiting."""

from __future__ import annotations

import io
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dspex_plugins import sdk

GOOD = {sdk.MAGIC_COOKIE_KEY: sdk.MAGIC_COOKIE_VALUE, sdk.PROTOCOL_VERSIONS_ENV: "1"}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({}, None),
        ({sdk.PROTOCOL_VERSIONS_ENV: "1,2"}, None),
        ({sdk.PROTOCOL_VERSIONS_ENV: " 3 , 1 "}, None),
        # Unset or empty: go-plugin's legacy host, which means our version.
        ({sdk.PROTOCOL_VERSIONS_ENV: None}, None),
        ({sdk.PROTOCOL_VERSIONS_ENV: ""}, None),
        ({sdk.NETWORK_ENV: "tcp", "PLUGIN_MIN_PORT": "1000", "PLUGIN_MAX_PORT": "1000"}, None),
        ({sdk.MAGIC_COOKIE_KEY: None}, "This binary is a plugin"),
        ({sdk.MAGIC_COOKIE_KEY: "7c1a3f9e"}, "This binary is a plugin"),
        ({sdk.PROTOCOL_VERSIONS_ENV: "2"}, "speaks version 1 only"),
        ({sdk.PROTOCOL_VERSIONS_ENV: "x,y"}, "speaks version 1 only"),
        ({sdk.CLIENT_CERT_ENV: "-----BEGIN CERTIFICATE-----"}, "mTLS"),
        ({sdk.NETWORK_ENV: "udp"}, "want 'unix' or 'tcp'"),
        ({"PLUGIN_MIN_PORT": "low"}, "not a port number"),
        ({"PLUGIN_MAX_PORT": "70000"}, "outside 0..65535"),
        ({"PLUGIN_MIN_PORT": "2000", "PLUGIN_MAX_PORT": "1000"}, "greater than"),
    ],
)
def test_check_environment(changes: dict[str, str | None], error: str | None) -> None:
    merged = {**GOOD, **changes}
    env = {k: v for k, v in merged.items() if v is not None}
    if error is None:
        sdk.check_environment(env)
    else:
        with pytest.raises(sdk.HandshakeError, match=error):
            sdk.check_environment(env)


def test_parse_protocol_versions() -> None:
    assert sdk.parse_protocol_versions("1") == [1]
    assert sdk.parse_protocol_versions("3,x, 1,,") == [3, 1]
    assert sdk.parse_protocol_versions("") == []


def test_port_range() -> None:
    assert sdk.port_range({}) == (0, 0)
    assert sdk.port_range({"PLUGIN_MIN_PORT": "10000", "PLUGIN_MAX_PORT": "25000"}) == (
        10000,
        25000,
    )


def test_hclog_line() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 60708, tzinfo=UTC)
    line = sdk.hclog_line(
        "info", "trial told", module="sampler", timestamp=when, trial=3, value=0.5, obj=object
    )
    entry = json.loads(line)
    assert entry["@level"] == "info"
    assert entry["@message"] == "trial told"
    assert entry["@timestamp"] == "2026-01-02T03:04:05.060708Z"
    assert entry["@module"] == "sampler"
    assert (entry["trial"], entry["value"]) == (3, 0.5)
    assert entry["obj"] == str(object)
    assert "\n" not in line


def test_hclog_line_keeps_hclog_keys() -> None:
    # Any: hclog_line's **fields are objects, but mypy would match them to module and timestamp.
    fields: dict[str, Any] = {"@level": "error", "@message": "x"}
    entry = json.loads(sdk.hclog_line("warn", "m", **fields))
    assert (entry["@level"], entry["@message"]) == ("warn", "m")
    assert "@module" not in entry


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    logger = logging.getLogger("test-capture")
    logger.handlers[:] = [sdk.HclogHandler("plug", stream=out)]
    logger.setLevel(1)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.handlers.clear()


def entries(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_handler_levels_modules_and_extra(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    logger.log(sdk.TRACE, "t")
    logger.debug("d")
    logger.info("i %s", "arg", extra={"study": "s1", "trial": 4})
    logger.warning("w")
    logger.error("e")
    logger.critical("c")
    got = entries(out)
    assert [e["@level"] for e in got] == ["trace", "debug", "info", "warn", "error", "error"]
    assert got[2]["@message"] == "i arg"
    assert (got[2]["study"], got[2]["trial"]) == ("s1", 4)
    assert {e["@module"] for e in got} == {"plug.test-capture"}
    assert "levelname" not in got[0]


def test_handler_writes_exceptions(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = capture
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("failed")
    (entry,) = entries(out)
    assert entry["@level"] == "error"
    assert entry["error"] == "bad value"
    assert "Traceback" in str(entry["stack"])
    assert "ValueError: bad value" in str(entry["stack"])


def test_parse_log_level() -> None:
    assert sdk.parse_log_level("WARN") == logging.WARNING
    assert sdk.parse_log_level("trace") == sdk.TRACE
    with pytest.raises(ValueError, match="unknown log level"):
        sdk.parse_log_level("loud")


class FakeContext:
    """A grpc.ServicerContext's cancellation side: end() ends the call."""

    def __init__(self, *, ended: bool = False) -> None:
        self._ended = ended
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._callbacks.append(callback)
            return True

    def is_active(self) -> bool:
        return not self._ended

    def end(self) -> None:
        with self._lock:
            self._ended = True
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()


def test_sleep_runs_its_time() -> None:
    assert sdk.sleep(FakeContext(), 0.01)  # type: ignore[arg-type]
    assert sdk.sleep(FakeContext(), -1)  # type: ignore[arg-type]


def test_sleep_on_an_ended_call_returns_at_once() -> None:
    start = time.monotonic()
    assert not sdk.sleep(FakeContext(ended=True), 10)  # type: ignore[arg-type]
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("seconds", [10.0, math.inf, math.nan, 1e300])
def test_sleep_ends_when_the_call_ends(seconds: float) -> None:
    context = FakeContext()
    timer = threading.Timer(0.05, context.end)
    timer.start()
    start = time.monotonic()
    try:
        assert not sdk.sleep(context, seconds)  # type: ignore[arg-type]
    finally:
        timer.cancel()
    assert time.monotonic() - start < 2
