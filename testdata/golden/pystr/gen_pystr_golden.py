"""Regenerate the Python string goldens for core/internal/pystr.

Not run by `make test`: the goldens are committed. Run with the Python DSPy
3.4.1 runs on (3.11 here):

    python testdata/golden/pystr/gen_pystr_golden.py

For every input in INPUTS it records what inspect.cleandoc, textwrap.dedent,
str.splitlines, str.strip and str.expandtabs return, and what DSPy's
ChatAdapter does to instructions (textwrap.dedent(inspect.cleandoc(s))
split into lines); and it lists every code point for which str.isspace is
true. pystr_test.go compares core/internal/pystr with them.
"""

from __future__ import annotations

import inspect
import json
import pathlib
import sys
import textwrap

HERE = pathlib.Path(__file__).parent

INPUTS = [
    "",
    " ",
    "   \n\t \n",
    "plain",
    "First line.\n    \n\tSecond line, after a whitespace-only line.\n  \t \nThird.",
    "Do this.\n\u3000\u3000Indented with U+3000.\n\u3000\u3000Again.",
    "\u3000",
    "\u3000\u3000Leading ideographic spaces.",
    "A\u001cB\u001dC\u001eD\u001fE\u0085F\u2028G\u2029H\u000bI\u000cJ",
    "\u001f  Starts with a unit separator.\n\u001f  Second.",
    "\u200b  Starts with a zero-width space.\n  \u200bSecond.",
    "Line one.\r\n    Line two.\r\n    Line three.",
    "Old Mac line.\rNext.\r",
    "\n    Summarize the text.\n\n      Keep it short.\n    ",
    "\u00a0\u00a0Leading no-break spaces.\n\u00a0\u00a0Second.",
    "\n  \u3000\n  \u3000",
    "x\n    y\n      \n    z",
    "Title\n\tOne\n    \tTwo\n\t\tThree",
    "ab\tc\u00e9\td\n\u00e9\te",
    "\n\n  \n",
    "Trailing spaces   \n  \n",
    "  \u2003em space indent\n  \u2003second",
    "\u0085Next-line first.\n\u0085\u0085two",
    "tab\tthen\u3000wide",
]


def main() -> None:
    cases = []
    for s in INPUTS:
        cases.append(
            {
                "input": s,
                "cleandoc": inspect.cleandoc(s),
                "dedent": textwrap.dedent(s),
                "splitlines": s.splitlines(),
                "strip": s.strip(),
                "expandtabs": s.expandtabs(),
                "instruction_lines": textwrap.dedent(inspect.cleandoc(s)).splitlines(),
            }
        )
    out = {
        "python": sys.version.split()[0],
        "isspace": [c for c in range(sys.maxunicode + 1) if chr(c).isspace()],
        "cases": cases,
    }
    (HERE / "pystr.json").write_text(json.dumps(out, indent=1, ensure_ascii=True) + "\n")
    print("wrote pystr.json")


if __name__ == "__main__":
    main()
