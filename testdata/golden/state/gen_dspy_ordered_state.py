"""Write a DSPy state file whose demos hold ordered dicts and big integers.

Run by hand (not by `make test`), in a virtualenv with `pip install dspy==3.4.1`:

    python testdata/golden/state/gen_dspy_ordered_state.py

It gives a bare dspy.Predict demos whose keys are not in signature order,
whose dict values are not in sorted key order, with integers beyond int64
and keys the signature lacks; saves it with DSPy's `save`
(ordered_saved.json); loads it into a fresh Predict and records the
messages ChatAdapter and JSONAdapter build from it for one input
(ordered_prompts.json). The Go test (TestLoadOrderedDSPyState) loads the
file, compares its prompts with these, and saves it back with the demos in
the same order.

DSPy writes state with orjson, which refuses integers beyond 64 bits (and
reads them back as floats), so the saved demos stay within uint64; the input
of the recorded prompts goes beyond it.
"""

from __future__ import annotations

import json
import pathlib

import dspy

HERE = pathlib.Path(__file__).parent

SIGNATURE = "query: dict, n: int -> result: dict, total: int"


def main() -> None:
    program = dspy.Predict(SIGNATURE)
    program.demos = [
        dspy.Example(
            total=3,
            query={
                "zeta": 1,
                "alpha": {"y": 2, "x": [1, 18446744073709551615, -9223372036854775808]},
            },
            n=12345678901234567890,
            result={"b": "x", "a": None},
            source="wiki",
            augmented=True,
        ),
        dspy.Example(n=1, id=7, query={"b": 1, "a": 2}),
        dspy.Example(query={"q": 1}, n=2, result={"z": {"y": 1.5, "x": "é"}}),
    ]
    program.save(str(HERE / "ordered_saved.json"))

    loaded = dspy.Predict(SIGNATURE)
    loaded.load(str(HERE / "ordered_saved.json"))
    inputs = {"query": {"k2": 1, "k1": [{"b": 1, "a": 2}]}, "n": 18446744073709551616}
    prompts = {
        "chat": dspy.ChatAdapter().format(loaded.signature, loaded.demos, inputs),
        "json": dspy.JSONAdapter().format(loaded.signature, loaded.demos, inputs),
    }
    (HERE / "ordered_prompts.json").write_text(
        json.dumps(prompts, indent=2, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    main()
