"""Generates dspy_codeact.json, the golden file for plugins/codeact/golden_test.go.

Run by hand, not by `make test`: it needs DSPy 3.4.1 installed (its own virtualenv,
never the project's), e.g.

    /opt/dspy-venv/bin/python plugins/codeact/testdata/golden/gen_golden.py

It runs DSPy's own CodeAct and ProgramOfThought against a scripted DummyLM, with a
scripted interpreter standing in for DSPy's Deno one (it answers what DSPEx's
interpreter plugin answers for the same code), and records every request sent to
the LM. The Go test runs the same programs on the real plugin and a scripted
simulated LM and must send the same requests.
"""

from __future__ import annotations

import json
import pathlib
import warnings
from collections.abc import Callable
from typing import Any

import dspy
from dspy.primitives.code_interpreter import CodeExecutionError, FinalOutput
from dspy.utils.dummies import DummyLM

HERE = pathlib.Path(__file__).parent


def price(item: str) -> int:
    """Returns the price of one item in euros."""
    return {"apple": 3, "pear": 5}[item]


def quantity(item: str) -> int:
    """Returns how many of an item are in stock."""
    return {"apple": 7, "pear": 2}[item]


class Scripted:
    """A CodeInterpreter that answers each execution from a list (a callable raises)."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = list(answers)
        self.codes: list[str] = []

    @property
    def tools(self) -> dict[str, Callable[..., Any]]:
        return {}

    def start(self) -> None:
        pass

    def execute(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        if code.startswith("def "):  # CodeAct defining its tools from their source
            return None
        self.codes.append(code)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def shutdown(self) -> None:
        pass


def requests(lm: DummyLM) -> list[list[dict[str, str]]]:
    return [
        [{"role": m["role"], "content": m["content"]} for m in h["messages"]] for h in lm.history
    ]


def code_act() -> dict[str, Any]:
    sig = dspy.Signature("question -> answer: int", "Answer with a number.")
    act = dspy.CodeAct(sig, tools=[price, quantity])
    lm = DummyLM(
        [
            {
                "generated_code": (
                    "```python\np = price('apple')\nq = quantity(item='apple')\nprint(p * q)\n```"
                ),
                "finished": False,
            },
            {"generated_code": "```python\nprint(missing)\n```", "finished": False},
            {"generated_code": "```python\nprint(p * q + 1)\n```", "finished": True},
            {"reasoning": "The code printed 22.", "answer": 22},
        ]
    )
    interp = Scripted(
        ["21\n", CodeExecutionError("NameError: name 'missing' is not defined"), "22\n"]
    )
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        pred = act(interp, question="What do the apples in stock cost, plus one?")
    return {
        "inputs": {"question": "What do the apples in stock cost, plus one?"},
        "codes": interp.codes,
        "requests": requests(lm),
        "trajectory": pred.trajectory,
        "answer": pred.answer,
        "predictors": [name for name, _ in act.named_predictors()],
    }


def program_of_thought() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pot = dspy.ProgramOfThought("question -> answer: int")
    lm = DummyLM(
        [
            {
                "reasoning": "Multiply.",
                "generated_code": "```python\nSUBMIT({'answer': missing})\n```",
            },
            {
                "reasoning": "Define it.",
                "generated_code": "```python\nresult = 17 * 23\nSUBMIT({'answer': result})\n```",
            },
            {"reasoning": "The code computed 391.", "answer": 391},
        ]
    )
    interp = Scripted(
        [
            CodeExecutionError("NameError: name 'missing' is not defined"),
            FinalOutput({"output": {"answer": 391}}),
        ]
    )
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        pred = pot(interp, question="What is 17 * 23?")
    return {
        "inputs": {"question": "What is 17 * 23?"},
        "codes": interp.codes,
        "requests": requests(lm),
        "answer": pred.answer,
        "predictors": [name for name, _ in pot.named_predictors()],
    }


def main() -> None:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    out = {
        "dspy_version": dspy.__version__,
        "code_act": code_act(),
        "program_of_thought": program_of_thought(),
    }
    (HERE / "dspy_codeact.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
