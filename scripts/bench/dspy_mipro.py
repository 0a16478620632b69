"""DSPy's MIPROv2 on the bundled task, against the DSPEx LM simulator.

The DSPy side of the MIPROv2 benchmark (plugins/mipro/bench_test.go,
`make bench-mipro`): the same task (examples/capitals), signature
(question -> answer), metric (exact match on answer), seed, auto mode,
validation set and thread count as the DSPEx run, with the response cache
off, against a simulator the caller has started (`--api-base`, which must be
a loopback address). Run it with a Python that has dspy==3.4.1 and optuna
installed (the benchmark's own virtualenv, never the project's .venv).

It prints one machine-readable line on stdout,

    DSPY_MIPRO {"wall_s": ..., "lm_calls": ..., ...}

where wall_s is the time of MIPROv2.compile alone (imports, the LM set-up and
Optuna's import are done before the clock starts, as the DSPEx side starts its
sampler plugin before its clock), and lm_calls is the LM's own history (the
harness counts the requests at the simulator as well); optuna_s is the time
spent inside Optuna's calls. Scores against the
simulator measure the optimizer, not a model.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import ParamSpec, TypeVar
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]

P = ParamSpec("P")
R = TypeVar("R")


def loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class OptunaClock:
    """Wall time spent inside the Optuna calls DSPy's MIPROv2 makes (study
    creation, ask, suggest, tell, add_trial): DSPy's in-process counterpart
    of the time DSPEx spends in sampler plugin calls. Nested calls count
    once."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0

    def wrap(self, fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - start
                    self.calls += 1

        return timed

    def install(self, optuna: ModuleType) -> None:
        import optuna.study._optimize as optimize

        optuna.create_study = self.wrap(optuna.create_study)
        optuna.trial.create_trial = self.wrap(optuna.trial.create_trial)
        optuna.study.Study.ask = self.wrap(optuna.study.Study.ask)
        optuna.study.Study.add_trial = self.wrap(optuna.study.Study.add_trial)
        optuna.trial.Trial.suggest_categorical = self.wrap(optuna.trial.Trial.suggest_categorical)
        optimize._tell_with_warning = self.wrap(optimize._tell_with_warning)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--api-base", required=True, help="the simulator, e.g. http://127.0.0.1:8089/v1")
    # A model DSPy's price table knows: for one it does not, DSPy scans the
    # whole table on every call (dspy.clients.model_metadata.model_info), a
    # cost no real deployment pays. The simulator answers any model name.
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--data", default=str(ROOT / "examples" / "capitals"))
    p.add_argument("--valset-size", type=int, default=60, help="the first N of dev.jsonl")
    p.add_argument("--auto", default="light", choices=["light", "medium", "heavy"])
    p.add_argument("--seed", type=int, default=9)
    p.add_argument("--num-threads", type=int, default=16)
    args = p.parse_args()
    if not loopback(args.api_base):
        p.error(f"--api-base {args.api_base}: only a loopback simulator is allowed")

    # No network: LiteLLM reads its bundled model price map, DSPy's cache
    # directory is a throwaway one (and the cache is off anyway).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    cache_dir = tempfile.mkdtemp(prefix="dspy-bench-")
    os.environ["DSPY_CACHEDIR"] = cache_dir
    os.environ.setdefault("OPENAI_API_KEY", "unused")

    import dspy
    import optuna  # MIPROv2 imports it lazily; keep that off the clock.

    logging.getLogger("dspy").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    clock = OptunaClock()
    clock.install(optuna)

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = dspy.LM(f"openai/{args.model}", api_base=args.api_base, api_key="unused", cache=False)
    dspy.configure(lm=lm)

    data = Path(args.data)
    train = [dspy.Example(**r).with_inputs("question") for r in load(data / "train.jsonl")]
    dev = [dspy.Example(**r).with_inputs("question") for r in load(data / "dev.jsonl")]
    valset = dev[: args.valset_size]

    opt = dspy.MIPROv2(
        metric=dspy.evaluate.answer_exact_match,
        auto=args.auto,
        seed=args.seed,
        num_threads=args.num_threads,
    )
    student = dspy.Predict("question -> answer")

    start = time.perf_counter()
    best = opt.compile(student, trainset=train, valset=valset)
    wall = time.perf_counter() - start

    out = {
        "wall_s": round(wall, 4),
        "lm_calls": len(lm.history),
        "optuna_s": round(clock.seconds, 4),
        "optuna_calls": clock.calls,
        "score": getattr(best, "score", None),
        "trials": len(getattr(best, "trial_logs", {}) or {}),
        "dspy": dspy.__version__,
        "optuna": optuna.__version__,
        "num_threads": args.num_threads,
        "auto": args.auto,
        "seed": args.seed,
        "valset": len(valset),
    }
    print("DSPY_MIPRO " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
