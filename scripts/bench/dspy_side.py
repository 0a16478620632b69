"""DSPy's side of the side-by-side benchmark (BenchmarkVersusDSPy).

The Go benchmark (scripts/bench/benchreport/versus_bench_test.go) starts this
script once with a Python that has dspy==3.4.1 installed (the benchmark's own
virtualenv, bin/bench-venv, never the project's .venv), then sends it one JSON
command per line on stdin and reads one JSON result per line on stdout,
alternating each measurement with the same measurement in DSPEx, against the
same simulated LM (the Go process's lmtest server, on a loopback address).

Commands ({"op": ..., ...}) and results:

  predict    {"api_base", "n", "tag"}: n sequential Predict("question -> answer")
             calls, the LM's cache off; {"per_call_s"}
  cache_hit  {"api_base", "n", "tier": "memory"|"disk"}: one call to fill
             the cache, then n identical calls answered from it (DSPy's memory
             cache, or its disk cache with the memory cache off);
             {"per_call_s"}
  evaluate   {"api_base", "n", "threads", "tag"}: dspy.Evaluate over n
             distinct questions with num_threads=threads, cache off;
             {"wall_s"}
  bootstrap  {"api_base", "train", "max_demos"}: BootstrapFewShot
             (max_bootstrapped_demos=max_demos, max_labeled_demos=16) over the
             training file, cache off; {"wall_s", "demos"}
  quit

Only the work itself is timed (imports and set-up come before the clock).
The harness counts LM calls at the simulator.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SIGNATURE = "question -> answer"
# A model DSPy's price table knows (the simulator answers any name): for one
# it does not, DSPy scans the whole table on every call to price it
# (dspy.clients.model_metadata.model_info), which no real deployment pays.
MODEL = "openai/gpt-4o-mini"


def loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> int:
    # Results go to the real stdout; anything DSPy prints goes to stderr.
    results = sys.stdout
    sys.stdout = sys.stderr
    # No network: LiteLLM reads its bundled price map; DSPy's cache lives in a
    # throwaway directory.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    tmp = tempfile.mkdtemp(prefix="dspy-side-")
    os.environ["DSPY_CACHEDIR"] = tmp
    os.environ.setdefault("OPENAI_API_KEY", "unused")

    import dspy

    logging.getLogger("dspy").setLevel(logging.WARNING)
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)

    def lm(api_base: str, cache: bool) -> object:
        if not loopback(api_base):
            raise ValueError(f"api_base {api_base}: only a loopback simulator is allowed")
        return dspy.LM(MODEL, api_base=api_base, api_key="unused", cache=cache)

    def no_cache() -> None:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)

    def predict(cmd: dict[str, Any]) -> dict[str, Any]:
        no_cache()
        prog = dspy.Predict(SIGNATURE)
        n = int(cmd["n"])
        tag = cmd.get("tag", "")
        with dspy.context(lm=lm(cmd["api_base"], cache=False)):
            prog(question=f"{tag} warm-up question")
            start = time.perf_counter()
            for i in range(n):
                prog(question=f"{tag} question {i}")
            wall = time.perf_counter() - start
        return {"per_call_s": wall / n}

    def cache_hit(cmd: dict[str, Any]) -> dict[str, Any]:
        tier = cmd["tier"]
        if tier == "memory":
            dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
        elif tier == "disk":
            d = tempfile.mkdtemp(dir=tmp)
            dspy.configure_cache(
                enable_disk_cache=True, enable_memory_cache=False, disk_cache_dir=d
            )
        else:
            raise ValueError(f"tier {tier!r}: want memory or disk")
        prog = dspy.Predict(SIGNATURE)
        n = int(cmd["n"])
        q = f"{cmd.get('tag', '')} a question asked again and again"
        with dspy.context(lm=lm(cmd["api_base"], cache=True)):
            prog(question=q)
            prog(question=q)
            start = time.perf_counter()
            for _ in range(n):
                prog(question=q)
            wall = time.perf_counter() - start
        no_cache()
        return {"per_call_s": wall / n}

    def evaluate(cmd: dict[str, Any]) -> dict[str, Any]:
        no_cache()
        n, threads, tag = int(cmd["n"]), int(cmd["threads"]), cmd.get("tag", "")
        devset = [
            dspy.Example(question=f"{tag} What is {i}+{i}?", answer=str(2 * i)).with_inputs(
                "question"
            )
            for i in range(n)
        ]
        ev = dspy.Evaluate(
            devset=devset,
            metric=dspy.evaluate.answer_exact_match,
            num_threads=threads,
            display_progress=False,
            display_table=False,
        )
        prog = dspy.Predict(SIGNATURE)
        with dspy.context(lm=lm(cmd["api_base"], cache=False)):
            start = time.perf_counter()
            ev(prog)
            wall = time.perf_counter() - start
        return {"wall_s": wall}

    def bootstrap(cmd: dict[str, Any]) -> dict[str, Any]:
        no_cache()
        with Path(cmd["train"]).open(encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        train = [dspy.Example(**r).with_inputs("question") for r in rows]
        opt = dspy.BootstrapFewShot(
            metric=dspy.evaluate.answer_exact_match,
            max_bootstrapped_demos=int(cmd["max_demos"]),
            max_labeled_demos=16,
        )
        with dspy.context(lm=lm(cmd["api_base"], cache=False)):
            start = time.perf_counter()
            compiled = opt.compile(dspy.Predict(SIGNATURE), trainset=train)
            wall = time.perf_counter() - start
        demos = sum(len(p.demos) for _, p in compiled.named_predictors())
        return {"wall_s": wall, "demos": demos}

    ops = {"predict": predict, "cache_hit": cache_hit, "evaluate": evaluate, "bootstrap": bootstrap}
    print(json.dumps({"ready": True, "dspy": dspy.__version__}), file=results, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            if cmd.get("op") == "quit":
                break
            fn = ops.get(cmd.get("op"))
            if fn is None:
                raise ValueError(f"unknown op {cmd.get('op')!r}")
            out = fn(cmd)
        except Exception as e:  # report to the harness, keep serving
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), file=results, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
