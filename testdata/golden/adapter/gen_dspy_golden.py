"""Regenerate the adapter golden files from DSPy itself.

Not run by `make test`: the goldens are committed. To refresh them after a DSPy
release, in a virtualenv with `pip install dspy==3.4.1`:

    python testdata/golden/adapter/gen_dspy_golden.py

Each case in cases.json is formatted by dspy.ChatAdapter and dspy.JSONAdapter;
the messages (and, for JSONAdapter, the structured-output schema) are written
to <case>.<adapter>.json. The Go test formats the same cases and compares.
"""

from __future__ import annotations

import json
import pathlib

import dspy
import pydantic
from dspy.adapters.json_adapter import _get_structured_outputs_response_format

HERE = pathlib.Path(__file__).parent


class Address(pydantic.BaseModel):
    city: str
    country: str


class Person(pydantic.BaseModel):
    name: str
    address: Address
    tags: list[str]


class Summary(pydantic.BaseModel):
    headline: str
    score: float


CUSTOM_TYPES = {"Address": Address, "Person": Person, "Summary": Summary}


def build_signature(case: dict) -> type[dspy.Signature]:
    sig = dspy.Signature(case["signature"], case.get("instructions"), custom_types=CUSTOM_TYPES)
    for name, desc in case.get("descs", {}).items():
        sig = sig.with_updated_fields(name, desc=desc)
    if case.get("cot"):
        sig = dspy.ChainOfThought(sig).predict.signature
    return sig


def main() -> None:
    cases = json.loads((HERE / "cases.json").read_text())
    for case in cases:
        sig = build_signature(case)
        for name, adapter in (("chat", dspy.ChatAdapter()), ("json", dspy.JSONAdapter())):
            out = {"messages": adapter.format(sig, case.get("demos", []), case["inputs"])}
            if name == "json":
                try:
                    model = _get_structured_outputs_response_format(sig)
                    out["response_schema"] = model.model_json_schema()
                except ValueError:
                    out["response_schema"] = None
            path = HERE / f"{case['name']}.{name}.json"
            path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
            print("wrote", path.name)


if __name__ == "__main__":
    main()
