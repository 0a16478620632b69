"""The fine-tuning plugin against the real simulated fine-tuning API (``dspex mock-lm``),
as a plugin process: start, watch, idempotency, failure, cancel, a refused file, an
unreachable provider, missing packages, and following a job after a restart."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from typing import Any

import grpc
import pytest

from conftest import Launch, PluginProcess, StartMockLM
from dspex_plugins import finetune
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc

openai = pytest.importorskip("openai")

FINETUNE = ("-m", "dspex_plugins.finetune")
STEP = "100ms"
WATCH_TIMEOUT = 30.0


def example(question: str, answer: str) -> dict[str, Any]:
    """One chat example as DSPy's ChatAdapter writes its training data."""
    return {
        "messages": [
            {"role": "system", "content": "Your input fields are:\n1. `question` (str)"},
            {"role": "user", "content": f"[[ ## question ## ]]\n{question}"},
            {
                "role": "assistant",
                "content": f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]",
            },
        ]
    }


TRAINING = (
    "\n".join(
        json.dumps(example(q, a))
        for q, a in [("What is the capital of France?", "Paris"), ("2 + 2?", "4")]
    )
    + "\n"
).encode()


def stub(plugin: PluginProcess) -> plugin_pb2_grpc.FineTunerStub:
    return plugin_pb2_grpc.FineTunerStub(plugin.channel())


def options(url: str, **more: str) -> dict[str, str]:
    return {"base_url": url, "poll_interval": "50ms", **more}


def start(
    client: plugin_pb2_grpc.FineTunerStub,
    url: str,
    key: str = "",
    data: bytes = TRAINING,
    **more: str,
) -> plugin_pb2.JobStatus:
    status: plugin_pb2.JobStatus = client.StartJob(
        plugin_pb2.StartJobRequest(
            base_model="dspex-sim",
            training_jsonl=data,
            backend="openai",
            backend_options=options(url, **more),
            idempotency_key=key,
        ),
        timeout=30,
    )
    return status


def watch(
    client: plugin_pb2_grpc.FineTunerStub, url: str, job_id: str, **more: str
) -> list[plugin_pb2.JobEvent]:
    stream = client.WatchJob(
        plugin_pb2.WatchJobRequest(
            job_id=job_id, backend="openai", backend_options=options(url, **more)
        ),
        timeout=WATCH_TIMEOUT,
    )
    return list(stream)


def sim_jobs(url: str) -> list[dict[str, Any]]:
    """The simulator's job list, read over its own API."""
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=10)
    return [job.model_dump() for job in client.fine_tuning.jobs.list(limit=100).data]


def rpc_error(excinfo: pytest.ExceptionInfo[grpc.RpcError]) -> tuple[grpc.StatusCode, str]:
    return excinfo.value.code(), str(excinfo.value.details())


@pytest.fixture
def plugin(launch: Launch) -> PluginProcess:
    return launch(FINETUNE)


def test_start_watch_succeeds(plugin: PluginProcess, mock_lm: StartMockLM) -> None:
    sim = mock_lm("--finetune-step", STEP)
    client = stub(plugin)
    status = start(client, sim.url, key="run-1/predictor-0")
    assert status.job_id == "ftjob-sim-000001"
    assert status.state == "queued"
    assert status.provider_state == "validating_files"

    events = watch(client, sim.url, status.job_id)
    last = events[-1]
    assert last.state == "succeeded"
    assert last.fine_tuned_model == "ft:dspex-sim:dspex:ftjob-sim-000001"
    assert last.progress == 1.0
    assert last.error == ""
    assert all(e.job_id == status.job_id for e in events)
    assert all(e.state not in finetune.TERMINAL for e in events[:-1])
    messages = [e.message for e in events]
    assert messages[0] == "Validating training file: file-sim-000001"
    assert "The job has successfully completed" in messages
    steps = [e for e in events if e.step and "train_loss" in e.metrics]
    assert [e.step for e in steps] == [1, 2, 3]
    losses = [e.metrics["train_loss"] for e in steps]
    assert losses == sorted(losses, reverse=True)
    assert [e.progress for e in steps] == pytest.approx([1 / 3, 2 / 3, 1.0])

    got = client.GetJob(
        plugin_pb2.GetJobRequest(
            job_id=status.job_id, backend="openai", backend_options=options(sim.url)
        ),
        timeout=30,
    )
    assert got.state == "succeeded"
    assert got.fine_tuned_model == last.fine_tuned_model
    assert got.metrics["trained_tokens"] > 0
    (job,) = sim_jobs(sim.url)
    assert job["metadata"] == {finetune.IDEMPOTENCY_METADATA_KEY: "run-1/predictor-0"}
    assert job["suffix"] == "dspex"


def test_idempotency_key_starts_one_job(plugin: PluginProcess, mock_lm: StartMockLM) -> None:
    sim = mock_lm("--finetune-step", STEP)
    client = stub(plugin)
    first = start(client, sim.url, key="k1")
    again = start(client, sim.url, key="k1")
    assert again.job_id == first.job_id
    # Concurrent starts with one new key: still one job.
    results: list[str] = []
    lock = threading.Lock()

    def go() -> None:
        got = start(client, sim.url, key="k2")
        with lock:
            results.append(got.job_id)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4
    assert len(set(results)) == 1
    assert results[0] != first.job_id
    jobs = sim_jobs(sim.url)
    assert len(jobs) == 2
    assert sorted(j["metadata"][finetune.IDEMPOTENCY_METADATA_KEY] for j in jobs) == ["k1", "k2"]
    # No key: a new job each time.
    start(client, sim.url)
    assert len(sim_jobs(sim.url)) == 3


def test_job_failure_reports_the_provider_error(
    plugin: PluginProcess, mock_lm: StartMockLM
) -> None:
    sim = mock_lm("--finetune-step", STEP)
    client = stub(plugin)
    status = start(client, sim.url, suffix="fail")
    last = watch(client, sim.url, status.job_id)[-1]
    assert last.state == "failed"
    assert last.fine_tuned_model == ""
    assert last.error.startswith("simulated_failure: ")
    assert 'suffix is "fail"' in last.error
    got = client.GetJob(
        plugin_pb2.GetJobRequest(
            job_id=status.job_id, backend="openai", backend_options=options(sim.url)
        ),
        timeout=30,
    )
    assert (got.state, got.error) == ("failed", last.error)


def test_cancel(plugin: PluginProcess, mock_lm: StartMockLM) -> None:
    sim = mock_lm("--finetune-step", "2s")
    client = stub(plugin)
    status = start(client, sim.url)
    request = plugin_pb2.CancelJobRequest(
        job_id=status.job_id, backend="openai", backend_options=options(sim.url)
    )
    cancelled = client.CancelJob(request, timeout=30)
    assert cancelled.state == "cancelled"
    assert cancelled.job_id == status.job_id
    last = watch(client, sim.url, status.job_id)[-1]
    assert last.state == "cancelled"
    # Cancelling an ended job is a no-op that reports how it ended.
    assert client.CancelJob(request, timeout=30).state == "cancelled"


def test_provider_rejects_the_file(plugin: PluginProcess, mock_lm: StartMockLM) -> None:
    sim = mock_lm("--finetune-step", STEP)
    bad = TRAINING + b'{"messages": [{"role": "user", "content": "no answer"}]}\n'
    with pytest.raises(grpc.RpcError) as excinfo:
        start(stub(plugin), sim.url, data=bad)
    code, details = rpc_error(excinfo)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "upload the training file" in details
    assert "line 3" in details
    assert "must be the assistant's" in details
    assert sim_jobs(sim.url) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_provider_retries_then_unavailable(plugin: PluginProcess) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(grpc.RpcError) as excinfo:
        start(stub(plugin), url, key="k", max_retries="2")
    code, details = rpc_error(excinfo)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert url in details
    assert "after 3 tries" in details
    retries = [line for line in plugin.stderr_lines() if "retrying" in line]
    assert len(retries) == 2, plugin.stderr()


def test_provider_5xx_is_retried(plugin: PluginProcess, mock_lm: StartMockLM) -> None:
    sim = mock_lm("--finetune-step", STEP, "--finetune-fault", "500:first=2")
    status = start(stub(plugin), sim.url, key="flaky")
    assert status.state == "queued"
    retries = [line for line in plugin.stderr_lines() if "retrying" in line]
    assert len(retries) == 2, plugin.stderr()
    assert len(sim_jobs(sim.url)) == 1


def test_provider_always_503_is_unavailable(plugin: PluginProcess, mock_lm: StartMockLM) -> None:
    sim = mock_lm("--finetune-fault", "503")
    with pytest.raises(grpc.RpcError) as excinfo:
        start(stub(plugin), sim.url, max_retries="1")
    code, details = rpc_error(excinfo)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert sim.url in details
    assert "after 2 tries" in details
    assert "503" in details or "overload" in details


BLOCK_OPENAI = (
    "import runpy, sys; sys.modules['openai'] = None; sys.modules['torch'] = None; "
    "runpy.run_module('dspex_plugins.finetune', run_name='__main__')"
)


def test_missing_packages_fail_precondition(launch: Launch, tmp_path: Any) -> None:
    plugin = launch(("-c", BLOCK_OPENAI))
    client = stub(plugin)
    with pytest.raises(grpc.RpcError) as excinfo:
        start(client, "http://127.0.0.1:9/v1")
    code, details = rpc_error(excinfo)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "pip install 'dspex_plugins[finetune]'" in details
    with pytest.raises(grpc.RpcError) as excinfo:
        client.StartJob(
            plugin_pb2.StartJobRequest(
                base_model=str(tmp_path),
                training_jsonl=TRAINING,
                backend="local",
                backend_options={"output_dir": str(tmp_path / "out")},
            ),
            timeout=30,
        )
    code, details = rpc_error(excinfo)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "pip install 'dspex_plugins[finetune-local]'" in details
    with pytest.raises(grpc.RpcError) as excinfo:
        client.GetJob(
            plugin_pb2.GetJobRequest(
                job_id="local-0123456789abcdef",
                backend="local",
                backend_options={"output_dir": str(tmp_path / "out")},
            ),
            timeout=30,
        )
    assert rpc_error(excinfo)[0] == grpc.StatusCode.FAILED_PRECONDITION


def test_follow_a_job_after_a_plugin_restart(launch: Launch, mock_lm: StartMockLM) -> None:
    sim = mock_lm("--finetune-step", "1s")
    first = launch(FINETUNE)
    status = start(stub(first), sim.url, key="run-7/lm-0")
    # Watch a little, then kill the plugin mid-job.
    stream = stub(first).WatchJob(
        plugin_pb2.WatchJobRequest(
            job_id=status.job_id, backend="openai", backend_options=options(sim.url)
        ),
        timeout=WATCH_TIMEOUT,
    )
    seen = next(iter(stream))
    assert seen.state == "queued"
    first.proc.kill()
    first.wait()

    second = launch(FINETUNE)
    client = stub(second)
    got = client.GetJob(
        plugin_pb2.GetJobRequest(
            job_id=status.job_id, backend="openai", backend_options=options(sim.url)
        ),
        timeout=30,
    )
    assert got.job_id == status.job_id
    assert got.state not in finetune.TERMINAL
    last = watch(client, sim.url, status.job_id)[-1]
    assert last.state == "succeeded"
    assert last.fine_tuned_model == f"ft:dspex-sim:dspex:{status.job_id}"
    # Starting again with the same key finds the job: still one job.
    assert start(client, sim.url, key="run-7/lm-0").job_id == status.job_id
    assert len(sim_jobs(sim.url)) == 1


@pytest.mark.parametrize(
    ("backend", "opts", "want"),
    [
        ("nope", {}, "unknown backend 'nope'"),
        ("openai", {}, "needs the option base_url"),
        ("", {"base_url": "http://127.0.0.1:9/v1", "colour": "red"}, "unknown option(s) colour"),
        ("openai", {"base_url": "http://x/v1", "poll_interval": "soon"}, "not a number"),
        ("local", {}, "needs the option output_dir"),
    ],
)
def test_bad_requests(
    plugin: PluginProcess, backend: str, opts: Mapping[str, str], want: str
) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        stub(plugin).StartJob(
            plugin_pb2.StartJobRequest(
                base_model="m", training_jsonl=TRAINING, backend=backend, backend_options=opts
            ),
            timeout=30,
        )
    code, details = rpc_error(excinfo)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert want in details


def test_bad_hyperparameters_and_missing_ids(plugin: PluginProcess) -> None:
    client = stub(plugin)
    with pytest.raises(grpc.RpcError) as excinfo:
        client.StartJob(
            plugin_pb2.StartJobRequest(
                base_model="m",
                training_jsonl=TRAINING,
                hyperparameters={"warmup": "3"},
                backend_options={"base_url": "http://127.0.0.1:9/v1"},
            ),
            timeout=30,
        )
    assert rpc_error(excinfo)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown hyperparameter 'warmup'" in rpc_error(excinfo)[1]
    with pytest.raises(grpc.RpcError) as excinfo:
        client.GetJob(plugin_pb2.GetJobRequest(job_id=""), timeout=30)
    assert rpc_error(excinfo) == (grpc.StatusCode.INVALID_ARGUMENT, "missing job_id")


def test_unknown_job_is_not_found(plugin: PluginProcess, mock_lm: StartMockLM) -> None:
    sim = mock_lm()
    with pytest.raises(grpc.RpcError) as excinfo:
        stub(plugin).GetJob(
            plugin_pb2.GetJobRequest(
                job_id="ftjob-nope", backend="openai", backend_options=options(sim.url)
            ),
            timeout=30,
        )
    code, details = rpc_error(excinfo)
    assert code == grpc.StatusCode.NOT_FOUND
    assert "ftjob-nope" in details


def test_plugin_info(plugin: PluginProcess) -> None:
    info = plugin_pb2_grpc.PluginInfoStub(plugin.channel()).Info(
        plugin_pb2.InfoRequest(), timeout=10
    )
    assert list(info.capabilities) == ["finetune"]
    assert info.details["backends"] == "openai,local"
    assert info.details["openai"] != "not installed"


def test_lost_create_response_is_not_a_second_job(mock_lm: StartMockLM) -> None:
    """The provider created the job but its answer was lost: the retry finds the job by
    its idempotency key instead of creating another. The backend runs in-process with the
    real openai client, wrapped to drop the first create's answer."""
    import types

    import httpx2
    from openai import APIConnectionError, OpenAI

    sim = mock_lm("--finetune-step", STEP)
    lost: list[str] = []

    class LosesFirstCreate(OpenAI):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            create = self.fine_tuning.jobs.create

            def lossy(**args: Any) -> Any:
                job = create(**args)
                if not lost:
                    lost.append(job.id)
                    raise APIConnectionError(
                        message="the answer was lost",
                        request=httpx2.Request("POST", f"{sim.url}/fine_tuning/jobs"),
                    )
                return job

            self.fine_tuning.jobs.create = lossy  # type: ignore[method-assign]

    lossy_openai = types.ModuleType("openai")
    lossy_openai.__dict__.update(vars(openai))
    lossy_openai.OpenAI = LosesFirstCreate  # type: ignore[attr-defined]
    backend = finetune.OpenAIBackend(load=lambda: lossy_openai, backoff_base=0.01)
    request = plugin_pb2.StartJobRequest(
        base_model="dspex-sim", training_jsonl=TRAINING, idempotency_key="lost-1"
    )
    status = backend.start(request, options(sim.url))
    assert lost == [status.job_id]
    assert len(sim_jobs(sim.url)) == 1
