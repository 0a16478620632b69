"""Check that DSPy loads a state file saved by DSPEx (run by hand).

    python testdata/golden/state/check_dspy_loads_dspex.py

Loads dspex_saved.json (written by `go test ./core/program -update`) into
the DSPy program of gen_dspy_state.py and checks that DSPy then builds the
prompts recorded in dspy_prompts.json, and that the predictor config DSPEx
saved reaches DSPy's Predict.config.
"""

from __future__ import annotations

import json
import pathlib

import dspy
from gen_dspy_state import QA

HERE = pathlib.Path(__file__).parent


def main() -> None:
    program = QA()
    program.load(str(HERE / "dspex_saved.json"))
    adapter = dspy.ChatAdapter()
    inputs = {
        "question": "What is the capital of France?",
        "context": ["Paris is the capital of France.", "France is in Europe."],
    }
    got = {
        "generate.predict": adapter.format(
            program.generate.predict.signature, program.generate.predict.demos, inputs
        ),
        "summarize": adapter.format(
            program.summarize.signature, program.summarize.demos, {"answer": "Paris"}
        ),
    }
    want = json.loads((HERE / "dspy_prompts.json").read_text())
    assert got == want, "DSPy's prompts from the DSPEx state differ"
    assert program.summarize.config == {"temperature": 0.7, "max_tokens": 64}, (
        program.summarize.config
    )
    print("ok: DSPy loads the DSPEx state file and builds the same prompts")


if __name__ == "__main__":
    main()
