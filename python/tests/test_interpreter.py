"""The interpreter plugin: sessions, REPL results, captured and capped output, tools over
the execute stream, SUBMIT, timeouts, reset; through an in-process gRPC server and as a
plugin process."""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures

import grpc
import pytest

from conftest import Launch
from dspex_plugins import interpreter
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc

INTERPRETER = ("-m", "dspex_plugins.interpreter")

ToolFn = Callable[[dict[str, object]], object]


def schema(*required: str, optional: Sequence[str] = ()) -> str:
    props = {name: {"type": "string"} for name in (*required, *optional)}
    return json.dumps({"type": "object", "properties": props, "required": list(required)})


@pytest.fixture
def stub() -> Iterator[plugin_pb2_grpc.InterpreterStub]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    interpreter.register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield plugin_pb2_grpc.InterpreterStub(channel)
    finally:
        channel.close()
        server.stop(None)


def start(
    stub: plugin_pb2_grpc.InterpreterStub,
    tools: Sequence[plugin_pb2.ToolSpec] = (),
    options: Mapping[str, str] | None = None,
) -> str:
    resp = stub.StartSession(plugin_pb2.StartSessionRequest(tools=tools, options=options or {}))
    return str(resp.session_id)


def execute(
    stub: plugin_pb2_grpc.InterpreterStub,
    session: str,
    code: str,
    *,
    timeout: float = 10.0,
    tools: Mapping[str, ToolFn] | None = None,
) -> tuple[plugin_pb2.ExecuteServerMessage, list[plugin_pb2.ToolCall]]:
    """Run code, answering tool calls with tools (a raised exception is the tool's
    error); return the final message and the tool calls seen."""
    outbox: queue.Queue[plugin_pb2.ExecuteClientMessage | None] = queue.Queue()
    outbox.put(
        plugin_pb2.ExecuteClientMessage(
            code=plugin_pb2.ExecuteCode(session_id=session, code=code, timeout_seconds=timeout)
        )
    )

    def requests() -> Iterator[plugin_pb2.ExecuteClientMessage]:
        while (msg := outbox.get()) is not None:
            yield msg

    calls: list[plugin_pb2.ToolCall] = []
    final = None
    for msg in stub.Execute(requests(), timeout=timeout + 10):
        kind = msg.WhichOneof("msg")
        if kind == "tool_call":
            calls.append(msg.tool_call)
            result = plugin_pb2.ToolResult(call_id=msg.tool_call.call_id)
            try:
                value = (tools or {})[msg.tool_call.name](json.loads(msg.tool_call.args_json))
                result.result_json = json.dumps(value)
            except Exception as err:
                result.error = str(err)
            outbox.put(plugin_pb2.ExecuteClientMessage(tool_result=result))
        else:
            final = msg
    outbox.put(None)
    assert final is not None
    return final, calls


def test_namespace_persists_and_last_expression_is_the_result(
    stub: plugin_pb2_grpc.InterpreterStub,
) -> None:
    s = start(stub)
    msg, _ = execute(stub, s, "x = 6 * 7\nprint('hello')")
    assert msg.WhichOneof("msg") == "result"
    assert msg.result.output.stdout == "hello\n"
    assert msg.result.value_repr == ""
    msg, _ = execute(stub, s, "import math\nx + math.floor(0.5)")
    assert msg.result.value_repr == "42"
    assert msg.result.value_json == "42"
    msg, _ = execute(stub, s, "{'a': x}")
    assert json.loads(msg.result.value_json) == {"a": 42}
    msg, _ = execute(stub, s, "object()")
    assert msg.result.value_repr.startswith("<object object")
    assert msg.result.value_json == ""


def test_errors_carry_type_message_traceback_and_output(
    stub: plugin_pb2_grpc.InterpreterStub,
) -> None:
    s = start(stub)
    msg, _ = execute(stub, s, "print('before')\nimport sys\nprint('warn', file=sys.stderr)\n1/0")
    assert msg.WhichOneof("msg") == "error"
    assert msg.error.type == "ZeroDivisionError"
    assert msg.error.message == "division by zero"
    assert msg.error.traceback.startswith("Traceback (most recent call last):\n")
    assert 'File "<code>", line 4' in msg.error.traceback
    assert "interpreter.py" not in msg.error.traceback
    assert msg.error.output.stdout == "before\n"
    assert msg.error.output.stderr == "warn\n"
    assert msg.error.killed_by == ""
    msg, _ = execute(stub, s, "def f(:\n  pass")
    assert msg.error.type == "SyntaxError"
    msg, _ = execute(stub, s, "undefined_name")
    assert msg.error.type == "NameError"


def test_tracebacks_are_trimmed_to_the_code(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    s = start(stub, [plugin_pb2.ToolSpec(name="price", args_json_schema=schema("item"))])

    def boom(args: dict[str, object]) -> object:
        raise ValueError("no such item: pear")

    execute(stub, s, "def earlier():\n    return price(colour='red')")
    msg, _ = execute(stub, s, "def g():\n    return price('pear')\n\ng()", tools={"price": boom})
    assert msg.error.type == "ToolError"
    assert msg.error.traceback == (
        "Traceback (most recent call last):\n"
        '  File "<code>", line 4, in <module>\n'
        "    g()\n"
        '  File "<code>", line 2, in g\n'
        "    return price('pear')\n"
        "ToolError: no such item: pear\n"
    )
    # A function of an earlier cell: its frame, without a line of this cell's source.
    msg, _ = execute(stub, s, "x = 1\nearlier()")
    assert msg.error.type == "TypeError"
    assert msg.error.traceback == (
        "Traceback (most recent call last):\n"
        '  File "<code>", line 2, in <module>\n'
        "    earlier()\n"
        '  File "<code>", line 2, in earlier\n'
        "TypeError: price() got an unexpected keyword argument 'colour' (its arguments: item)\n"
    )
    # Chained exceptions are trimmed too; library frames the code called stay.
    msg, _ = execute(
        stub,
        s,
        "import json\ntry:\n    price('a')\nexcept ToolError:\n    json.loads('{')",
        tools={"price": boom},
    )
    assert msg.error.type == "JSONDecodeError"
    assert "interpreter.py" not in msg.error.traceback
    assert "json/decoder.py" in msg.error.traceback
    assert "ToolError: no such item: pear\n\nDuring handling" in msg.error.traceback
    msg, _ = execute(stub, s, "x = (")
    assert msg.error.type == "SyntaxError"
    assert "interpreter.py" not in msg.error.traceback
    assert 'File "<code>", line 1' in msg.error.traceback


def test_sessions_have_their_own_builtins(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    # (Replacing an attribute of the builtins module itself reaches the whole process:
    # the host gives a process that ran a session's code to no other session.)
    a, b = start(stub), start(stub)
    msg, _ = execute(stub, a, "__builtins__['len'] = None\n__builtins__['abs'] = None")
    assert msg.WhichOneof("msg") == "result"
    msg, _ = execute(stub, b, "len('ab'), abs(-1)")
    assert msg.result.value_repr == "(2, 1)"
    msg, _ = execute(stub, start(stub), "len('abc'), abs(-2)")
    assert msg.result.value_repr == "(3, 2)"


def test_recursion_limit_is_restored_for_the_next_execution(
    stub: plugin_pb2_grpc.InterpreterStub,
) -> None:
    s = start(stub)
    msg, _ = execute(stub, s, "import sys\nsys.getrecursionlimit()")
    default = msg.result.value_repr
    msg, _ = execute(stub, s, "sys.setrecursionlimit(100000)\nsys.getrecursionlimit()")
    assert msg.result.value_repr == "100000"
    msg, _ = execute(stub, s, "sys.getrecursionlimit()")
    assert msg.result.value_repr == default
    # Deep recursion at the default limit is an ordinary RecursionError; the
    # interpreter goes on.
    msg, _ = execute(stub, s, "def f(n):\n    return f(n + 1)\nf(0)")
    assert msg.error.type == "RecursionError"
    assert msg.error.killed_by == ""
    assert "[Previous line repeated" in msg.error.traceback
    msg, _ = execute(stub, s, "6 * 7")
    assert msg.result.value_repr == "42"


def test_tools_round_trip_over_the_stream(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    tools = [
        plugin_pb2.ToolSpec(
            name="price", description="price of an item", args_json_schema=schema("item")
        ),
        plugin_pb2.ToolSpec(name="qty", args_json_schema=schema("item", optional=["store"])),
    ]
    s = start(stub, tools)
    answers: dict[str, ToolFn] = {
        "price": lambda a: {"apple": 3}[str(a["item"])],
        "qty": lambda a: 5 if a.get("store") is None else 1,
    }
    msg, calls = execute(
        stub, s, "p = price('apple')\nq = qty(item='apple')\nprint(p * q)", tools=answers
    )
    assert msg.result.output.stdout == "15\n"
    assert msg.result.tool_calls == 2
    assert [c.name for c in calls] == ["price", "qty"]
    assert json.loads(calls[1].args_json) == {"item": "apple"}
    assert "price of an item" in (execute(stub, s, "price.__doc__")[0].result.value_repr)


def test_tool_errors_and_wrong_arguments_raise_clear_exceptions(
    stub: plugin_pb2_grpc.InterpreterStub,
) -> None:
    s = start(stub, [plugin_pb2.ToolSpec(name="price", args_json_schema=schema("item"))])

    def boom(args: dict[str, object]) -> object:
        raise ValueError("no such item: pear")

    msg, calls = execute(stub, s, "price('pear')", tools={"price": boom})
    assert msg.error.type == "ToolError"
    assert msg.error.message == "no such item: pear"
    assert len(calls) == 1
    msg, calls = execute(stub, s, "price(colour='red')", tools={"price": boom})
    assert msg.error.type == "TypeError"
    assert "unexpected keyword argument 'colour'" in msg.error.message
    assert "its arguments: item" in msg.error.message
    assert calls == []
    msg, _ = execute(stub, s, "price()")
    assert "missing required argument(s): item" in msg.error.message
    msg, _ = execute(stub, s, "price(1, 2)")
    assert "takes 1 positional argument(s) but 2 were given" in msg.error.message
    # A tool error the code catches is an ordinary exception.
    msg, _ = execute(
        stub,
        s,
        "try:\n  price('x')\nexcept ToolError as e:\n  r = str(e)\nr",
        tools={"price": boom},
    )
    assert msg.result.value_repr == "'no such item: pear'"


def test_submit_ends_the_code_with_the_outputs(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    s = start(stub)
    msg, _ = execute(
        stub,
        s,
        "print('a')\ntry:\n  SUBMIT(answer=42, note='x')\nexcept Exception:\n  pass\n"
        "print('never')",
    )
    assert msg.result.submitted
    assert json.loads(msg.result.submit_json) == {"answer": 42, "note": "x"}
    assert msg.result.output.stdout == "a\n"
    msg, _ = execute(stub, s, "SUBMIT({'answer': 1})")
    assert json.loads(msg.result.submit_json) == {"output": {"answer": 1}}
    msg, _ = execute(stub, s, "SUBMIT(1, answer=2)")
    assert msg.error.type == "TypeError"


def test_output_is_capped_and_a_flood_is_stopped(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    s = start(stub, options={"max_output_bytes": "10", "output_limit_bytes": "1000"})
    msg, _ = execute(stub, s, "print('0123456789abcdef')")
    assert msg.result.output.stdout == "0123456789"
    assert msg.result.output.truncated
    msg, _ = execute(stub, s, "while True:\n  print('x' * 100)")
    assert msg.error.type == "OutputLimitExceeded"
    assert msg.error.killed_by == "output"
    assert "interpreter.py" not in msg.error.traceback
    # A broad except does not swallow the limit.
    msg, _ = execute(
        stub, s, "while True:\n  try:\n    print('y' * 100)\n  except Exception:\n    pass"
    )
    assert msg.error.killed_by == "output"


def test_output_of_subprocesses_and_file_descriptors_is_captured(
    stub: plugin_pb2_grpc.InterpreterStub,
) -> None:
    s = start(stub, options={"max_output_bytes": "100", "output_limit_bytes": "100000"})
    code = (
        "import os, subprocess, sys\n"
        "os.write(1, b'fd one\\n')\n"
        "os.write(2, b'fd two\\n')\n"
        "subprocess.run([sys.executable, '-c', 'print(\"child\")'], check=True)\n"
        "print('python')"
    )
    msg, _ = execute(stub, s, code)
    assert msg.WhichOneof("msg") == "result", msg
    # One channel per stream: Python's, C's and the child's writes keep their order.
    assert msg.result.output.stdout == "fd one\nchild\npython\n"
    assert msg.result.output.stderr == "fd two\n"
    msg, _ = execute(stub, s, "import os\nwhile True:\n    os.write(1, b'x' * 10000)")
    assert msg.error.type == "OutputLimitExceeded"
    assert msg.error.killed_by == "output"
    assert len(msg.error.output.stdout) == 100
    # The plugin's own stderr is back: the next execution is fine.
    msg, _ = execute(stub, s, "print('again')")
    assert msg.result.output.stdout == "again\n"


def test_timeout_interrupts_the_code(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    s = start(stub)
    msg, _ = execute(
        stub, s, "while True:\n  try:\n    pass\n  except Exception:\n    pass", timeout=0.3
    )
    assert msg.error.type == "ExecutionTimeout"
    assert msg.error.killed_by == "timeout"
    assert "timeout of 0.3s" in msg.error.message
    # Where the code was when it was stopped.
    assert 'File "<code>", line 3, in <module>\n    pass\n' in msg.error.traceback or (
        'File "<code>", line 1, in <module>\n    while True:\n' in msg.error.traceback
    )
    msg, _ = execute(stub, s, "import time\ntime.sleep(0.05)\n'ok'", timeout=5)
    assert msg.result.value_repr == "'ok'"


def test_reset_and_stop(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    s = start(stub, [plugin_pb2.ToolSpec(name="price", args_json_schema=schema("item"))])
    execute(stub, s, "x = 1")
    stub.Reset(plugin_pb2.ResetRequest(session_id=s))
    msg, _ = execute(stub, s, "x")
    assert msg.error.type == "NameError"
    msg, _ = execute(stub, s, "callable(price) and callable(SUBMIT)")
    assert msg.result.value_repr == "True"
    stub.StopSession(plugin_pb2.StopSessionRequest(session_id=s))
    with pytest.raises(grpc.RpcError) as err:
        execute(stub, s, "1")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_sessions_are_separate(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    a, b = start(stub), start(stub)
    execute(stub, a, "x = 'a'")
    msg, _ = execute(stub, b, "x")
    assert msg.error.type == "NameError"


@pytest.mark.parametrize(
    ("tools", "options", "want"),
    [
        ([plugin_pb2.ToolSpec(name="not-a-name")], {}, "not a Python name"),
        ([plugin_pb2.ToolSpec(name="SUBMIT")], {}, "taken"),
        ([plugin_pb2.ToolSpec(name="t", args_json_schema="[")], {}, "not JSON"),
        ([], {"max_output_bytes": "-1"}, "must be positive"),
        ([], {"colour": "red"}, "unknown option"),
    ],
)
def test_bad_sessions_are_refused(
    stub: plugin_pb2_grpc.InterpreterStub,
    tools: list[plugin_pb2.ToolSpec],
    options: dict[str, str],
    want: str,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        start(stub, tools, options)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert want in str(err.value.details())


def test_one_execution_at_a_time(stub: plugin_pb2_grpc.InterpreterStub) -> None:
    s = start(stub)
    started = threading.Event()
    first: list[plugin_pb2.ExecuteServerMessage] = []

    def slow() -> None:
        started.set()
        first.append(execute(stub, s, "import time\ntime.sleep(0.5)\n1")[0])

    t = threading.Thread(target=slow)
    t.start()
    started.wait()
    time.sleep(0.2)
    with pytest.raises(grpc.RpcError) as err:
        execute(stub, s, "2")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    t.join()
    assert first[0].result.value_repr == "1"


def test_as_a_plugin_process(launch: Launch) -> None:
    plugin = launch(INTERPRETER)
    with plugin.channel() as channel:
        info = plugin_pb2_grpc.PluginInfoStub(channel).Info(plugin_pb2.InfoRequest(), timeout=5)
        assert list(info.capabilities) == ["interpreter"]
        stub = plugin_pb2_grpc.InterpreterStub(channel)
        s = start(stub)
        msg, _ = execute(stub, s, "print('out')\nimport os\nos.getpid()")
        assert msg.result.output.stdout == "out\n"
        assert msg.result.value_repr == str(plugin.pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_arenas_can_be_capped() -> None:
    # In the plugin process (main), so that the gRPC threads' arenas do not take the
    # sandbox's address space.
    assert interpreter.limit_malloc_arenas(8) is True
