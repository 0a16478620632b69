"""The interpreter plugin: CodeAct's and ProgramOfThought's Python, run for the Go host.

Run as ``python -m dspex_plugins.interpreter`` (by the host, which sets the magic cookie,
and which launches it inside the OS sandbox when the plugin's configuration says
``sandbox: true``). It serves PluginInfo (capabilities ``["interpreter"]``) and the
Interpreter service of ``bridge/proto``:

- **StartSession** creates a persistent namespace holding one Python function per tool
  (``ToolSpec``) and ``SUBMIT``. A tool function checks its arguments against the tool's
  parameters (from the JSON schema), sends a ``ToolCall`` over the execute stream and
  blocks until the host answers with a ``ToolResult``: the result (decoded from JSON) is
  returned; an error is raised as :class:`ToolError` with the host's message.
- **Execute** runs code in a session's namespace, as a REPL cell: when the last
  statement is an expression, its value is the result (``value_repr``, ``value_json``).
  ``SUBMIT(**fields)`` ends the code at once with the final outputs (``submitted``);
  ``SUBMIT(x)`` submits ``{"output": x}``, as DSPy's default ``SUBMIT`` does. Output
  written to ``sys.stdout`` and ``sys.stderr`` by the code's thread, and to file
  descriptors 1 and 2 while the code runs (C code, subprocesses), is captured, each
  stream kept up to ``max_output_bytes``; code that writes more than
  ``output_limit_bytes`` in all is stopped with :class:`OutputLimitExceeded`. Past the
  execution's ``timeout_seconds`` the plugin raises :class:`ExecutionTimeout` in the
  code. Either limit, and ``MemoryError``, is reported with ``killed_by`` set, and the
  host then discards this process: code stuck in C cannot be interrupted from Python,
  so the host also kills the process when the answer does not come soon after the
  timeout. Code ended by an ``OSError`` of the sandbox's disk limits (``EFBIG``, the
  file size limit: ``killed_by`` "file-size"; ``ENOSPC``, a full /scratch or /tmp:
  "disk") is reported likewise. An error's traceback is trimmed to the code: the
  plugin's own frames are left out, and the code's frames show its lines. The
  recursion limit is set back to the default after each execution.
- **Reset** clears a session's namespace; **StopSession** drops it.

Executions are serialized: one runs at a time in a process (the host runs one session per
process). Everything here is plain CPython; the isolation (no network, read-only host
files, resource limits) is the sandbox's. The plugin writes nothing but its socket: a
scratch directory, when ``DSPEX_SCRATCH_DIR`` names one, becomes the working directory.
The contract is written up in docs/plugins.md.
"""

from __future__ import annotations

import ast
import builtins
import codecs
import ctypes
import errno
import io
import json
import keyword
import logging
import os
import queue
import sys
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TextIO

import grpc

from dspex_plugins import __version__, sdk
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc

NAME = "interpreter"
CAPABILITIES = ("interpreter",)

SCRATCH_DIR_ENV = "DSPEX_SCRATCH_DIR"
"""A writable directory the plugin makes its working directory (the sandbox's scratch)."""

DEFAULT_MAX_OUTPUT_BYTES = 64 << 10
"""Each of stdout and stderr is kept up to this many bytes by default."""
OUTPUT_LIMIT_FACTOR = 16
"""By default code may write this many times max_output_bytes before it is stopped."""
MAX_SESSIONS = 64
"""Sessions one process holds at most; StartSession past it is refused."""

_DISK_LIMITS = {errno.EFBIG: "file-size", errno.ENOSPC: "disk", errno.EDQUOT: "disk"}
"""The killed_by of code ended by an OSError with these errnos."""

_TIMEOUT_GRACE_SECONDS = 0.5
"""How long the plugin waits for timed-out code to stop before answering anyway."""
_DRAIN_SECONDS = 0.2
"""How long the plugin waits, after the code, for output still in its pipes."""

_log = logging.getLogger(NAME)

CODE_FILENAME = "<code>"
"""The file name of the code's frames in tracebacks."""

_RECURSION_LIMIT = sys.getrecursionlimit()
"""The recursion limit every execution starts with: code that changes it changes it
for itself only."""


_BUILTINS = dict(vars(builtins))
"""The builtins as the plugin started with them: each session's namespace gets its own
copy, so that code replacing a builtin by name (``__builtins__["print"] = ...``) does
not reach other sessions. (Code that changes the builtins module or any other module
changes the whole process: the host gives a process whose session ran code to no
other session.)"""


class ToolError(Exception):
    """A tool call failed on the host: bad arguments, or the tool's own error."""


class ExecutionTimeout(BaseException):
    """Raised in running code when it passes its execution's timeout.

    A BaseException, so that ``except Exception`` in the code does not swallow it.
    """


class OutputLimitExceeded(BaseException):
    """Raised in running code that writes more output than the session allows."""


# Tracebacks name these as the code knows them (ToolError is in its namespace), not
# by this module's path.
for _cls in (ToolError, ExecutionTimeout, OutputLimitExceeded):
    _cls.__module__ = "builtins"


class _Submit(BaseException):
    """SUBMIT's way out of the code: carries the final outputs."""

    def __init__(self, fields: dict[str, object]) -> None:
        super().__init__()
        self.fields = fields


# ---- Output capture -------------------------------------------------------------------


class _Capture:
    """The output of one execution: stdout and stderr, each capped, and a total limit."""

    def __init__(self, max_bytes: int, limit_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.limit_bytes = limit_bytes
        self.buffers = {"stdout": io.StringIO(), "stderr": io.StringIO()}
        self.kept = {"stdout": 0, "stderr": 0}
        self.written = 0
        self.truncated = False
        self.limit_hit = False
        self.lock = threading.Lock()

    def write(self, stream: str, text: str) -> None:
        with self.lock:
            size = len(text.encode("utf-8", "replace"))
            self.written += size
            room = self.max_bytes - self.kept[stream]
            if size <= room:
                self.buffers[stream].write(text)
                self.kept[stream] += size
            else:
                if room > 0:
                    part = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
                    self.buffers[stream].write(part)
                    self.kept[stream] += len(part.encode("utf-8"))
                self.truncated = True
            over = self.written > self.limit_bytes
            self.limit_hit = self.limit_hit or over
        if over:
            raise OutputLimitExceeded(
                f"the code wrote more than {self.limit_bytes} bytes of output and was stopped"
            )

    def message(self) -> plugin_pb2.Captured:
        return plugin_pb2.Captured(
            stdout=self.buffers["stdout"].getvalue(),
            stderr=self.buffers["stderr"].getvalue(),
            truncated=self.truncated,
        )


class _Router(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr: writes from the thread running code go
    to file descriptor ``fd`` (1 or 2), which points at the execution's pipe while the
    code runs, so that they keep their order with what C code and subprocesses
    write; everything else goes to the original stream (the plugin's stderr, which
    the host logs)."""

    def __init__(self, fd: int, original: TextIO) -> None:
        super().__init__()
        self._fd = fd
        self._original = original
        self._local = threading.local()

    def bind(self, active: bool) -> None:
        """Send this thread's writes to the file descriptor (False: to the original
        stream)."""
        self._local.active = active

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not getattr(self._local, "active", False):
            return self._original.write(text)
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self._fd, data) :]
        return len(text)

    def flush(self) -> None:
        if not getattr(self._local, "active", False):
            self._original.flush()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


_routers_lock = threading.Lock()


_host_stream: TextIO | None = None


def _install_routers() -> tuple[_Router, _Router]:
    """Put routers in front of sys.stdout and sys.stderr, unless they are there.

    What does not come from running code goes to a duplicate of the process's
    stderr, taken once, so that it still reaches the host while file descriptors
    1 and 2 point at an execution's pipes."""
    global _host_stream
    with _routers_lock:
        if _host_stream is None:
            sys.stderr.flush()
            _host_stream = os.fdopen(
                os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace"
            )
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(1, _host_stream)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(2, _host_stream)
        return sys.stdout, sys.stderr


class _FdCapture:
    """Points file descriptors 1 and 2 at pipes while code runs, so that what
    subprocesses and C code write reaches the execution's capture (and its
    limit) too. When the limit is passed, the pipe is closed (writers get
    EPIPE) and on_limit is called."""

    def __init__(self, capture: _Capture, on_limit: Callable[[], None]) -> None:
        self._capture = capture
        self._on_limit = on_limit
        self._saved: list[tuple[int, int]] = []
        self._readers: list[threading.Thread] = []

    def start(self) -> None:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            r, w = os.pipe()
            self._saved.append((fd, os.dup(fd)))
            os.dup2(w, fd)
            os.close(w)
            reader = threading.Thread(
                target=self._read, args=(r, name), name=f"interpreter-{name}", daemon=True
            )
            reader.start()
            self._readers.append(reader)

    def stop(self) -> None:
        """Restore the descriptors and take in what was written; a process the
        code left running that still holds a pipe is not waited for."""
        for fd, saved in self._saved:
            os.dup2(saved, fd)
            os.close(saved)
        for reader in self._readers:
            reader.join(_DRAIN_SECONDS)

    def _read(self, r: int, name: str) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            while chunk := os.read(r, 1 << 16):
                try:
                    self._capture.write(name, decoder.decode(chunk))
                except OutputLimitExceeded:
                    self._on_limit()
                    return
            tail = decoder.decode(b"", final=True)
            if tail:
                self._capture.write(name, tail)
        except OutputLimitExceeded:
            self._on_limit()
        except OSError:
            return
        finally:
            os.close(r)


# ---- Tools ----------------------------------------------------------------------------


@dataclass
class _Param:
    name: str
    required: bool


def tool_params(spec: plugin_pb2.ToolSpec) -> list[_Param]:
    """Return a tool's parameters from its JSON schema: the properties in order,
    required ones first. Raises ValueError for a schema that is not an object's."""
    if not spec.args_json_schema.strip():
        return []
    try:
        schema = json.loads(spec.args_json_schema)
    except json.JSONDecodeError as err:
        raise ValueError(f"tool {spec.name}: args_json_schema is not JSON: {err}") from None
    if not isinstance(schema, dict):
        raise ValueError(f"tool {spec.name}: args_json_schema is not a JSON object")
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    if not isinstance(props, dict):
        raise ValueError(f"tool {spec.name}: properties is not an object")
    params = [_Param(name, name in required) for name in props]
    for p in params:
        if not p.name.isidentifier() or keyword.iskeyword(p.name):
            raise ValueError(f"tool {spec.name}: argument {p.name!r} is not a Python name")
    return sorted(params, key=lambda p: not p.required)


ToolCaller = Callable[[str, dict[str, object]], object]
"""Sends one tool call to the host and returns its result (or raises ToolError)."""


def make_tool_function(
    spec: plugin_pb2.ToolSpec, call: Callable[[], ToolCaller | None]
) -> Callable[..., object]:
    """Return the Python function that stands for a host tool in a namespace.

    Arguments are bound by position or by name to the tool's parameters; missing
    required arguments and unknown ones raise TypeError naming the tool. ``call``
    returns the current execution's caller (None outside an execution).
    """
    params = tool_params(spec)
    names = [p.name for p in params]
    name = spec.name

    def tool(*args: object, **kwargs: object) -> object:
        if len(args) > len(names):
            raise TypeError(
                f"{name}() takes {len(names)} positional argument(s) but {len(args)} were given"
                f" (its arguments: {', '.join(names) or 'none'})"
            )
        bound: dict[str, object] = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(
                    f"{name}() got an unexpected keyword argument {key!r}"
                    f" (its arguments: {', '.join(names) or 'none'})"
                )
            if key in bound:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            bound[key] = value
        missing = [p.name for p in params if p.required and p.name not in bound]
        if missing:
            raise TypeError(f"{name}() missing required argument(s): {', '.join(missing)}")
        caller = call()
        if caller is None:
            raise ToolError(f"tool {name} can only be called while code runs")
        return caller(name, bound)

    tool.__name__ = name
    tool.__qualname__ = name
    tool.__doc__ = spec.description or None
    return tool


def _submit(*args: object, **fields: object) -> NoReturn:
    """SUBMIT(**fields) ends the code with the final outputs; SUBMIT(x) submits
    {"output": x}."""
    if args and fields:
        raise TypeError("SUBMIT takes either keyword arguments (the output fields) or one value")
    if len(args) > 1:
        raise TypeError(f"SUBMIT takes one positional argument, {len(args)} were given")
    raise _Submit(dict(fields) if not args else {"output": args[0]})


# ---- Sessions and executions ----------------------------------------------------------


@dataclass
class Session:
    """A persistent namespace and the tools it was created with."""

    id: str
    tools: list[plugin_pb2.ToolSpec]
    max_output_bytes: int
    output_limit_bytes: int
    namespace: dict[str, Any] = field(default_factory=dict)
    caller: ToolCaller | None = None

    def reset(self) -> None:
        """Give the session a fresh namespace with its tools and SUBMIT."""
        ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": dict(_BUILTINS)}
        for spec in self.tools:
            ns[spec.name] = make_tool_function(spec, lambda: self.caller)
        ns["SUBMIT"] = _submit
        ns["ToolError"] = ToolError
        self.namespace = ns


def _json_or_empty(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return ""


def compile_cell(code: str) -> tuple[Any, Any | None]:
    """Compile code as a REPL cell: the statements, and the last one separately when it
    is an expression (its value is the result). Raises SyntaxError."""
    tree = ast.parse(code, CODE_FILENAME, "exec")
    last = None
    tail = tree.body[-1] if tree.body else None
    if isinstance(tail, ast.Expr):
        tree.body.pop()
        last = compile(ast.Expression(tail.value), CODE_FILENAME, "eval")
    return compile(tree, CODE_FILENAME, "exec"), last


def code_objects(*compiled: object) -> set[types.CodeType]:
    """Every code object in compiled code: the module's, and its functions', classes'
    and comprehensions', however deeply nested."""
    out: set[types.CodeType] = set()
    todo = [c for c in compiled if isinstance(c, types.CodeType)]
    while todo:
        co = todo.pop()
        if co in out:
            continue
        out.add(co)
        todo.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
    return out


def _user_stack(
    tb: types.TracebackType | None, source: Sequence[str], cell: set[types.CodeType]
) -> traceback.StackSummary:
    """The frames of tb that are not this plugin's, with the source line of those that
    run the current cell's code (earlier cells' functions also live in CODE_FILENAME,
    whose lines are not the current cell's)."""
    frames = []
    while tb is not None:
        co = tb.tb_frame.f_code
        lineno = tb.tb_lineno
        if co.co_filename != __file__:
            ours = co.co_filename == CODE_FILENAME
            line = None
            if ours and co in cell and 0 < lineno <= len(source):
                line = source[lineno - 1]
            frames.append(
                traceback.FrameSummary(
                    co.co_filename, lineno, co.co_name, lookup_line=not ours, line=line
                )
            )
        tb = tb.tb_next
    return traceback.StackSummary.from_list(frames)


def format_traceback(
    err: BaseException, source: str = "", cell: set[types.CodeType] | None = None
) -> str:
    """The exception's traceback trimmed to what the code's author (the LM) can act on:
    without the plugin's own frames, wherever they are (the top of the stack, a tool's
    function, the tool call's wait), and with the lines of source, the current cell's
    code (compiled into the code objects ``cell``), where its frames are. Chained
    exceptions are trimmed the same way."""
    te = traceback.TracebackException(type(err), err, None, lookup_lines=False)
    lines = source.splitlines()
    seen: set[int] = set()

    def trim(t: traceback.TracebackException | None, exc: BaseException | None) -> None:
        if t is None or exc is None or id(exc) in seen:
            return
        seen.add(id(exc))
        t.stack = _user_stack(exc.__traceback__, lines, cell or set())
        trim(t.__cause__, exc.__cause__)
        trim(t.__context__, exc.__context__)

    trim(te, err)
    return "".join(te.format())


def _raise_in_thread(thread_id: int, exc: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc))


def _clear_raised(thread_id: int) -> None:
    """Drop an exception _raise_in_thread left pending in a thread."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


def _describe(value: object) -> tuple[str, str]:
    """repr() and JSON of a result value ("" for JSON it has none)."""
    try:
        text = repr(value)
    except Exception as err:
        text = f"<repr failed: {type(err).__name__}>"
    return text, _json_or_empty(value)


class _Execution:
    """One run of code on its own thread, talking to the execute stream through queues."""

    def __init__(self, session: Session, code: str, timeout: float) -> None:
        self.session = session
        self.code = code
        self.timeout = timeout
        self.capture = _Capture(session.max_output_bytes, session.output_limit_bytes)
        # The cell's code objects, once compiled: frames running them show their
        # source lines in tracebacks.
        self.cell: set[types.CodeType] = set()
        self.out: queue.Queue[plugin_pb2.ExecuteServerMessage | None] = queue.Queue()
        self.pending: dict[str, queue.Queue[plugin_pb2.ToolResult]] = {}
        self.pending_lock = threading.Lock()
        self.tool_calls = 0
        self.finished = threading.Event()
        self.timed_out = False
        # running is True while the code (or its value's repr) runs: interrupts
        # are raised only then.
        self.running = True
        self.running_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="interpreter-exec", daemon=True)

    # Runs on the execution's thread.
    def _run(self) -> None:
        stdout, stderr = _install_routers()
        fds = _FdCapture(self.capture, lambda: self._interrupt(OutputLimitExceeded))
        fds.start()
        stdout.bind(True)
        stderr.bind(True)
        self.session.caller = self._call_tool
        try:
            msg = self._execute()
        finally:
            self.session.caller = None
            stdout.bind(False)
            stderr.bind(False)
            fds.stop()
            # sys.setrecursionlimit(10**8) in one execution must not carry over.
            sys.setrecursionlimit(_RECURSION_LIMIT)
        if self.capture.limit_hit and msg.WhichOneof("msg") != "error":
            msg = self._error(OutputLimitExceeded(), "output")
        # What the pipes took in after the message was built.
        final = msg.result if msg.WhichOneof("msg") == "result" else msg.error
        final.output.CopyFrom(self.capture.message())
        if not self.finished.is_set():
            self.finished.set()
            self.out.put(msg)
            self.out.put(None)

    def _interrupt(self, exc: type[BaseException]) -> None:
        """Raise exc in the code's thread, if the code still runs."""
        with self.running_lock:
            ident = self.thread.ident
            if self.running and ident is not None:
                _raise_in_thread(ident, exc)

    def _code_done(self) -> None:
        """Mark the code as ended and drop an interrupt raised too late to land in it,
        so that none lands in the plugin's own code."""
        with self.running_lock:
            self.running = False
            ident = self.thread.ident
            if ident is not None:
                _clear_raised(ident)

    def _execute(self) -> plugin_pb2.ExecuteServerMessage:
        try:
            body, last = compile_cell(self.code)
        except SyntaxError as err:
            self._code_done()
            return self._error(err, "")
        self.cell = code_objects(body, last)
        ns = self.session.namespace
        value_repr = value_json = ""
        try:
            try:
                exec(body, ns)  # noqa: S102 - running the LM's code is this plugin's purpose
                value = eval(last, ns) if last is not None else None  # noqa: S307
                if value is not None:
                    value_repr, value_json = _describe(value)
            finally:
                self._code_done()
        except _Submit as sub:
            return plugin_pb2.ExecuteServerMessage(
                result=plugin_pb2.ExecResult(
                    output=self.capture.message(),
                    submitted=True,
                    submit_json=json.dumps(sub.fields, default=repr),
                    tool_calls=self.tool_calls,
                )
            )
        except ExecutionTimeout as err:
            return self._error(err, "timeout")
        except OutputLimitExceeded as err:
            return self._error(err, "output")
        except MemoryError as err:
            return self._error(err, "memory")
        except OSError as err:
            # The sandbox's file size limit (RLIMIT_FSIZE; CPython ignores SIGXFSZ) or
            # its full tmpfs /scratch or /tmp: the interpreter's disk is not fit to
            # reuse.
            return self._error(err, _DISK_LIMITS.get(err.errno or 0, ""))
        except BaseException as err:
            return self._error(err, "")
        result = plugin_pb2.ExecResult(
            output=self.capture.message(),
            tool_calls=self.tool_calls,
            value_repr=value_repr,
            value_json=value_json,
        )
        return plugin_pb2.ExecuteServerMessage(result=result)

    def _error(self, err: BaseException, killed_by: str) -> plugin_pb2.ExecuteServerMessage:
        # An interrupt raised in the code (by its class) gets its message here, and
        # keeps its traceback: where the code was when it was stopped.
        if isinstance(err, ExecutionTimeout) and not err.args:
            err = ExecutionTimeout(
                f"the code ran past its timeout of {self.timeout:g}s"
            ).with_traceback(err.__traceback__)
        if isinstance(err, OutputLimitExceeded) and not err.args:
            limit = self.capture.limit_bytes
            err = OutputLimitExceeded(
                f"the code wrote more than {limit} bytes and was stopped"
            ).with_traceback(err.__traceback__)
        tb = format_traceback(err, self.code, self.cell)
        return plugin_pb2.ExecuteServerMessage(
            error=plugin_pb2.ExecError(
                type=type(err).__name__,
                message=str(err),
                traceback=tb,
                output=self.capture.message(),
                killed_by=killed_by,
                tool_calls=self.tool_calls,
            )
        )

    def _call_tool(self, name: str, args: dict[str, object]) -> object:
        try:
            args_json = json.dumps(args)
        except (TypeError, ValueError) as err:
            raise ToolError(
                f"tool {name}: the arguments are not JSON-serializable: {err}"
            ) from None
        call_id = uuid.uuid4().hex
        box: queue.Queue[plugin_pb2.ToolResult] = queue.Queue(maxsize=1)
        with self.pending_lock:
            self.pending[call_id] = box
        self.tool_calls += 1
        self.out.put(
            plugin_pb2.ExecuteServerMessage(
                tool_call=plugin_pb2.ToolCall(call_id=call_id, name=name, args_json=args_json)
            )
        )
        try:
            # Short waits, so that the timeout's exception gets through.
            while True:
                try:
                    result = box.get(timeout=0.05)
                    break
                except queue.Empty:
                    continue
        finally:
            with self.pending_lock:
                self.pending.pop(call_id, None)
        if result.error:
            raise ToolError(result.error)
        if not result.result_json:
            return None
        return json.loads(result.result_json)

    # Called from the stream's reader.
    def deliver(self, result: plugin_pb2.ToolResult) -> None:
        with self.pending_lock:
            box = self.pending.get(result.call_id)
        if box is None:
            _log.warning("tool result for no pending call", extra={"call_id": result.call_id})
            return
        box.put(result)

    def on_timeout(self) -> plugin_pb2.ExecuteServerMessage | None:
        """Raise ExecutionTimeout in the code; return the error to answer if the code
        does not stop within the grace period (None when it stopped)."""
        self.timed_out = True
        self._interrupt(ExecutionTimeout)
        self.thread.join(_TIMEOUT_GRACE_SECONDS)
        if not self.thread.is_alive():
            return None
        if self.finished.is_set():
            return None
        self.finished.set()
        return self.timeout_error("did not stop: this interpreter must be discarded")

    def timeout_error(self, what: str) -> plugin_pb2.ExecuteServerMessage:
        return plugin_pb2.ExecuteServerMessage(
            error=plugin_pb2.ExecError(
                type="ExecutionTimeout",
                message=f"the code ran past its timeout of {self.timeout:g}s and {what}",
                output=self.capture.message(),
                killed_by="timeout",
                tool_calls=self.tool_calls,
            )
        )


class InterpreterService(plugin_pb2_grpc.InterpreterServicer):
    """The Interpreter service: sessions by id. Safe for concurrent use; executions run
    one at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._exec_lock = threading.Lock()

    def _session(self, session_id: str, context: grpc.ServicerContext) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no session {session_id!r}")
        return session

    def StartSession(
        self, request: plugin_pb2.StartSessionRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.StartSessionResponse:
        try:
            max_output = _int_option(request.options, "max_output_bytes", DEFAULT_MAX_OUTPUT_BYTES)
            limit = _int_option(
                request.options, "output_limit_bytes", OUTPUT_LIMIT_FACTOR * max_output
            )
            unknown = set(request.options) - {"max_output_bytes", "output_limit_bytes"}
            if unknown:
                raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")
            names: set[str] = set()
            for spec in request.tools:
                if not spec.name.isidentifier() or keyword.iskeyword(spec.name):
                    raise ValueError(f"tool name {spec.name!r} is not a Python name")
                if spec.name in names or spec.name in ("SUBMIT", "ToolError"):
                    raise ValueError(f"tool name {spec.name!r} is taken")
                names.add(spec.name)
                tool_params(spec)
        except ValueError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        session = Session(
            id=uuid.uuid4().hex,
            tools=list(request.tools),
            max_output_bytes=max_output,
            output_limit_bytes=limit,
        )
        session.reset()
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this interpreter holds {MAX_SESSIONS} sessions: stop one first",
                )
            self._sessions[session.id] = session
        _log.debug("session started", extra={"session": session.id, "tools": len(names)})
        return plugin_pb2.StartSessionResponse(session_id=session.id)

    def Reset(
        self, request: plugin_pb2.ResetRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.ResetResponse:
        session = self._session(request.session_id, context)
        with self._exec_lock:
            session.reset()
        return plugin_pb2.ResetResponse()

    def StopSession(
        self, request: plugin_pb2.StopSessionRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.StopSessionResponse:
        with self._lock:
            self._sessions.pop(request.session_id, None)
        return plugin_pb2.StopSessionResponse()

    def Execute(
        self,
        request_iterator: Iterator[plugin_pb2.ExecuteClientMessage],
        context: grpc.ServicerContext,
    ) -> Iterator[plugin_pb2.ExecuteServerMessage]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("msg") != "code":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be the code")
        code = first.code
        session = self._session(code.session_id, context)
        if code.timeout_seconds < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "timeout_seconds is negative")
        if not self._exec_lock.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "another execution is running in this interpreter",
            )
        released = False

        def release() -> None:
            # Before the final answer goes out: the host may send the next
            # code as soon as it has it.
            nonlocal released
            if not released:
                released = True
                self._exec_lock.release()

        try:
            for msg in self._execute(session, code, request_iterator, context):
                if msg.WhichOneof("msg") in ("result", "error"):
                    release()
                yield msg
        finally:
            release()

    def _execute(
        self,
        session: Session,
        code: plugin_pb2.ExecuteCode,
        requests: Iterator[plugin_pb2.ExecuteClientMessage],
        context: grpc.ServicerContext,
    ) -> Iterator[plugin_pb2.ExecuteServerMessage]:
        run = _Execution(session, code.code, code.timeout_seconds)
        reader = threading.Thread(
            target=_read_results, args=(requests, run), name="interpreter-read", daemon=True
        )
        started = time.monotonic()
        run.thread.start()
        reader.start()
        deadline = started + code.timeout_seconds if code.timeout_seconds > 0 else None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = run.out.get(timeout=wait)
            except queue.Empty:
                if run.timed_out:
                    # The code stopped but its answer never came (the timeout's
                    # exception hit the thread while it was answering).
                    yield run.timeout_error("did not answer after its timeout")
                    return
                late = run.on_timeout()
                if late is not None:
                    yield late
                    return
                deadline = time.monotonic() + 2 * _TIMEOUT_GRACE_SECONDS
                continue
            if msg is None:
                return
            if not context.is_active():
                return
            yield msg


def _read_results(requests: Iterator[plugin_pb2.ExecuteClientMessage], run: _Execution) -> None:
    try:
        for msg in requests:
            if msg.WhichOneof("msg") == "tool_result":
                run.deliver(msg.tool_result)
    except grpc.RpcError:
        return
    except ValueError:
        # The stream was closed under the iterator.
        return


def _int_option(options: Mapping[str, str], key: str, default: int) -> int:
    raw = options.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"option {key}={raw!r} is not an integer") from None
    if value <= 0:
        raise ValueError(f"option {key}={value} must be positive")
    return value


def register(server: grpc.Server) -> None:
    """Add the Interpreter service to a plugin's server."""
    plugin_pb2_grpc.add_InterpreterServicer_to_server(InterpreterService(), server)


_M_ARENA_MAX = -8
"""glibc's mallopt parameter for the number of malloc arenas."""


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (False where that cannot be done: not glibc).

    glibc gives threads that allocate arenas of their own, 64 MiB of address space
    each, up to eight per core: with the gRPC server's threads that is most of the
    sandbox's address-space limit (RLIMIT_AS) before the code allocates anything, and
    the code's allocations then fail with MemoryError far below the memory limit. Two
    arenas serve one execution at a time well."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


def main() -> NoReturn:
    scratch = os.environ.get(SCRATCH_DIR_ENV, "")
    if scratch:
        os.chdir(scratch)
    limit_malloc_arenas()
    sdk.serve(NAME, __version__, CAPABILITIES, register, details={"cwd": os.getcwd()})


if __name__ == "__main__":
    main()
