"""Record DSPy 3.4.1's MIPROv2 run on a fixed task against the DSPEx simulator.

Not run by `make test`: the golden (mipro.json) is committed. To refresh it, with DSPy
(and Optuna 5.1.0) installed in their own virtualenv, from the repository root:

    make golden-dspy                     # or, by hand:
    go build -o bin/dspex ./cmd/dspex
    /opt/dspy-venv/bin/python testdata/golden/mipro/gen_dspy_mipro.py

(DSPY_PYTHON=... make golden-dspy names another interpreter; DSPEX=... another dspex
binary.) The script starts `dspex mock-lm` on 127.0.0.1 with examples/capitals as its
dataset (the skill model of docs/simulated-lm.md, seed 0), points DSPy's LM at it (one
model for the task and the prompts, named as the simulator's default model, with
DSPy's cache off) and runs

    MIPROv2(metric=answer_exact_match, auto=None, num_candidates=NUM_CANDIDATES,
            max_bootstrapped_demos=MAX_DEMOS, max_labeled_demos=MAX_DEMOS, seed=SEED)
    .compile(dspy.Predict("question -> answer"), trainset=train[:NTRAIN],
             valset=dev[:NVAL], num_trials=NUM_TRIALS, minibatch=True,
             minibatch_size=MINIBATCH_SIZE)

It refuses every network connection that is not to a loopback address, so DSPy can
reach nothing but the simulator. It hooks DSPy's internals only here, read-only, to
record in mipro.json:

- the dataset summary, the demo sets (per predictor, per set, each demo's fields) and
  the instruction candidates (per predictor; 0 is the original);
- every trial of the Optuna study, in number order: its kind (baseline, sampled,
  full_eval), its parameters (instruction and demo-set index per predictor), its score,
  and the valset indices it was scored on (in rng.sample's order; null means the whole
  valset);
- the program returned: its score and the candidate indices it holds.

The Go test plugins/mipro TestDSPyMIPROParity runs plugins/mipro with the same data,
settings and simulator, and the sampler plugin in rng=continuous mode, and compares.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
# The generators' shared helper (DSPy offline against the simulator).
sys.path.insert(0, str(ROOT / "testdata" / "golden"))
from dspysim import MODEL, load, run_offline  # noqa: E402

SEED = 7
NTRAIN, NVAL = 16, 20
NUM_CANDIDATES = 4
NUM_TRIALS = 15
MINIBATCH_SIZE = 10
MAX_DEMOS = 3


def main() -> None:
    run_offline(run, "gen_dspy_mipro")


def run(url: str) -> None:
    import dspy
    import optuna
    from dspy.evaluate import answer_exact_match
    from dspy.propose import grounded_proposer
    from dspy.teleprompt import mipro_optimizer_v2, utils
    from dspy.teleprompt.mipro_optimizer_v2 import MIPROv2

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = dspy.LM(f"openai/{MODEL}", api_base=url, api_key="unused", cache=False, num_retries=0)
    dspy.configure(lm=lm, adapter=dspy.ChatAdapter())

    train, dev = load("train.jsonl"), load("dev.jsonl")
    trainset = [dspy.Example(**ex).with_inputs("question") for ex in train[:NTRAIN]]
    valset = [dspy.Example(**ex).with_inputs("question") for ex in dev[:NVAL]]
    val_index = {id(ex): i for i, ex in enumerate(valset)}

    rec: dict[str, Any] = {"evals": []}

    # The study: the one MIPROv2 creates.
    create_study = optuna.create_study

    def capture_study(*args: Any, **kwargs: Any) -> optuna.Study:
        rec["study"] = create_study(*args, **kwargs)
        return rec["study"]

    optuna.create_study = capture_study

    # Each evaluation, in order: the baseline, each trial, each full evaluation.
    create_minibatch = utils.create_minibatch

    def capture_minibatch(trainset: list, batch_size: int = 50, rng: Any = None) -> list:
        batch = create_minibatch(trainset, batch_size, rng)
        rec["minibatch"] = [val_index[id(ex)] for ex in batch]
        return batch

    utils.create_minibatch = capture_minibatch
    eval_candidate = mipro_optimizer_v2.eval_candidate_program

    def capture_eval(batch_size: int, trainset: list, *args: Any, **kwargs: Any) -> Any:
        rec.pop("minibatch", None)
        out = eval_candidate(batch_size, trainset, *args, **kwargs)
        rec["evals"].append({"indices": rec.pop("minibatch", None), "score": out.score})
        return out

    mipro_optimizer_v2.eval_candidate_program = capture_eval

    summary = grounded_proposer.create_dataset_summary

    def capture_summary(*args: Any, **kwargs: Any) -> str:
        rec["summary"] = summary(*args, **kwargs)
        return rec["summary"]

    grounded_proposer.create_dataset_summary = capture_summary

    bootstrap = MIPROv2._bootstrap_fewshot_examples
    propose = MIPROv2._propose_instructions

    def capture_demos(self: MIPROv2, *args: Any, **kwargs: Any) -> Any:
        rec["demo_sets"] = bootstrap(self, *args, **kwargs)
        return rec["demo_sets"]

    def capture_instructions(self: MIPROv2, *args: Any, **kwargs: Any) -> Any:
        rec["instructions"] = propose(self, *args, **kwargs)
        return rec["instructions"]

    MIPROv2._bootstrap_fewshot_examples = capture_demos  # type: ignore[method-assign]
    MIPROv2._propose_instructions = capture_instructions  # type: ignore[method-assign]

    optimizer = MIPROv2(
        metric=answer_exact_match,
        auto=None,
        num_candidates=NUM_CANDIDATES,
        max_bootstrapped_demos=MAX_DEMOS,
        max_labeled_demos=MAX_DEMOS,
        seed=SEED,
    )
    best = optimizer.compile(
        dspy.Predict("question -> answer"),
        trainset=trainset,
        valset=valset,
        num_trials=NUM_TRIALS,
        minibatch=True,
        minibatch_size=MINIBATCH_SIZE,
    )

    study: optuna.Study = rec["study"]
    trials = study.get_trials(deepcopy=False)
    if len(trials) != len(rec["evals"]):
        raise SystemExit(f"{len(trials)} trials, {len(rec['evals'])} evaluations")
    instructions = [list(rec["instructions"][i]) for i in sorted(rec["instructions"])]
    demo_sets = [
        [[dict(d.toDict()) for d in s] for s in rec["demo_sets"][i]]
        for i in sorted(rec["demo_sets"])
    ]

    out_trials = []
    for t, ev in zip(trials, rec["evals"], strict=True):
        if t.number == 0:
            kind = "baseline"
        elif ev["indices"] is None:
            kind = "full_eval"
        else:
            kind = "sampled"
        if t.value != ev["score"]:
            raise SystemExit(f"trial {t.number}: value {t.value}, evaluation {ev['score']}")
        out_trials.append(
            {
                "number": t.number,
                "kind": kind,
                "params": {k: int(v) for k, v in t.params.items()},
                "score": t.value,
                "minibatch": ev["indices"],
            }
        )

    # The program returned, as candidate indices.
    chosen: dict[str, int] = {}
    for i, pred in enumerate(best.predictors()):
        chosen[f"{i}_predictor_instruction"] = instructions[i].index(pred.signature.instructions)
        demos = [dict(d.toDict()) for d in pred.demos]
        chosen[f"{i}_predictor_demos"] = demo_sets[i].index(demos)

    out = {
        "dspy_version": dspy.__version__,
        "optuna_version": optuna.__version__,
        "model": MODEL,
        "train": f"examples/capitals/train.jsonl[:{NTRAIN}]",
        "valset": f"examples/capitals/dev.jsonl[:{NVAL}]",
        "config": {
            "seed": SEED,
            "num_candidates": NUM_CANDIDATES,
            "num_trials": NUM_TRIALS,
            "minibatch_size": MINIBATCH_SIZE,
            "max_bootstrapped_demos": MAX_DEMOS,
            "max_labeled_demos": MAX_DEMOS,
            "metric": "answer_exact_match",
        },
        "dataset_summary": rec.get("summary"),
        "demo_sets": demo_sets,
        "instructions": instructions,
        "trials": out_trials,
        "best": {"score": best.score, "params": chosen},
    }
    with open(HERE / "mipro.json", "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(out_trials)} trials, best score {best.score}", file=sys.stderr)


if __name__ == "__main__":
    main()
