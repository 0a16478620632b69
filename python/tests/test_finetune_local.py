"""The fine-tuning plugin's local backend: supervised fine-tuning with transformers and
torch of a tiny model built here, randomly initialised, with a tokenizer trained here
(nothing is downloaded). Needs the ``finetune-local`` extra: ``make test-finetune-local``
makes a virtualenv with it and runs this file (``make test-python`` skips it)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from conftest import Launch
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc

if os.environ.get("DSPEX_FINETUNE_LOCAL_REQUIRED") == "1":
    # make test-finetune-local: a missing package is a failure, never a skip.
    import tokenizers
    import torch
    import transformers
else:
    tokenizers = pytest.importorskip("tokenizers")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

FINETUNE = ("-m", "dspex_plugins.finetune")
# The tiny tokenizer's special tokens.
SPECIAL = {"unk_token": "[UNK]", "pad_token": "[PAD]", "eos_token": "<eos>"}

EXAMPLES = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the currency of India?", "Rupee"),
]


def chat(question: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Answer the question."},
        {"role": "user", "content": f"[[ ## question ## ]]\n{question}"},
        {"role": "assistant", "content": f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"},
    ]


def training_jsonl() -> bytes:
    return "".join(json.dumps({"messages": chat(q, a)}) + "\n" for q, a in EXAMPLES).encode()


def tiny_model(path: Path) -> None:
    """A 2-layer GPT-2 with random weights and a byte-level BPE tokenizer trained on the
    examples' text, saved as a model directory."""
    texts = ["".join(f"<|{m['role']}|>\n{m['content']}\n" for m in chat(q, a)) for q, a in EXAMPLES]
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=SPECIAL["unk_token"]))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL)
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))


def wait_done(client: Any, job_id: str, opts: dict[str, str]) -> Any:
    deadline = time.monotonic() + 300
    while True:
        got = client.GetJob(
            plugin_pb2.GetJobRequest(job_id=job_id, backend="local", backend_options=opts),
            timeout=30,
        )
        if got.state in ("succeeded", "failed", "cancelled"):
            return got
        assert time.monotonic() < deadline, f"job {job_id} still {got.state}"
        time.sleep(0.1)


def test_local_training_lowers_loss_and_saves_a_loadable_model(
    launch: Launch, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    tiny_model(base)
    opts = {
        "output_dir": str(tmp_path / "out"),
        "epochs": "10",
        "learning_rate": "0.01",
        "poll_interval": "0.05",
    }
    plugin = launch(FINETUNE)
    client = plugin_pb2_grpc.FineTunerStub(plugin.channel())
    request = plugin_pb2.StartJobRequest(
        base_model=str(base),
        training_jsonl=training_jsonl(),
        backend="local",
        backend_options=opts,
        idempotency_key="run-1/p0",
    )
    status = client.StartJob(request, timeout=60)
    assert status.job_id.startswith("local-")
    events = list(
        client.WatchJob(
            plugin_pb2.WatchJobRequest(job_id=status.job_id, backend="local", backend_options=opts),
            timeout=300,
        )
    )
    last = events[-1]
    assert last.state == "succeeded", last.error
    by_step = {e.step: e.metrics["loss"] for e in events if e.step and "loss" in e.metrics}
    assert sorted(by_step) == list(range(1, 31))
    losses = [by_step[step] for step in range(1, 31)]
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses
    model_dir = Path(last.fine_tuned_model)
    assert model_dir == tmp_path / "out" / status.job_id / "model"

    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    ids = tokenizer("<|user|>\n[[ ## question ## ]]", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape[-1] == len(tokenizer)
    base_model = transformers.AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
    trained = dict(model.named_parameters())
    assert any(not torch.equal(p, trained[name]) for name, p in base_model.named_parameters()), (
        "training changed no weight"
    )

    # The same key again, from a new plugin process: the same job, not trained again.
    plugin.proc.kill()
    plugin.wait()
    again = plugin_pb2_grpc.FineTunerStub(launch(FINETUNE).channel())
    same = again.StartJob(request, timeout=60)
    assert same.job_id == status.job_id
    assert same.state == "succeeded"
    assert wait_done(again, status.job_id, opts).fine_tuned_model == str(model_dir)


def test_local_cancel_and_bad_base_model(launch: Launch, tmp_path: Path) -> None:
    base = tmp_path / "base"
    tiny_model(base)
    opts = {"output_dir": str(tmp_path / "out"), "epochs": "1000", "learning_rate": "0.001"}
    client = plugin_pb2_grpc.FineTunerStub(launch(FINETUNE).channel())
    status = client.StartJob(
        plugin_pb2.StartJobRequest(
            base_model=str(base),
            training_jsonl=training_jsonl(),
            backend="local",
            backend_options=opts,
        ),
        timeout=60,
    )
    cancelled = client.CancelJob(
        plugin_pb2.CancelJobRequest(job_id=status.job_id, backend="local", backend_options=opts),
        timeout=60,
    )
    assert cancelled.state == "cancelled"
    assert cancelled.fine_tuned_model == ""

    with pytest.raises(grpc.RpcError) as err:
        client.StartJob(
            plugin_pb2.StartJobRequest(
                base_model=str(tmp_path / "nowhere"),
                training_jsonl=training_jsonl(),
                backend="local",
                backend_options=opts,
            ),
            timeout=60,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "downloads nothing" in str(err.value.details())


def test_local_job_interrupted_by_a_restart_is_failed(launch: Launch, tmp_path: Path) -> None:
    """A local job another plugin process was training when it died is reported failed,
    never silently started again; an unknown one is NOT_FOUND."""
    job_dir = tmp_path / "out" / "local-0123456789abcdef"
    job_dir.mkdir(parents=True)
    record = {
        "job_id": "local-0123456789abcdef",
        "state": "running",
        "error": "",
        "fine_tuned_model": "",
        "progress": 0.25,
        "metrics": {"loss": 1.5},
        "step": 2,
        "total_steps": 8,
        "events": [],
        "pid": 999999,
    }
    (job_dir / "status.json").write_text(json.dumps(record))
    opts = {"output_dir": str(tmp_path / "out")}
    client = plugin_pb2_grpc.FineTunerStub(launch(FINETUNE).channel())
    got = client.GetJob(
        plugin_pb2.GetJobRequest(
            job_id="local-0123456789abcdef", backend="local", backend_options=opts
        ),
        timeout=30,
    )
    assert got.state == "failed"
    assert "training was interrupted" in got.error
    assert "pid 999999" in got.error
    events = list(
        client.WatchJob(
            plugin_pb2.WatchJobRequest(
                job_id="local-0123456789abcdef", backend="local", backend_options=opts
            ),
            timeout=30,
        )
    )
    assert [(e.state, e.error) for e in events] == [("failed", got.error)]
    with pytest.raises(grpc.RpcError) as excinfo:
        client.GetJob(
            plugin_pb2.GetJobRequest(job_id="local-nope", backend="local", backend_options=opts),
            timeout=30,
        )
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND


def test_local_examples_longer_than_the_model_are_truncated(launch: Launch, tmp_path: Path) -> None:
    """A conversation longer than the model's positions (256 here) trains on its end,
    the answer, and the job says how many were cut; it does not crash the job."""
    base = tmp_path / "base"
    tiny_model(base)
    opts = {"output_dir": str(tmp_path / "out"), "epochs": "1", "poll_interval": "0.05"}
    long_question = "What is the capital of France? " * 200
    data = (
        json.dumps({"messages": chat(long_question, "Paris")})
        + "\n"
        + json.dumps({"messages": chat(*EXAMPLES[1])})
        + "\n"
    ).encode()
    client = plugin_pb2_grpc.FineTunerStub(launch(FINETUNE).channel())
    status = client.StartJob(
        plugin_pb2.StartJobRequest(
            base_model=str(base),
            training_jsonl=data,
            backend="local",
            backend_options=opts,
            idempotency_key="run-long/p0",
        ),
        timeout=60,
    )
    events = list(
        client.WatchJob(
            plugin_pb2.WatchJobRequest(job_id=status.job_id, backend="local", backend_options=opts),
            timeout=300,
        )
    )
    assert events[-1].state == "succeeded", events[-1].error
    assert any(
        "truncated 1 of 2 examples to the model's 256 positions" in e.message for e in events
    ), [e.message for e in events]
