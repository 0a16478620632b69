"""Writes prompts.json: DSPy 3.4.1's ChatAdapter messages for MIPROv2's
proposer signatures, which TestPromptsMatchDSPy compares with DSPEx's.

    /opt/dspy-venv/bin/python plugins/mipro/testdata/gen_prompts.py
"""

from __future__ import annotations

import json
import pathlib

import dspy
from dspy.propose.dataset_summary_generator import (
    DatasetDescriptor,
    DatasetDescriptorWithPriorObservations,
    ObservationSummarizer,
)
from dspy.propose.grounded_proposer import (
    DescribeModule,
    DescribeProgram,
    generate_instruction_class,
)


def gen(summary: bool, tip: bool) -> type[dspy.Signature]:
    return generate_instruction_class(
        use_dataset_summary=summary,
        program_aware=True,
        use_task_demos=True,
        use_instruct_history=False,
        use_tip=tip,
    ).signature


cases = {
    "DatasetDescriptor": (
        DatasetDescriptor,
        {"examples": "[Example({'q': 'a'}) (input_keys={'q'})]"},
    ),
    "DatasetDescriptorWithPriorObservations": (
        DatasetDescriptorWithPriorObservations,
        {"examples": "[ex]", "prior_observations": "obs"},
    ),
    "ObservationSummarizer": (ObservationSummarizer, {"observations": "obs"}),
    "DescribeProgram": (DescribeProgram, {"program_code": "code", "program_example": "demo"}),
    "DescribeModule": (
        DescribeModule,
        {
            "program_code": "code",
            "program_example": "demo",
            "program_description": "desc",
            "module": "Predict(q) -> a",
        },
    ),
}
full = {
    "dataset_description": "summary",
    "program_code": "code",
    "program_description": "desc",
    "module": "Predict(q) -> a",
    "module_description": "mdesc",
    "task_demos": "No task demos provided.",
    "basic_instruction": "Answer.",
    "tip": "Keep the instruction clear and concise.",
}
for summary in (True, False):
    for tip in (True, False):
        inputs = dict(full)
        if not summary:
            del inputs["dataset_description"]
        if not tip:
            del inputs["tip"]
        cases[f"GenerateSingleModuleInstruction/summary={summary}/tip={tip}"] = (
            gen(summary, tip),
            inputs,
        )

out = {}
for name, (sig, inputs) in cases.items():
    out[name] = {
        "inputs": inputs,
        "messages": dspy.ChatAdapter().format(sig, demos=[], inputs=inputs),
    }
path = pathlib.Path(__file__).with_name("prompts.json")
path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
