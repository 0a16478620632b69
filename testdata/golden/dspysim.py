"""What the DSPy golden generators share: DSPy run offline against `dspex mock-lm`.

Imported by the generators that record DSPy 3.4.1 against the simulator
(testdata/golden/mipro/gen_dspy_mipro.py,
plugins/finetune/testdata/golden/gen_dspy_finetune.py); they run in DSPy's own
virtualenv, never the project's. `run_offline(run)` refuses every connection that is not
to a loopback address, starts the simulator on 127.0.0.1 with examples/capitals as its
dataset (the DSPEx binary at $DSPEX, else bin/dspex, else `go run`), calls run with its
base URL, with LiteLLM's cost map local and DSPy's disk cache in a temporary directory,
and stops the simulator.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
TASK = ROOT / "examples" / "capitals"
MODEL = "dspex-sim"  # lmtest.DefaultModel: the simulator's placeholders hash the model name


def loopback_only(who: str) -> None:
    """Refuse every connection that is not to a loopback address or a unix socket."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                ok = ipaddress.ip_address(host).is_loopback
            except ValueError:
                ok = host == "localhost"
            if not ok:
                raise ConnectionRefusedError(f"{who}: no network: refused {address!r}")
        return connect(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    dspex = os.environ.get("DSPEX") or str(ROOT / "bin" / "dspex")
    cmd = [dspex] if os.path.exists(dspex) else ["go", "run", "./cmd/dspex"]
    cmd += [
        "mock-lm",
        "--addr",
        "127.0.0.1:0",
        "--dataset",
        str(TASK / "train.jsonl"),
        "--dataset",
        str(TASK / "dev.jsonl"),
    ]
    sim = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert sim.stdout is not None
    line = sim.stdout.readline().strip()
    prefix = "dspex mock-lm listening on "
    if not line.startswith(prefix):
        sim.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    url = line[len(prefix) :]
    if not url.startswith("http://127.0.0.1:"):
        sim.kill()
        raise SystemExit(f"the simulator listens on {url}, want 127.0.0.1")
    return sim, url


def load(name: str) -> list[dict[str, Any]]:
    """The examples of examples/capitals/NAME (JSONL)."""
    with open(TASK / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_offline(run: Callable[[str], None], who: str) -> None:
    """Call run with the simulator's base URL, DSPy offline (see the module's doc)."""
    # Before DSPy and LiteLLM are imported: no model-cost download, no cache on disk.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    cache = tempfile.mkdtemp(prefix="dspy-cache-")
    os.environ["DSPY_CACHEDIR"] = cache
    loopback_only(who)
    sim, url = start_simulator()
    try:
        run(url)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        shutil.rmtree(cache, ignore_errors=True)
