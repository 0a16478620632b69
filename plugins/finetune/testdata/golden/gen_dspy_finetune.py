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

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent.parent
# The generators' shared helper (DSPy offline against the simulator).
sys.path.insert(0, str(ROOT / "testdata" / "golden"))
from dspysim import MODEL, load, run_offline  # noqa: E402

NTRAIN = 20
DEMOS = 2


def main() -> None:
    run_offline(run, "gen_dspy_finetune")


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
