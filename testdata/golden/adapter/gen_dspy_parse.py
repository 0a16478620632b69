"""Regenerate parse.json: what DSPy's JSONAdapter.parse returns for LM answers.

Not run by `make test`: the golden is committed. To refresh it, in a
virtualenv with `pip install dspy==3.4.1`:

    python testdata/golden/adapter/gen_dspy_parse.py

Each case in parse_cases.json (a signature and an LM completion) is parsed by
dspy.JSONAdapter; the parsed fields (or the error) are written to parse.json,
values as json.dumps writes them, so dict key order and big integers show.
A str field given a JSON value gets Python's str() of it (a dict's repr).
The Go test (TestGoldenJSONParse) parses the same completions and compares.
"""

from __future__ import annotations

import json
import pathlib

import dspy

HERE = pathlib.Path(__file__).parent


def main() -> None:
    cases = json.loads((HERE / "parse_cases.json").read_text())
    out = []
    for case in cases:
        sig = dspy.Signature(case["signature"])
        try:
            fields = dspy.JSONAdapter().parse(sig, case["completion"])
            out.append({"name": case["name"], "fields": fields})
        except Exception as exc:
            out.append({"name": case["name"], "error": type(exc).__name__})
    (HERE / "parse.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print("wrote parse.json")


if __name__ == "__main__":
    main()
