"""Record the training file DSPy 3.4.1's BootstrapFinetune writes for a fixed task.

Not run by `make test`: the golden (finetune.jsonl, with finetune.json describing it)
is committed. To refresh it, with DSPy 3.4.1 installed in its own virtualenv, from the
repository root:

    go build -o bin/dspex ./cmd/dspex
    /opt/dspy-venv/bin/python plugins/finetune/testdata/golden/gen_dspy_finetune.py

(DSPEX=... names another dspex binary.) The script starts `dspex mock-lm` on 127.0.0.1
with examples/capitals as its dataset (the skill model of docs/simulated-lm.md, seed 0),
points DSPy's LM at it (the simulator's default model, DSPy's cache off) and makes
DSPy's own BootstrapFinetune data, with DSPy's own functions, for

    student = dspy.Predict("question -> answer") with DEMOS labeled demos (dev[:DEMOS])
    trace_data = bootstrap_trace_data(student, train[:NTRAIN], metric=answer_exact_match,
                                      num_threads=1)
    data, fmt = BootstrapFinetune(metric=answer_exact_match)._prepare_finetune_data(
        trace_data, lm)        # multitask: every step of every passing trace, shuffled
    write_lines("finetune.jsonl", data)   # orjson, one object a line, as save_data

which is what BootstrapFinetune.compile hands to LM.finetune (and the OpenAI provider
uploads). It refuses every network connection that is not to a loopback address, so
DSPy can reach nothing but the simulator.

The Go test plugins/finetune TestDSPyTrainingFileGolden bootstraps the same student on
the same data against the same simulator with plugins/finetune and checks that its
JSONL is byte for byte this file.
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
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent.parent
TASK = ROOT / "examples" / "capitals"

NTRAIN = 20
DEMOS = 2
MODEL = "dspex-sim"  # lmtest.DefaultModel: the simulator's placeholders hash the model name


def loopback_only() -> None:
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
                raise ConnectionRefusedError(f"gen_dspy_finetune: no network: refused {address!r}")
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
    with open(TASK / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    # Before DSPy and LiteLLM are imported: no model-cost download, no cache on disk.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    cache = tempfile.mkdtemp(prefix="dspy-cache-")
    os.environ["DSPY_CACHEDIR"] = cache
    loopback_only()
    sim, url = start_simulator()
    try:
        run(url)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        shutil.rmtree(cache, ignore_errors=True)


def run(url: str) -> None:
    import dspy
    from dspy.clients.utils_finetune import write_lines
    from dspy.evaluate import answer_exact_match
    from dspy.teleprompt.bootstrap_finetune import BootstrapFinetune
    from dspy.teleprompt.bootstrap_trace import bootstrap_trace_data

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = dspy.LM(f"openai/{MODEL}", api_base=url, api_key="unused", cache=False, num_retries=0)
    dspy.configure(lm=lm, adapter=dspy.ChatAdapter())

    train, dev = load("train.jsonl"), load("dev.jsonl")
    trainset = [dspy.Example(**ex).with_inputs("question") for ex in train[:NTRAIN]]
    demos = [dspy.Example(**ex).with_inputs("question") for ex in dev[:DEMOS]]

    student = dspy.Predict("question -> answer")
    student.demos = demos
    student.lm = lm

    trace_data = bootstrap_trace_data(
        program=student, dataset=trainset, metric=answer_exact_match, num_threads=1
    )
    data, data_format = BootstrapFinetune(metric=answer_exact_match)._prepare_finetune_data(
        trace_data=trace_data, lm=lm
    )
    write_lines(str(HERE / "finetune.jsonl"), data)
    info = {
        "dspy_version": dspy.__version__,
        "data_format": str(data_format.value),
        "ntrain": NTRAIN,
        "demos": DEMOS,
        "model": MODEL,
        "scores": [d["score"] for d in trace_data],
        "lines": len(data),
    }
    with open(HERE / "finetune.json", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"wrote {len(data)} training lines from {len(trace_data)} traces")


if __name__ == "__main__":
    main()
