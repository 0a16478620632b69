"""Write a DSPy state file and the prompts DSPy builds from it.

Run by hand (not by `make test`), in a virtualenv with `pip install dspy==3.4.1`:

    python testdata/golden/state/gen_dspy_state.py

It builds a two-step program in DSPy — `generate` (ChainOfThought) and
`summarize` (Predict) — changes its instructions, field descriptions and
demos as an optimizer would, saves it with DSPy's `save`, and records the
ChatAdapter messages DSPy then sends for one input. The Go test loads the
state file into the matching DSPEx program and checks that its prompts are
the same bytes.
"""

from __future__ import annotations

import json
import pathlib

import dspy

HERE = pathlib.Path(__file__).parent


class QA(dspy.Module):
    def __init__(self):
        super().__init__()
        self.generate = dspy.ChainOfThought("question, context: list[str] -> answer")
        self.summarize = dspy.Predict("answer -> summary, confidence: float")

    def forward(self, question, context):
        answer = self.generate(question=question, context=context).answer
        return self.summarize(answer=answer)


def main() -> None:
    program = QA()
    gen = program.generate.predict
    gen.signature = gen.signature.with_instructions(
        "Answer the question using the context.\nCite nothing; be brief."
    ).with_updated_fields("answer", desc="a short factual answer")
    gen.demos = [
        dspy.Example(
            question="Capital of Italy?",
            context=["Rome is Italy's capital."],
            reasoning="The context says Rome.",
            answer="Rome",
            augmented=True,
        ),
        dspy.Example(question="Largest planet?", answer="Jupiter"),
    ]
    summ = program.summarize
    summ.signature = summ.signature.with_instructions("Summarize the answer in three words.")
    summ.demos = [dspy.Example(answer="Rome", summary="Capital is Rome", confidence=0.9)]
    program.save(str(HERE / "dspy_saved.json"))

    loaded = QA()
    loaded.load(str(HERE / "dspy_saved.json"))
    adapter = dspy.ChatAdapter()
    inputs = {
        "question": "What is the capital of France?",
        "context": ["Paris is the capital of France.", "France is in Europe."],
    }
    prompts = {
        "generate.predict": adapter.format(
            loaded.generate.predict.signature, loaded.generate.predict.demos, inputs
        ),
        "summarize": adapter.format(
            loaded.summarize.signature, loaded.summarize.demos, {"answer": "Paris"}
        ),
    }
    (HERE / "dspy_prompts.json").write_text(
        json.dumps(prompts, indent=2, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    main()
