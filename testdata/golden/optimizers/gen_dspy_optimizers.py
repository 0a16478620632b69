"""Record which demos DSPy 3.4.1's few-shot optimizers choose.

Not run by `make test`: the golden is committed. To refresh it, with DSPy
installed in its own virtualenv:

    /opt/dspy-venv/bin/python testdata/golden/optimizers/gen_dspy_optimizers.py

LabeledFewShot, BootstrapFewShot and BootstrapFewShotWithRandomSearch run on
a slice of examples/capitals with a rule LM: a deterministic function of the
request that both this script and the Go test (core/teleprompt,
TestDSPyOptimizerParity) implement:

- The request's output field is the one the last user message asks to start
  with ("starting with the field `[[ ## F ## ]]`").
- F = hint: the answer is "hint-" + str(h(q) % 7), q the last user
  message's question.
- F = answer: v = h(q) + sum of h(d) over the questions d of the earlier user
  messages (the demos) + the request's rollout id (0 when none); when
  v % 5 < 3 the answer is the gold answer of q, else "I don't know".

h(s) is the first 8 hex digits of SHA-256(s) as an integer. The answer thus
depends on which demos a prompt carries, so the bootstraps and the scores
follow the optimizers' random choices. optimizers.json records, per case,
each predictor's demos in order and, for random search, every candidate's
seed, score and demos, and the seed of the program returned.

The "several_calls" cases bootstrap programs that call one predictor several
times per run, where DSPy keeps one call per run, drawn from
random.Random(Hasher.hash(tuple(demos))). They use a second rule LM: the
answer to a question of the task is its gold answer, unless the request
carries a hint other than "try 2", then the question's first character; any
other question is answered "no answer to " + the question. The programs:
"twice" asks q, then q + " Answer briefly.", and returns the first
prediction; "loop" asks (q, hint "try i") for i = 0, 1, 2 and returns the
last; "chain" asks q, then asks the first answer, and returns the first.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
import sys
from typing import Any

import dspy
from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
from dspy.teleprompt import BootstrapFewShot, BootstrapFewShotWithRandomSearch, LabeledFewShot
from dspy.utils.dummies import DummyLM

HERE = pathlib.Path(__file__).parent
TASK = HERE.parent.parent.parent / "examples" / "capitals"
NTRAIN, NVAL = 20, 10

QUESTION = re.compile(r"\[\[ ## question ## \]\]\n(.*?)(?:\n\n|$)", re.S)
OUTPUT = re.compile(r"starting with the field `\[\[ ## (\w+) ## \]\]`")


def load(name: str) -> list[dict[str, Any]]:
    with open(TASK / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def h(s: str) -> int:
    return int(hashlib.sha256(s.encode("utf-8")).hexdigest()[:8], 16)


def question_of(content: str) -> str:
    m = QUESTION.search(content)
    if m is None:
        raise ValueError(f"no question in {content!r}")
    return m.group(1)


def rule(messages: list[dict[str, Any]], rollout: int, gold: dict[str, str]) -> str:
    last = messages[-1]["content"]
    field = OUTPUT.search(last).group(1)
    q = question_of(last)
    if field == "hint":
        value = f"hint-{h(q) % 7}"
    else:
        v = h(q) + rollout
        v += sum(h(question_of(m["content"])) for m in messages[1:-1] if m["role"] == "user")
        value = gold[q] if v % 5 < 3 else "I don't know"
    return f"[[ ## {field} ## ]]\n{value}\n\n[[ ## completed ## ]]"


class RuleEngine(DummyEngine):
    def complete_legacy(self, lm, request, *, prompt=None, messages=None, **context):
        from dspy.clients.call_result import CallResult
        from dspy.lm15 import Message, Response, TextPart, Usage

        text = rule(request["messages"], int(request.get("rollout_id") or 0), self.owner.gold)
        return CallResult.native(
            Response(
                id=None,
                model="dummy",
                message=Message.assistant([TextPart(text)]),
                finish_reason="stop",
                usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
            )
        )


class RuleLM(DummyLM):
    def __init__(self, gold: dict[str, str]):
        super().__init__({})
        self.gold = gold
        self._use_engine()

    def _use_engine(self) -> None:
        self._engine_spec = RuleEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs):
        c = super().copy(**kwargs)
        c._use_engine()
        return c


SUFFIX = " Answer briefly."
HINT = re.compile(r"\[\[ ## hint ## \]\]\n(.*?)(?:\n\n|$)", re.S)


def calls_rule(messages: list[dict[str, Any]], gold: dict[str, str]) -> str:
    last = messages[-1]["content"]
    q = question_of(last)
    m = HINT.search(last)
    hint = m.group(1) if m else None
    if q not in gold:
        value = "no answer to " + q
    elif hint in (None, "try 2"):
        value = gold[q]
    else:
        value = q[:1]
    return f"[[ ## answer ## ]]\n{value}\n\n[[ ## completed ## ]]"


class CallsEngine(DummyEngine):
    def complete_legacy(self, lm, request, *, prompt=None, messages=None, **context):
        from dspy.clients.call_result import CallResult
        from dspy.lm15 import Message, Response, TextPart, Usage

        text = calls_rule(request["messages"], self.owner.gold)
        return CallResult.native(
            Response(
                id=None,
                model="dummy",
                message=Message.assistant([TextPart(text)]),
                finish_reason="stop",
                usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
            )
        )


class CallsLM(RuleLM):
    def _use_engine(self) -> None:
        self._engine_spec = CallsEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)


class Twice(dspy.Module):
    def __init__(self):
        super().__init__()
        self.p = dspy.Predict("question -> answer")

    def forward(self, question):
        first = self.p(question=question)
        self.p(question=question + SUFFIX)
        return first


class Loop(dspy.Module):
    def __init__(self):
        super().__init__()
        self.p = dspy.Predict("question, hint -> answer")

    def forward(self, question):
        for i in range(3):
            pred = self.p(question=question, hint=f"try {i}")
        return pred


class Chain(dspy.Module):
    def __init__(self):
        super().__init__()
        self.p = dspy.Predict("question -> answer")

    def forward(self, question):
        first = self.p(question=question)
        self.p(question=first.answer)
        return first


class Pipe(dspy.Module):
    def __init__(self):
        super().__init__()
        self.hint = dspy.Predict("question -> hint")
        self.answer = dspy.Predict("question, hint -> answer")

    def forward(self, question):
        hint = self.hint(question=question).hint
        return self.answer(question=question, hint=hint)


def program(kind: str) -> dspy.Module:
    return Pipe() if kind == "pipe" else dspy.Predict("question -> answer")


def metric(example, pred, trace=None):
    return example.answer == pred.answer


def demos_of(p: dspy.Module) -> list[list[dict[str, Any]]]:
    return [[dict(d.toDict()) for d in pred.demos] for _, pred in p.named_predictors()]


def pickle_cases() -> list[dict[str, Any]]:
    """Demos tuples for Hasher.hash, built with the object identities
    DSPy's Predict gives (see dspyTraceHash in core/teleprompt/pickle.go):
    an input value equal to an earlier value of the tuple is that object;
    every other value is an object of its own (CPython's singletons aside).
    Each demo is [inputs, outputs], each a list of [key, value] pairs."""
    big = 2**70
    return [
        {
            "name": "twice",
            "demos": [
                [[["question", "What is the chemical symbol for platinum?"]], [["answer", "Pt"]]],
                [
                    [["question", "What is the chemical symbol for platinum? Answer briefly."]],
                    [["answer", "Pt"]],
                ],
            ],
        },
        {
            "name": "scalars",
            "demos": [
                [[["question", "q1"], ["n", 0]], [["answer", 255], ["f", 0.1]]],
                [[["question", "q2"], ["n", 256]], [["answer", 65535], ["f", -0.0]]],
                [[["question", "q3"], ["n", 65536]], [["answer", -1], ["f", 1e300]]],
                [[["question", "q4"], ["n", -(2**31)]], [["answer", 2**31], ["f", None]]],
                [[["question", "q5"], ["n", 2**63]], [["answer", -(2**63) - 1], ["f", False]]],
                [[["question", "é"], ["n", -(2**64)]], [["answer", big], ["f", True]]],
                [[["question", "日本"], ["n", -128]], [["answer", ""], ["f", "a"]]],
                [[["question", "\u0100"], ["n", -129]], [["answer", "a"], ["f", -(2**63)]]],
            ],
        },
        {
            "name": "shared",
            "demos": [
                [[["question", "Who?"], ["hint", "try 0"]], [["answer", "W"]]],
                [[["question", "Who?"], ["hint", "try 1"]], [["answer", "Ann"]]],
                [[["question", "Ann"], ["hint", "try 1"]], [["answer", "Ann"]]],
                [[["question", "Ann"], ["hint", "Who?"]], [["answer", "W"]]],
            ],
        },
        {
            "name": "large",
            "demos": [
                [
                    [["question", f"q{i} " + "x" * (100_000 if i == 3 else 5_000 + i)]],
                    [["answer", f"a{i}"]],
                ]
                for i in range(40)
            ],
        },
        {
            "name": "many",
            "demos": [
                [
                    [["question", f"question {i}"]],
                    [["answer", f"answer {i}"], ["reasoning", "r" * (i % 300)]],
                ]
                for i in range(300)
            ],
        },
    ]


def pickle_hashes() -> list[dict[str, Any]]:
    from dspy.utils.hasher import Hasher

    out = []
    for case in pickle_cases():
        doc = json.loads(json.dumps(case["demos"]))  # keys: one object per name, values: fresh
        seen: dict[str, Any] = {}
        demos = []
        for inputs, outputs in doc:
            fields: dict[str, Any] = {}
            for k, v in inputs:
                if isinstance(v, str) and v in seen:
                    v = seen[v]
                elif isinstance(v, str):
                    seen[v] = v
                fields[sys.intern(k)] = v
            for k, v in outputs:
                if isinstance(v, str):
                    seen[v] = v
                fields[sys.intern(k)] = v
            demos.append(dspy.Example(augmented=True, **fields))
        rec = {"name": case["name"], "hash": Hasher.hash(tuple(demos))}
        if case["name"] not in ("large", "many"):  # the Go test builds these two as above
            rec["demos"] = case["demos"]
        out.append(rec)
    return out


def main() -> None:
    train, dev = load("train.jsonl"), load("dev.jsonl")
    gold = {ex["question"]: ex["answer"] for ex in train + dev}
    dspy.configure(lm=RuleLM(gold), adapter=dspy.ChatAdapter())
    trainset = [dspy.Example(**ex).with_inputs("question") for ex in train[:NTRAIN]]
    valset = [dspy.Example(**ex).with_inputs("question") for ex in dev[:NVAL]]

    cases: list[dict[str, Any]] = []

    def labeled(name: str, kind: str, k: int, sample: bool = True) -> None:
        p = LabeledFewShot(k=k).compile(program(kind), trainset=trainset, sample=sample)
        cases.append(
            {
                "name": name,
                "optimizer": "labeled",
                "program": kind,
                "config": {"k": k, "sample": sample},
                "demos": demos_of(p),
            }
        )

    def bootstrap(name: str, kind: str, **cfg: Any) -> None:
        p = BootstrapFewShot(metric=metric, **cfg).compile(program(kind), trainset=trainset)
        cases.append(
            {
                "name": name,
                "optimizer": "bootstrap",
                "program": kind,
                "config": cfg,
                "demos": demos_of(p),
            }
        )

    def random_search(name: str, kind: str, **cfg: Any) -> None:
        best = BootstrapFewShotWithRandomSearch(metric=metric, **cfg).compile(
            program(kind), trainset=trainset, valset=valset
        )
        cands = sorted(best.candidate_programs, key=lambda c: c["seed"])
        best_seed = next(c["seed"] for c in cands if c["program"] is best)
        cases.append(
            {
                "name": name,
                "optimizer": "random_search",
                "program": kind,
                "config": cfg,
                "best_seed": best_seed,
                "candidates": [
                    {"seed": c["seed"], "score": c["score"], "demos": demos_of(c["program"])}
                    for c in cands
                ],
            }
        )

    labeled("labeled_predict_k4", "predict", 4)
    labeled("labeled_pipe_k4", "pipe", 4)
    labeled("labeled_pipe_k30", "pipe", 30)
    labeled("labeled_pipe_nosample", "pipe", 3, sample=False)
    bootstrap("bootstrap_predict", "predict", max_bootstrapped_demos=3, max_labeled_demos=6)
    bootstrap("bootstrap_pipe", "pipe", max_bootstrapped_demos=3, max_labeled_demos=6)
    bootstrap(
        "bootstrap_predict_rounds",
        "predict",
        max_bootstrapped_demos=4,
        max_labeled_demos=5,
        max_rounds=2,
    )
    bootstrap(
        "bootstrap_predict_no_labeled", "predict", max_bootstrapped_demos=2, max_labeled_demos=0
    )
    random_search(
        "random_search_predict",
        "predict",
        max_bootstrapped_demos=3,
        max_labeled_demos=5,
        num_candidate_programs=5,
    )
    random_search(
        "random_search_pipe",
        "pipe",
        max_bootstrapped_demos=4,
        max_labeled_demos=6,
        num_candidate_programs=3,
    )

    with dspy.context(lm=CallsLM(gold)):
        for kind, cls in (("twice", Twice), ("loop", Loop), ("chain", Chain)):
            cfg = {"max_bootstrapped_demos": 20, "max_labeled_demos": 20}
            p = BootstrapFewShot(metric=metric, **cfg).compile(cls(), trainset=trainset)
            cases.append(
                {
                    "name": f"several_calls_{kind}",
                    "optimizer": "bootstrap",
                    "program": kind,
                    "lm": "calls",
                    "config": cfg,
                    "demos": demos_of(p),
                }
            )

    out = {
        "dspy_version": dspy.__version__,
        "train": f"examples/capitals/train.jsonl[:{NTRAIN}]",
        "valset": f"examples/capitals/dev.jsonl[:{NVAL}]",
        "cases": cases,
    }
    with open(HERE / "optimizers.json", "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(HERE / "pickle_hash.json", "w", encoding="utf-8") as f:
        json.dump(pickle_hashes(), f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
