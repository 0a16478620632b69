"""The fine-tuning plugin: training jobs that the Go host starts, follows and cancels.

Run as ``python -m dspex_plugins.finetune`` (by the host, which sets the magic cookie).
It serves PluginInfo (capabilities ``["finetune"]``) and the FineTuner service. Go
drives (BootstrapFinetune): it bootstraps the traces, writes the chat JSONL and keeps the
job id; this plugin hands the data to a backend and reports the job. Every request
carries the backend and its options, so a restarted plugin follows a job by id alone.

**Backends** (``StartJobRequest.backend``; ``""`` means ``openai``):

- ``openai``: the official ``openai`` package (extra ``finetune``) against any
  OpenAI-compatible base URL, as DSPy's ``OpenAIProvider`` drives it: upload the file
  (``purpose="fine-tune"``), create the job, poll it and its events, cancel. Options:
  ``base_url`` (required, e.g. ``http://127.0.0.1:8089/v1``), ``api_key_env`` (the
  variable holding the key, default ``OPENAI_API_KEY``; unset sends ``dspex-no-key``),
  ``poll_interval`` (seconds, or a Go duration such as ``500ms``; default ``1``),
  ``suffix`` (default ``dspex``), ``max_retries`` (default ``4``). With an idempotency
  key the job is created with metadata ``{"dspex_idempotency_key": key}``, and a job
  already carrying the key is returned instead of a new one. Connection errors, 429 and
  5xx are retried with backoff, then answered UNAVAILABLE naming the base URL; a file or
  job the provider refuses is INVALID_ARGUMENT with the provider's message.
- ``local``: supervised fine-tuning of a local model directory with Hugging Face
  transformers and torch (extra ``finetune-local``), in a thread of this process. The
  base model is a directory (nothing is downloaded). Options: ``output_dir`` (required:
  the job's status and the trained model go under ``output_dir/JOB_ID``), ``epochs``
  (default ``1``), ``learning_rate`` (default ``5e-5``), ``max_steps`` (default ``0``: no
  cap), ``poll_interval`` (default ``0.2``). The tuned model id is the saved model's
  directory. A job whose plugin process died mid-training is reported failed, never
  silently restarted.

A backend whose packages are missing answers FAILED_PRECONDITION naming the extra to
install. The contract is written up in docs/plugins.md ("The fine-tuning plugin").
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

import grpc

from dspex_plugins import __version__, sdk
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc

if TYPE_CHECKING:
    from openai import OpenAI
    from openai.pagination import SyncCursorPage
    from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

NAME = "finetune"
CAPABILITIES = ("finetune",)
BACKENDS = ("openai", "local")
IDEMPOTENCY_METADATA_KEY = "dspex_idempotency_key"
NO_KEY = "dspex-no-key"
OPENAI_HINT = "backend openai needs the openai package: pip install 'dspex_plugins[finetune]'"
LOCAL_HINT = (
    "backend local needs transformers and torch: pip install 'dspex_plugins[finetune-local]'"
)

# OpenAI's job states, mapped to the portable ones.
_STATES = {
    "validating_files": "queued",
    "queued": "queued",
    "running": "running",
    "paused": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
# Bounds on what one look-up reads: pages of jobs scanned for an idempotency key, pages
# of events read per poll.
_MAX_LIST_PAGES = 20
_MAX_EVENT_PAGES = 20
_MAX_CLIENTS = 8
_START_LOCKS = 64
_BACKOFF_BASE = 0.25
_BACKOFF_MAX = 4.0

_log = logging.getLogger(NAME)
T = TypeVar("T")


class FineTuneError(sdk.StatusError):
    """A request the plugin refuses or cannot carry out, with the gRPC status to answer."""


def _invalid(message: str) -> FineTuneError:
    return FineTuneError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _import(names: tuple[str, ...], hint: str) -> list[ModuleType]:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as err:
            raise FineTuneError(
                grpc.StatusCode.FAILED_PRECONDITION, f"{hint} (import {name}: {err})"
            ) from None
    return modules


def _float_option(options: Mapping[str, str], key: str, default: float) -> float:
    raw = options.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw.removesuffix("s"))
    except ValueError:
        raise _invalid(f"option {key}={raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise _invalid(f"option {key}={raw!r} must be a positive number")
    return value


_DURATION = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(ms|s|m)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def _duration_option(options: Mapping[str, str], key: str, default: float) -> float:
    """Seconds from a number of seconds ("0.5") or a Go duration ("500ms", "2s", "1m")."""
    raw = options.get(key, "").strip()
    if not raw:
        return default
    match = _DURATION.fullmatch(raw)
    if match is None:
        raise _invalid(f"option {key}={raw!r} is not a number of seconds or a duration like 500ms")
    value = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise _invalid(f"option {key}={raw!r} must be positive")
    return value


def _int_option(options: Mapping[str, str], key: str, default: int, *, minimum: int) -> int:
    raw = options.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(f"option {key}={raw!r} is not a whole number") from None
    if value < minimum:
        raise _invalid(f"option {key}={raw!r} must be at least {minimum}")
    return value


def _check_options(backend: str, options: Mapping[str, str], known: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise _invalid(
            f"backend {backend}: unknown option(s) {', '.join(unknown)} (known: {', '.join(known)})"
        )


class Backend(Protocol):
    """What a fine-tuning backend does; options are the request's backend_options."""

    def start(
        self, request: plugin_pb2.StartJobRequest, options: Mapping[str, str]
    ) -> plugin_pb2.JobStatus: ...

    def get(self, job_id: str, options: Mapping[str, str]) -> plugin_pb2.JobStatus: ...

    def cancel(self, job_id: str, options: Mapping[str, str]) -> plugin_pb2.JobStatus: ...

    def watch(
        self, job_id: str, options: Mapping[str, str], active: Callable[[], bool]
    ) -> Iterator[plugin_pb2.JobEvent]: ...


# ---- openai ---------------------------------------------------------------------------

_OPENAI_OPTIONS = ("base_url", "api_key_env", "poll_interval", "suffix", "max_retries")


def _numeric_metrics(data: object) -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(data, Mapping):
        return out
    for key, value in data.items():
        if key in ("step", "total_steps") or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            out[str(key)] = float(value)
    return out


class _OpenAIConfig:
    def __init__(self, options: Mapping[str, str]) -> None:
        _check_options("openai", options, _OPENAI_OPTIONS)
        self.base_url = options.get("base_url", "").strip()
        if not self.base_url:
            raise _invalid(
                "backend openai needs the option base_url (e.g. http://127.0.0.1:8089/v1)"
            )
        env = options.get("api_key_env", "").strip() or "OPENAI_API_KEY"
        self.api_key = os.environ.get(env, "") or NO_KEY
        self.poll_interval = _duration_option(options, "poll_interval", 1.0)
        self.suffix = options.get("suffix", "dspex").strip()
        self.max_retries = _int_option(options, "max_retries", 4, minimum=0)


class OpenAIBackend:
    """Jobs on an OpenAI-compatible fine-tuning API. Holds no job state: every call asks
    the provider, so a restarted plugin follows the same jobs."""

    def __init__(
        self,
        load: Callable[[], ModuleType] | None = None,
        backoff_base: float = _BACKOFF_BASE,
    ) -> None:
        self._load = load or (lambda: _import(("openai",), OPENAI_HINT)[0])
        self._backoff_base = backoff_base
        # Starts with one key are serialised (striped: a bounded set of locks).
        self._start_locks = [threading.Lock() for _ in range(_START_LOCKS)]
        self._locks_guard = threading.Lock()
        self._clients: OrderedDict[tuple[str, str], OpenAI] = OrderedDict()

    def _client(self, cfg: _OpenAIConfig) -> tuple[ModuleType, OpenAI]:
        """The module and a client for the provider, kept for the next calls (a client
        holds a connection pool); at most _MAX_CLIENTS are kept."""
        openai = self._load()
        key = (cfg.base_url, cfg.api_key)
        with self._locks_guard:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return openai, client
            # Retries are ours (_call), so that the last error can name the base URL.
            client = openai.OpenAI(
                base_url=cfg.base_url, api_key=cfg.api_key, max_retries=0, timeout=60.0
            )
            self._clients[key] = client
            while len(self._clients) > _MAX_CLIENTS:
                # Not closed here: a call in another thread may still use it.
                self._clients.popitem(last=False)
        return openai, client

    def _call(self, openai: ModuleType, cfg: _OpenAIConfig, what: str, fn: Callable[[], T]) -> T:
        """fn(), retried on connection errors, 429 and 5xx; provider errors mapped to
        gRPC statuses."""
        attempt = 0
        while True:
            try:
                return fn()
            except (
                openai.APIConnectionError,
                openai.RateLimitError,
                openai.InternalServerError,
            ) as err:
                if attempt >= cfg.max_retries:
                    raise FineTuneError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"the fine-tuning provider at {cfg.base_url} did not answer {what} "
                        f"after {attempt + 1} tries: {_describe(err)}",
                    ) from None
                delay = min(_BACKOFF_MAX, self._backoff_base * 2**attempt)
                _log.warning(
                    "fine-tuning provider call failed; retrying",
                    extra={
                        "call": what,
                        "base_url": cfg.base_url,
                        "error": _describe(err),
                        "retry_in_s": delay,
                    },
                )
                time.sleep(delay)
                attempt += 1
            except openai.NotFoundError as err:
                raise FineTuneError(
                    grpc.StatusCode.NOT_FOUND, f"{what}: {_provider_message(err)}"
                ) from None
            except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
                raise FineTuneError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{what}: the provider at {cfg.base_url} refused the key: "
                    f"{_provider_message(err)}",
                ) from None
            except openai.APIStatusError as err:
                raise FineTuneError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{what}: the provider refused it ({err.status_code}): "
                    f"{_provider_message(err)}",
                ) from None

    def _lock_for(self, key: str) -> threading.Lock:
        digest = hashlib.sha256(key.encode()).digest()
        return self._start_locks[int.from_bytes(digest[:4], "big") % len(self._start_locks)]

    def start(
        self, request: plugin_pb2.StartJobRequest, options: Mapping[str, str]
    ) -> plugin_pb2.JobStatus:
        cfg = _OpenAIConfig(options)
        hyper = _openai_hyperparameters(request.hyperparameters)
        openai, client = self._client(cfg)
        key = request.idempotency_key
        with self._lock_for(key) if key else contextlib.nullcontext():
            if key:
                existing = self._find_by_key(openai, client, cfg, key)
                if existing is not None:
                    _log.info(
                        "idempotency key matches an existing job",
                        extra={"job_id": existing.id, "idempotency_key": key},
                    )
                    return self._status(openai, client, cfg, existing)
            digest = hashlib.sha256(request.training_jsonl).hexdigest()[:12]
            filename = f"dspex-{digest}.jsonl"
            uploaded = self._call(
                openai,
                cfg,
                "upload the training file",
                lambda: client.files.create(
                    file=(filename, request.training_jsonl), purpose="fine-tune"
                ),
            )
            args: dict[str, Any] = {"model": request.base_model, "training_file": uploaded.id}
            if cfg.suffix:
                args["suffix"] = cfg.suffix
            if hyper:
                args["hyperparameters"] = hyper
            if key:
                args["metadata"] = {IDEMPOTENCY_METADATA_KEY: key}
            tries = 0

            def create() -> FineTuningJob:
                nonlocal tries
                tries += 1
                if key and tries > 1:
                    # The try that failed may have reached the provider: a job with
                    # the key is that job, not a reason for a second one.
                    found = self._find_by_key(openai, client, cfg, key)
                    if found is not None:
                        return found
                return client.fine_tuning.jobs.create(**args)

            job = self._call(openai, cfg, "create the fine-tuning job", create)
            _log.info(
                "fine-tuning job created",
                extra={"job_id": job.id, "file_id": uploaded.id, "base_url": cfg.base_url},
            )
            return self._status(openai, client, cfg, job)

    def _find_by_key(
        self, openai: ModuleType, client: OpenAI, cfg: _OpenAIConfig, key: str
    ) -> FineTuningJob | None:
        after: str | None = None
        for _ in range(_MAX_LIST_PAGES):
            kwargs: dict[str, Any] = {"limit": 100, "metadata": {IDEMPOTENCY_METADATA_KEY: key}}
            if after:
                kwargs["after"] = after

            def page(kwargs: dict[str, Any] = kwargs) -> SyncCursorPage[FineTuningJob]:
                return client.fine_tuning.jobs.list(**kwargs)

            got = self._call(openai, cfg, "list fine-tuning jobs", page)
            data = list(got.data)
            for job in data:
                if (job.metadata or {}).get(IDEMPOTENCY_METADATA_KEY) == key:
                    return job
            if not data or not got.has_more:
                return None
            after = data[-1].id
        return None

    def _events(
        self, openai: ModuleType, client: OpenAI, cfg: _OpenAIConfig, job_id: str, seen: set[str]
    ) -> list[FineTuningJobEvent]:
        """The job's events not in seen, oldest first."""
        new: list[FineTuningJobEvent] = []
        after: str | None = None
        for _ in range(_MAX_EVENT_PAGES):
            kwargs: dict[str, Any] = {"limit": 100}
            if after:
                kwargs["after"] = after

            def page(kwargs: dict[str, Any] = kwargs) -> SyncCursorPage[FineTuningJobEvent]:
                return client.fine_tuning.jobs.list_events(job_id, **kwargs)

            got = self._call(openai, cfg, f"list the events of job {job_id}", page)
            data = list(got.data)
            hit_seen = False
            for event in data:
                if event.id in seen:
                    hit_seen = True
                    break
                new.append(event)
            if hit_seen or not data or not got.has_more:
                break
            after = data[-1].id
        new.reverse()
        return new

    def _status(
        self,
        openai: ModuleType,
        client: OpenAI,
        cfg: _OpenAIConfig,
        job: FineTuningJob,
        events: list[FineTuningJobEvent] | None = None,
    ) -> plugin_pb2.JobStatus:
        provider_state = str(job.status)
        state = _STATES.get(provider_state, "running")
        status = plugin_pb2.JobStatus(
            job_id=job.id,
            state=state,
            provider_state=provider_state,
            fine_tuned_model=job.fine_tuned_model or "",
        )
        if state == "failed":
            status.error = _job_error(job)
        if state == "succeeded":
            status.progress = 1.0
            if job.trained_tokens is not None:
                status.metrics["trained_tokens"] = float(job.trained_tokens)
        elif state == "running":
            if events is None:
                events = self._events(openai, client, cfg, job.id, set())
            step, total, metrics = _last_metrics(events)
            if total:
                status.progress = min(1.0, step / total)
            status.metrics.update(metrics)
        return status

    def get(self, job_id: str, options: Mapping[str, str]) -> plugin_pb2.JobStatus:
        cfg = _OpenAIConfig(options)
        openai, client = self._client(cfg)
        job = self._call(
            openai, cfg, f"get job {job_id}", lambda: client.fine_tuning.jobs.retrieve(job_id)
        )
        return self._status(openai, client, cfg, job)

    def cancel(self, job_id: str, options: Mapping[str, str]) -> plugin_pb2.JobStatus:
        cfg = _OpenAIConfig(options)
        openai, client = self._client(cfg)
        try:
            job = self._call(
                openai, cfg, f"cancel job {job_id}", lambda: client.fine_tuning.jobs.cancel(job_id)
            )
        except FineTuneError as err:
            if err.code != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            # The job has already ended: cancelling is a no-op; report how it ended.
            current = self.get(job_id, options)
            if current.state not in TERMINAL:
                raise
            return current
        return self._status(openai, client, cfg, job)

    def watch(
        self, job_id: str, options: Mapping[str, str], active: Callable[[], bool]
    ) -> Iterator[plugin_pb2.JobEvent]:
        cfg = _OpenAIConfig(options)
        openai, client = self._client(cfg)
        seen: set[str] = set()
        last_state = ""
        step = total = 0
        while active():
            job = self._call(
                openai, cfg, f"get job {job_id}", lambda: client.fine_tuning.jobs.retrieve(job_id)
            )
            state = _STATES.get(str(job.status), "running")
            for event in self._events(openai, client, cfg, job_id, seen):
                seen.add(event.id)
                data = event.data or {}
                ev = plugin_pb2.JobEvent(
                    job_id=job_id,
                    state=state if state not in TERMINAL else "running",
                    message=str(event.message),
                )
                if event.type == "metrics" and isinstance(data, Mapping):
                    step = int(data.get("step") or step)
                    total = int(data.get("total_steps") or total)
                    ev.step = step
                    ev.metrics.update(_numeric_metrics(data))
                if total:
                    ev.progress = min(1.0, step / total)
                yield ev
            if state in TERMINAL:
                yield plugin_pb2.JobEvent(
                    job_id=job_id,
                    state=state,
                    step=step,
                    progress=1.0 if state == "succeeded" else (step / total if total else 0.0),
                    message=f"job {job_id} {state}",
                    fine_tuned_model=job.fine_tuned_model or "",
                    error=_job_error(job) if state == "failed" else "",
                )
                return
            if state != last_state:
                yield plugin_pb2.JobEvent(
                    job_id=job_id,
                    state=state,
                    step=step,
                    progress=step / total if total else 0.0,
                    message=f"job {job_id} is {job.status}",
                )
                last_state = state
            if not _sleep(active, cfg.poll_interval):
                return


def _describe(err: Exception) -> str:
    cause = err.__cause__ or err.__context__
    text = str(err) or type(err).__name__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({cause})"
    return text


def _provider_message(err: Exception) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return str(err)


def _job_error(job: FineTuningJob) -> str:
    error = job.error
    if error is None:
        return "the job failed (the provider gave no reason)"
    code, message = error.code or "", error.message or ""
    return f"{code}: {message}" if code else str(message or "the job failed")


def _last_metrics(events: list[FineTuningJobEvent]) -> tuple[int, int, dict[str, float]]:
    for event in reversed(events):
        data = event.data
        if event.type == "metrics" and isinstance(data, Mapping):
            return (
                int(data.get("step") or 0),
                int(data.get("total_steps") or 0),
                _numeric_metrics(data),
            )
    return 0, 0, {}


def _openai_hyperparameters(raw: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _HYPERPARAMETERS:
            known = ", ".join(_HYPERPARAMETERS)
            raise _invalid(f"backend openai: unknown hyperparameter {key!r} (known: {known})")
        text = value.strip()
        if text == "auto":
            out[key] = "auto"
            continue
        try:
            number = float(text)
        except ValueError:
            raise _invalid(f"hyperparameter {key}={value!r} must be 'auto' or a number") from None
        if not math.isfinite(number) or number <= 0:
            raise _invalid(f"hyperparameter {key}={value!r} must be positive")
        if key == "learning_rate_multiplier":
            out[key] = number
        elif number != int(number):
            raise _invalid(f"hyperparameter {key}={value!r} must be a whole number")
        else:
            out[key] = int(number)
    return out


def _sleep(active: Callable[[], bool], seconds: float) -> bool:
    """Sleep in short slices while active(); False once it is not."""
    deadline = time.monotonic() + seconds
    while active():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.05))
    return False


# ---- local ----------------------------------------------------------------------------

_LOCAL_OPTIONS = ("output_dir", "epochs", "learning_rate", "max_steps", "poll_interval")
_STATUS_FILE = "status.json"
_LOCAL_JOB_ID = re.compile(r"local-[0-9a-f]{16}")
_MAX_LOCAL_EVENTS = 1000


class _LocalConfig:
    def __init__(self, options: Mapping[str, str]) -> None:
        _check_options("local", options, _LOCAL_OPTIONS)
        out = options.get("output_dir", "").strip()
        if not out:
            raise _invalid("backend local needs the option output_dir")
        self.output_dir = Path(out)
        self.epochs = _int_option(options, "epochs", 1, minimum=1)
        self.learning_rate = _float_option(options, "learning_rate", 5e-5)
        self.max_steps = _int_option(options, "max_steps", 0, minimum=0)
        self.poll_interval = _duration_option(options, "poll_interval", 0.2)


def _parse_chat_jsonl(data: bytes) -> list[list[dict[str, str]]]:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise _invalid("training_jsonl is not UTF-8 text") from None
    examples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            raise _invalid(f"training_jsonl line {number}: empty line")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise _invalid(f"training_jsonl line {number}: not JSON: {err}") from None
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict)
                and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)
                for m in messages
            )
        ):
            raise _invalid(
                f'training_jsonl line {number}: want {{"messages": [{{"role", "content"}}, ...]}}'
            )
        if messages[-1]["role"] != "assistant":
            raise _invalid(
                f"training_jsonl line {number}: the last message must be the assistant's"
            )
        examples.append([{"role": m["role"], "content": m["content"]} for m in messages])
    if not examples:
        raise _invalid("training_jsonl has no examples")
    return examples


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:  # noqa: ANN401
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(messages, tokenize=False))
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)


class _LocalJob:
    """A local job's record, mirrored to output_dir/JOB_ID/status.json."""

    def __init__(self, job_dir: Path, job_id: str) -> None:
        self.dir = job_dir
        self.id = job_id
        self.lock = threading.Lock()
        self.cancel = threading.Event()
        self.record: dict[str, Any] = {
            "job_id": job_id,
            "state": "queued",
            "error": "",
            "fine_tuned_model": "",
            "progress": 0.0,
            "metrics": {},
            "step": 0,
            "total_steps": 0,
            "events": [],
            "pid": os.getpid(),
        }

    def update(self, message: str, **fields: object) -> None:
        with self.lock:
            self.record.update(fields)
            events = self.record["events"]
            events.append(
                {
                    "message": message,
                    "state": self.record["state"],
                    "step": self.record["step"],
                    "progress": self.record["progress"],
                    "metrics": dict(self.record["metrics"]),
                }
            )
            del events[:-_MAX_LOCAL_EVENTS]
            _write_json(self.dir / _STATUS_FILE, self.record)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(self.record))  # type: ignore[no-any-return]


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


class LocalBackend:
    """Supervised fine-tuning of a local model directory, one thread per job."""

    def __init__(self, load: Callable[[], list[ModuleType]] | None = None) -> None:
        self._load = load or (lambda: _import(("torch", "transformers"), LOCAL_HINT))
        self._jobs: dict[str, _LocalJob] = {}
        self._lock = threading.Lock()

    def start(
        self, request: plugin_pb2.StartJobRequest, options: Mapping[str, str]
    ) -> plugin_pb2.JobStatus:
        cfg = _LocalConfig(options)
        torch, transformers = self._load()
        base = Path(request.base_model)
        if not (base / "config.json").is_file():
            raise _invalid(
                f"backend local: base_model {request.base_model!r} is not a model directory "
                "(no config.json); the local backend downloads nothing"
            )
        examples = _parse_chat_jsonl(request.training_jsonl)
        if request.hyperparameters:
            raise _invalid(
                "backend local takes its settings as backend_options "
                f"({', '.join(_LOCAL_OPTIONS)}), not hyperparameters"
            )
        key = request.idempotency_key
        job_id = (
            "local-" + hashlib.sha256(key.encode()).hexdigest()[:16]
            if key
            else "local-" + uuid.uuid4().hex[:16]
        )
        with self._lock:
            exists = job_id in self._jobs or (cfg.output_dir / job_id / _STATUS_FILE).exists()
            if not exists:
                job_dir = cfg.output_dir / job_id
                job_dir.mkdir(parents=True, exist_ok=True)
                job = _LocalJob(job_dir, job_id)
                job.update(f"job {job_id} queued: {len(examples)} examples")
                self._jobs[job_id] = job
        if exists:
            # The same key: the job it started, never a second one.
            return self._status(job_id, cfg)
        thread = threading.Thread(
            target=self._train,
            args=(job, cfg, base, examples, torch, transformers),
            name=f"finetune-{job_id}",
            daemon=True,
        )
        thread.start()
        return self._status(job_id, cfg)

    def _train(
        self,
        job: _LocalJob,
        cfg: _LocalConfig,
        base: Path,
        examples: list[list[dict[str, str]]],
        torch: ModuleType,
        transformers: ModuleType,
    ) -> None:
        try:
            train_local(
                job,
                cfg,
                base,
                examples,
                torch,
                transformers,
            )
        except Exception as err:  # a job's failure is its state, not the plugin's
            _log.exception("local fine-tuning failed", extra={"job_id": job.id})
            job.update(
                f"job {job.id} failed: {err}", state="failed", error=f"{type(err).__name__}: {err}"
            )

    def _record(self, job_id: str, cfg: _LocalConfig) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job.snapshot()
        path = cfg.output_dir / job_id / _STATUS_FILE
        if not _LOCAL_JOB_ID.fullmatch(job_id) or not path.is_file():
            raise FineTuneError(
                grpc.StatusCode.NOT_FOUND, f"no local job {job_id!r} under {cfg.output_dir}"
            )
        record: dict[str, Any] = json.loads(path.read_text())
        if record.get("state") not in TERMINAL:
            # Another process ran it, and this one does not: it died mid-training.
            record["state"] = "failed"
            record["error"] = (
                f"training was interrupted: the plugin process that ran job {job_id} "
                f"(pid {record.get('pid')}) is gone; start a new job"
            )
        return record

    def _status(self, job_id: str, cfg: _LocalConfig) -> plugin_pb2.JobStatus:
        r = self._record(job_id, cfg)
        return plugin_pb2.JobStatus(
            job_id=job_id,
            state=r["state"],
            provider_state=r["state"],
            error=r["error"],
            fine_tuned_model=r["fine_tuned_model"],
            progress=r["progress"],
            metrics=r["metrics"],
        )

    def get(self, job_id: str, options: Mapping[str, str]) -> plugin_pb2.JobStatus:
        cfg = _LocalConfig(options)
        self._load()  # the backend is unavailable without its packages, for every call
        return self._status(job_id, cfg)

    def cancel(self, job_id: str, options: Mapping[str, str]) -> plugin_pb2.JobStatus:
        cfg = _LocalConfig(options)
        self._load()
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job.cancel.set()
            deadline = time.monotonic() + 30
            while job.snapshot()["state"] not in TERMINAL and time.monotonic() < deadline:
                time.sleep(0.05)
        return self._status(job_id, cfg)

    def watch(
        self, job_id: str, options: Mapping[str, str], active: Callable[[], bool]
    ) -> Iterator[plugin_pb2.JobEvent]:
        cfg = _LocalConfig(options)
        self._load()
        sent = 0
        while active():
            record = self._record(job_id, cfg)
            events = record["events"]
            for ev in events[sent:]:
                yield plugin_pb2.JobEvent(
                    job_id=job_id,
                    state=ev["state"] if ev["state"] not in TERMINAL else "running",
                    step=ev["step"],
                    progress=ev["progress"],
                    message=ev["message"],
                    metrics=ev["metrics"],
                )
            sent = len(events)
            if record["state"] in TERMINAL:
                yield plugin_pb2.JobEvent(
                    job_id=job_id,
                    state=record["state"],
                    step=record["step"],
                    progress=record["progress"],
                    message=f"job {job_id} {record['state']}",
                    metrics=record["metrics"],
                    fine_tuned_model=record["fine_tuned_model"],
                    error=record["error"],
                )
                return
            if not _sleep(active, cfg.poll_interval):
                return


def _context_length(config: Any) -> int:  # noqa: ANN401
    """The most tokens the model takes at once (0 when its config does not say)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def train_local(
    job: _LocalJob,
    cfg: _LocalConfig,
    base: Path,
    examples: list[list[dict[str, str]]],
    torch: ModuleType,
    transformers: ModuleType,
) -> None:
    """Supervised fine-tuning: the loss is on the final assistant message's tokens only
    (the prompt's are masked), batch size 1, AdamW, epochs over the examples."""
    torch.manual_seed(0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
    model.train()
    limit = _context_length(model.config)
    batches = []
    truncated = 0
    for messages in examples:
        prompt = tokenizer(_render(tokenizer, messages[:-1]), add_special_tokens=False)["input_ids"]
        full = tokenizer(_render(tokenizer, messages), add_special_tokens=False)["input_ids"]
        labels = [-100] * min(len(prompt), len(full)) + full[len(prompt) :]
        if limit and len(full) > limit:
            # Longer than the model's positions: keep the end (the answer
            # the loss is on) and drop the start of the prompt.
            full, labels = full[-limit:], labels[-limit:]
            truncated += 1
        if all(label == -100 for label in labels) or len(full) < 2:
            continue
        batches.append((torch.tensor([full]), torch.tensor([labels])))
    if truncated:
        job.update(
            f"truncated {truncated} of {len(examples)} examples to the model's {limit} positions "
            "(the start of the prompt dropped)"
        )
    if not batches:
        raise ValueError("no example has assistant tokens to train on")
    total = cfg.epochs * len(batches)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    job.update(
        f"training {len(batches)} examples for {total} steps", state="running", total_steps=total
    )
    step = 0
    for _epoch in range(cfg.epochs):
        for input_ids, labels in batches:
            if step >= total:
                break
            if job.cancel.is_set():
                job.update(f"job {job.id} cancelled at step {step}", state="cancelled")
                return
            loss = model(input_ids=input_ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            value = float(loss.detach())
            job.update(
                f"step {step}/{total}: loss={value:.4f}",
                step=step,
                progress=step / total,
                metrics={"loss": value},
            )
    out = job.dir / "model"
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    job.update(
        f"saved the model to {out}", state="succeeded", fine_tuned_model=str(out), progress=1.0
    )


# ---- the service ----------------------------------------------------------------------


class FineTunerService(plugin_pb2_grpc.FineTunerServicer):
    """The FineTuner service over the backends; safe for concurrent use."""

    def __init__(self, backends: Mapping[str, Backend] | None = None) -> None:
        self._backends: Mapping[str, Backend] = backends or {
            "openai": OpenAIBackend(),
            "local": LocalBackend(),
        }

    def backend(self, name: str) -> Backend:
        key = name.strip().lower() or "openai"
        found = self._backends.get(key)
        if found is None:
            raise _invalid(f"unknown backend {name!r} (known: {', '.join(self._backends)})")
        return found

    def _abort(self, context: grpc.ServicerContext, err: FineTuneError) -> NoReturn:
        sdk.abort(context, err, _log, "fine-tuning", logging.INFO)

    def StartJob(
        self, request: plugin_pb2.StartJobRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.JobStatus:
        try:
            if not request.base_model.strip():
                raise _invalid("missing base_model")
            if not request.training_jsonl.strip():
                raise _invalid("training_jsonl is empty")
            return self.backend(request.backend).start(request, request.backend_options)
        except FineTuneError as err:
            self._abort(context, err)

    def GetJob(
        self, request: plugin_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.JobStatus:
        try:
            _need_id(request.job_id)
            return self.backend(request.backend).get(request.job_id, request.backend_options)
        except FineTuneError as err:
            self._abort(context, err)

    def CancelJob(
        self, request: plugin_pb2.CancelJobRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.JobStatus:
        try:
            _need_id(request.job_id)
            return self.backend(request.backend).cancel(request.job_id, request.backend_options)
        except FineTuneError as err:
            self._abort(context, err)

    def WatchJob(
        self, request: plugin_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[plugin_pb2.JobEvent]:
        try:
            _need_id(request.job_id)
            backend = self.backend(request.backend)
            yield from backend.watch(request.job_id, request.backend_options, context.is_active)
        except FineTuneError as err:
            self._abort(context, err)


def _need_id(job_id: str) -> None:
    if not job_id.strip():
        raise _invalid("missing job_id")


def register(server: grpc.Server) -> None:
    """Add the FineTuner service to a plugin's server."""
    plugin_pb2_grpc.add_FineTunerServicer_to_server(FineTunerService(), server)


def _installed(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> NoReturn:
    sdk.serve(
        NAME,
        __version__,
        CAPABILITIES,
        register,
        details={
            "backends": ",".join(BACKENDS),
            "openai": _installed("openai"),
            "transformers": _installed("transformers"),
            "torch": _installed("torch"),
        },
    )


if __name__ == "__main__":
    main()
