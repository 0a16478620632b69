"""Generates dspy_react.json, the golden file for core/module/react_test.go.

Run by hand, not by `make test`: it needs DSPy 3.4.1 installed, e.g.

    /tmp/dspyenv/bin/python core/module/testdata/golden/react/gen_golden.py

It runs DSPy's own ReAct and Tool against a scripted DummyLM and records
what DSPy produces: each tool's description as ReAct's instructions show it,
the saved state of both predictors, and every request sent to the LM (so
the trajectory's formatting is checked too). The Go tests build the same
signature and tools (see goldenTools in react_test.go) and must produce
the same text.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Literal

import dspy
from dspy.utils.dummies import DummyLM
from pydantic import BaseModel, Field

HERE = pathlib.Path(__file__).parent


def search_wikipedia(query: str) -> list[str]:
    """Search Wikipedia for abstracts.

    Returns the top results."""
    return [
        "Go | Go is a programming language designed at Google.",
        "Gopher | A small burrowing rodent.",
    ]


def lookup(title: str, limit: int, section: str | None = None) -> dict[str, Any]:
    return {
        "title": title,
        "text": "Go was designed at Google by Griesemer, Pike and Thompson."[:limit],
        "section": section,
    }


class SinkLeaf(BaseModel):
    v: float


class SinkFilter(BaseModel):
    year: int = Field(description="publication year")
    lang: Literal["en", "de"]
    note: str | None = None
    leaf: SinkLeaf = Field(description="dropped by DSPy's $ref resolution")
    maybe_leaf: SinkLeaf | None = None
    leaves: list[SinkLeaf]


def kitchen_sink(
    a: int,
    b: float,
    c: bool,
    d: list[str],
    e: dict[str, int],
    g: Any,
    h: SinkFilter,
    j: dict[str, Any],
    k: Literal["x"],
    m: list,
    f: int | None = None,
    o: SinkFilter | None = None,
) -> str:
    return ""


def main() -> None:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    tools = {
        "search_wikipedia": dspy.Tool(search_wikipedia),
        "lookup": dspy.Tool(lookup, arg_desc={"title": "the page's title"}),
        "kitchen_sink": dspy.Tool(
            kitchen_sink,
            desc='Takes "everything".\nTabs\tand\\backslashes.',
            arg_desc={"d": "some strings", "o": "an optional filter"},
        ),
    }

    sig = dspy.Signature(
        "question, hints: list[str] -> answer, confidence: float",
        "Answer the question with the tools.",
    )
    react = dspy.ReAct(sig, tools=[tools["search_wikipedia"], tools["lookup"]])
    lm = DummyLM(
        [
            {
                "next_thought": "I should search.",
                "next_tool_name": "search_wikipedia",
                "next_tool_args": {"query": "Go programming language"},
            },
            {
                "next_thought": "Look up the page.",
                "next_tool_name": "lookup",
                "next_tool_args": {"limit": 40, "title": "Go"},
            },
            {"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "The page says Google.", "answer": "Google", "confidence": 0.9},
        ]
    )
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        pred = react(question="Who designed Go?", hints=["it is a language", "think «Google»"])

    requests = [
        [{"role": m["role"], "content": m["content"]} for m in h["messages"]] for h in lm.history
    ]
    state = react.dump_state()
    out = {
        "dspy_version": dspy.__version__,
        "tools": {name: str(t) for name, t in tools.items()},
        "state": {
            name: {
                "instructions": s["signature"]["instructions"],
                "fields": s["signature"]["fields"],
            }
            for name, s in state.items()
        },
        "requests": requests,
        "trajectory": pred.trajectory,
        "answer": pred.answer,
        "confidence": pred.confidence,
    }
    (HERE / "dspy_react.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
