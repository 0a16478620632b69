"""Record which response_format DSPy 3.4.1's JSONAdapter sends, by model name.

Not run by `make test`: the golden is committed. In a virtualenv of its own
with `pip install dspy==3.4.1`:

    python testdata/golden/adapter/gen_dspy_response_format.py

For each model name, DSPy is given the LM "openai/<name>" (an
OpenAI-compatible endpoint, as DSPEx's `lm.model` is) and its JSONAdapter
prepares the call's keyword arguments for "question -> answer". The kind it
chose (json_schema, json_object or none) goes to response_format.json;
core/lm's TestAutoResponseFormatMatchesDSPy compares lm.AutoResponseFormat.
"""

from __future__ import annotations

import json
import pathlib

import dspy
from dspy.adapters.json_adapter import JSONAdapter

HERE = pathlib.Path(__file__).parent

MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4o-2024-05-13",
    "gpt-4o-2024-08-06",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-5",
    "gpt-5-mini",
    "o1",
    "o3-mini",
    "o3",
    "o4-mini",
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-16k",
    "gpt-4",
    "gpt-4-turbo",
    "gpt-4-0613",
    "llama3",
    "qwen2.5:7b",
    "mistral-7b-instruct",
    "ft:gpt-4o-mini-2024-07-18:org::abc",
    "dspex-sim",
]


def kind(response_format: object) -> str:
    if response_format is None:
        return "none"
    if isinstance(response_format, dict):
        return str(response_format["type"])
    # A pydantic model class: DSPy hands litellm the outputs' schema.
    return "json_schema"


def main() -> None:
    sig = dspy.Signature("question -> answer")
    out = {}
    for name in MODELS:
        lm = dspy.LM("openai/" + name, api_base="http://127.0.0.1:9/v1", api_key="unused")
        kwargs: dict = {}
        JSONAdapter()._prepare_response_format(lm, kwargs, sig)
        out[name] = kind(kwargs.get("response_format"))
    (HERE / "response_format.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
