"""Regenerate the CPython random.Random goldens for core/pyrand.

Not run by `make test`: the golden is committed. Run with CPython 3.11 (the
Python DSPy runs on here):

    python3 testdata/golden/pyrand/gen_pyrand_golden.py

For every seed in SEEDS it seeds a random.Random, runs a fixed script of calls
(random, getrandbits, randrange, randint, choice, shuffle, sample, uniform,
gauss, normalvariate, choices, randbytes, and calls that raise) followed by a
script of interleaved calls drawn by a separate driver generator, and records
every result or error in order. core/pyrand's golden test replays each script
on one pyrand.Rand and compares every value exactly (floats bit for bit), so the
generator state must advance exactly as CPython's does. The one allowance: a
gauss or normalvariate draw may differ in its last bit, as glibc's log, sin and
cos (which CPython calls) round incorrectly about once in a thousand calls and
pyrand's do not; the test counts these.

Output format (pyrand.json): seeds and big integers are decimal strings;
floats are JSON numbers (Python's repr, which round-trips); randbytes results
are hex strings; an op that raises records "error": "<Type>: <message>".
"""

from __future__ import annotations

import json
import math
import pathlib
import random
import sys
from typing import Any

HERE = pathlib.Path(__file__).parent

NAMED_SEEDS: list[int] = [
    0,
    1,
    2,
    7,
    42,
    2**32,
    2**64 + 5,
    -3,
    123456789012345678901234567890,
    -1,
    2**32 - 1,
    2**31,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    2**64,
    -(2**100) - 12345,
]

STRING_SEEDS: list[str] = ["", "hello", "DSPy", "ünïcødé ✓"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def random_seeds(drv: random.Random, n: int) -> list[int]:
    seeds: list[int] = []
    for i in range(n):
        bits = drv.choice([8, 16, 31, 32, 33, 48, 63, 64, 65, 96, 128, 200, 700])
        s = drv.getrandbits(bits)
        if i % 3 == 0:
            s = -s
        seeds.append(s)
    return seeds


def apply(rng: random.Random, op: str, args: list[Any]) -> object:
    """Run one op on rng and return its JSON-ready result."""
    if op == "random":
        return rng.random()
    if op == "getrandbits":
        return str(rng.getrandbits(args[0]))
    if op == "randrange":
        return rng.randrange(args[0], args[1], args[2])
    if op == "randrange1":
        return rng.randrange(args[0])
    if op == "randint":
        return rng.randint(args[0], args[1])
    if op == "choice":
        return rng.choice(range(args[0]))
    if op == "shuffle":
        x = list(range(args[0]))
        rng.shuffle(x)
        return x
    if op == "sample":
        return rng.sample(range(args[0]), args[1])
    if op == "sample_list":
        # A list population, not a range: the same picks.
        return rng.sample([f"x{i}" for i in range(args[0])], args[1])
    if op == "uniform":
        return rng.uniform(args[0], args[1])
    if op == "gauss":
        return rng.gauss(args[0], args[1])
    if op == "normalvariate":
        return rng.normalvariate(args[0], args[1])
    if op == "choices":
        n, k, weights = args
        return rng.choices(range(n), weights=weights, k=k)
    if op == "randbytes":
        return rng.randbytes(args[0]).hex()
    if op == "seed":
        rng.seed(int(args[0]))
        return None
    raise AssertionError(op)


def run(rng: random.Random, script: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for op, args in script:
        rec: dict[str, Any] = {"op": op, "args": args}
        try:
            rec["want"] = apply(rng, op, args)
        except (ValueError, IndexError, TypeError) as e:
            rec["error"] = f"{type(e).__name__}: {e}"
        out.append(rec)
    return out


FIXED: list[tuple[str, list[Any]]] = (
    [("random", [])] * 5
    + [("getrandbits", [k]) for k in (0, 1, 5, 31, 32, 33, 63, 64, 65, 100, 128) for _ in range(2)]
    + [("getrandbits", [-1])]
    + [("randint", [1, 6])] * 3
    + [
        ("randint", [-(10**12), 10**12]),
        ("randint", [INT64_MIN, INT64_MAX]),
        ("randint", [INT64_MAX, INT64_MAX]),
        ("randint", [5, 4]),
        ("randrange1", [10]),
        ("randrange1", [1]),
        ("randrange1", [0]),
        ("randrange1", [-4]),
        ("randrange", [0, 100, 7]),
        ("randrange", [100, 0, -3]),
        ("randrange", [-5, 5, 1]),
        ("randrange", [INT64_MIN, INT64_MAX, 1]),
        ("randrange", [INT64_MIN, INT64_MAX, 3]),
        ("randrange", [INT64_MAX, INT64_MIN, -5]),
        ("randrange", [0, 2**62, 2**61]),
        ("randrange", [INT64_MAX, INT64_MIN, INT64_MIN]),
        ("randrange", [5, 5, 1]),
        ("randrange", [10, 0, 1]),
        ("randrange", [0, 10, 0]),
        ("randrange", [0, 10, -1]),
        ("randrange", [10, 0, 2]),
        ("randrange", [3, 4, 100]),
    ]
    + [("choice", [n]) for n in (1, 2, 3, 10, 1000, 2**33 + 1)]
    + [("choice", [0])]
    + [("shuffle", [n]) for n in (0, 1, 2, 3, 10, 30)]
    + [
        ("sample", [n, k])
        for n, k in (
            (0, 0),
            (1, 1),
            (5, 0),
            (5, 5),
            (10, 3),
            (21, 5),
            (22, 5),
            (30, 5),
            (1000, 3),
            (10**9, 4),
            (50, 50),
            (100, 10),
            (60, 20),
            (200, 150),
            (1000, 100),
            (2**62, 6),
        )
    ]
    + [("sample_list", [12, 4]), ("sample_list", [40, 3])]
    + [("sample", [3, 4]), ("sample", [3, -1]), ("sample", [0, 1])]
    + [
        ("uniform", [0.0, 1.0]),
        ("uniform", [-3.5, 2.25]),
        ("uniform", [5.0, 1.0]),
        ("uniform", [1e300, -1e300]),
    ]
    + [
        ("choices", [10, 5, None]),
        ("choices", [3, 4, [1, 2, 3]]),
        ("choices", [4, 3, [0.1, 0.0, 2.5, 1e-3]]),
        ("choices", [5, 0, None]),
        ("choices", [5, -2, None]),
        ("choices", [0, 2, None]),
        ("choices", [3, 2, [1, 2]]),
        ("choices", [2, 2, [0, 0]]),
        ("choices", [2, 2, [1e308, 1e308]]),  # the running sum overflows to inf
    ]
    + [("randbytes", [0]), ("randbytes", [5]), ("randbytes", [9])]
    + [("gauss", [0.0, 1.0])] * 3
    + [("normalvariate", [0.0, 1.0])] * 2
    + [("gauss", [10.0, 2.5]), ("normalvariate", [-1.0, 0.5])]
    + [("random", [])] * 2
)


# The fixed script without its bulkiest results, for the many random seeds.
BULKY = {
    ("sample", ("200", "150")),
    ("sample", ("1000", "100")),
    ("sample", ("50", "50")),
    ("sample", ("60", "20")),
    ("shuffle", ("30",)),
}
FIXED_LIGHT = [(op, args) for op, args in FIXED if (op, tuple(map(str, args))) not in BULKY]


def driven(drv: random.Random, n_ops: int) -> list[tuple[str, list[Any]]]:
    """A script of interleaved calls with arguments drawn by drv."""
    kinds = [
        "random",
        "random",
        "getrandbits",
        "getrandbits",
        "randrange",
        "randrange1",
        "randint",
        "randint",
        "choice",
        "shuffle",
        "sample",
        "sample",
        "sample_list",
        "uniform",
        "gauss",
        "normalvariate",
        "choices",
        "randbytes",
    ]
    script: list[tuple[str, list[Any]]] = []
    for _ in range(n_ops):
        kind = drv.choice(kinds)
        if drv.random() < 0.01:
            script.append(("seed", [str(drv.getrandbits(drv.choice([8, 64, 130])))]))
        if kind == "random":
            script.append((kind, []))
        elif kind == "getrandbits":
            k = drv.choice(
                [0, 1, 2, 3, 5, 7, 8, 16, 31, 32, 33, 48, 63, 64, 65, 96, 100, 127, 128, 129, 200]
            )
            script.append((kind, [k]))
        elif kind == "randrange":
            mag = drv.choice([10, 1000, 2**31, 2**40, 2**62])
            start = drv.randint(-mag, mag)
            stop = drv.randint(-mag, mag)
            step = drv.choice([1, 1, 1, 2, 3, -1, -2, 7, -7, 1000, -(2**35)])
            script.append((kind, [start, stop, step]))
        elif kind == "randrange1":
            script.append((kind, [drv.choice([1, 2, 3, 10, 17, 2**20, 2**31 + 7, 2**62 + 1])]))
        elif kind == "randint":
            mag = drv.choice([1, 10, 1000, 2**31, 2**32, 2**53, 2**62])
            a = drv.randint(-mag, mag)
            b = a + drv.randint(0, mag)
            script.append((kind, [a, b]))
        elif kind == "choice":
            script.append((kind, [drv.choice([1, 2, 3, 4, 5, 7, 8, 9, 100, 2**20, 2**40, 10**15])]))
        elif kind == "shuffle":
            script.append((kind, [drv.randint(0, 40)]))
        elif kind in ("sample", "sample_list"):
            if kind == "sample" and drv.random() < 0.4:
                n = drv.choice([10**3, 10**6, 2**40, 10**12])
                k = drv.randint(0, 40)
            else:
                n = drv.randint(0, 120)
                k = drv.randint(0, min(n, 60))
            script.append((kind, [n, k]))
        elif kind == "uniform":
            script.append((kind, [drv.uniform(-100, 100), drv.uniform(-100, 100)]))
        elif kind in ("gauss", "normalvariate"):
            script.append((kind, [drv.uniform(-5, 5), drv.uniform(0, 3)]))
        elif kind == "choices":
            n = drv.randint(1, 12)
            k = drv.randint(0, 8)
            weights: list[Any] | None = None
            if drv.random() < 0.6:
                if drv.random() < 0.5:
                    weights = [drv.randint(0, 5) for _ in range(n)]
                    if sum(weights) == 0:
                        weights[0] = 1
                else:
                    weights = [drv.random() * 10 for _ in range(n)]
            script.append((kind, [n, k, weights]))
        elif kind == "randbytes":
            script.append((kind, [drv.randint(0, 20)]))
    return script


def setsize_table() -> list[list[int]]:
    """random.sample's set-size threshold for k around every power of 4."""
    ks: set[int] = set(range(0, 200)) | {63, 64, 100, 150}
    for m in range(1, 32):
        base = 4**m // 3
        ks.update(k for k in range(base - 2, base + 3) if k >= 0)
    out: list[list[int]] = []
    for k in sorted(ks):
        setsize = 21
        if k > 5:
            setsize += 4 ** math.ceil(math.log(k * 3, 4))
        out.append([k, setsize])
    return out


def strategy_script() -> list[tuple[str, list[Any]]]:
    """sample() right at and across the pool/set threshold."""
    script: list[tuple[str, list[Any]]] = []
    for k, setsize in setsize_table():
        if k > 40 and k not in (63, 64, 100, 150):
            continue
        for n in (k, setsize - 1, setsize, setsize + 1, 3 * setsize):
            if n >= k:
                script.append(("sample", [n, k]))
    return script


Script = list[tuple[str, list[Any]]]


def record(seed: int | str, script: Script, full_state: bool) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - the generator under test
    case: dict[str, Any] = {}
    if isinstance(seed, str):
        case["seed_str"] = seed
    else:
        case["seed"] = str(seed)
    if full_state:
        case["state"] = list(rng.getstate()[1])
    case["ops"] = run(rng, script)
    if full_state:
        _, words, gauss_next = rng.getstate()
        case["final_state"] = list(words)
        case["final_gauss_next"] = gauss_next
        case["after_final"] = [rng.random() for _ in range(3)] + [rng.gauss(0.0, 1.0)]
    return case


def main() -> None:
    if sys.version_info[:2] != (3, 11) or sys.implementation.name != "cpython":
        sys.exit(f"need CPython 3.11, have {sys.implementation.name} {sys.version}")
    drv = random.Random(20261206)  # noqa: S311 - draws the scripts, not secrets
    cases: list[dict[str, Any]] = []
    for seed in NAMED_SEEDS:
        cases.append(record(seed, FIXED + driven(drv, 120), full_state=True))
    for seed in random_seeds(drv, 50):
        cases.append(record(seed, FIXED_LIGHT + driven(drv, 60), full_state=False))
    for s in STRING_SEEDS:
        cases.append(record(s, FIXED[:40], full_state=True))
    cases.append(record(12345, strategy_script(), full_state=False))
    # Enough Gaussian draws to catch a libm log/sin/cos difference.
    gaussian = [("gauss", [0.0, 1.0])] * 2000 + [("normalvariate", [0.0, 1.0])] * 2000
    cases.append(record(271828, gaussian, full_state=False))

    doc = {
        "python": sys.version.split()[0],
        "setsize": setsize_table(),
        "cases": cases,
    }
    out = HERE / "pyrand.json"
    with out.open("w") as f:
        # One case per line keeps diffs readable without blowing up the size.
        f.write(f'{{"python": {json.dumps(doc["python"])},\n')
        f.write(f'"setsize": {json.dumps(doc["setsize"])},\n"cases": [\n')
        f.write(",\n".join(json.dumps(c, separators=(",", ":"), allow_nan=False) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {out} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
