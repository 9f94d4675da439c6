"""The framed protocol's contract (ray.protocol.messages): one place declares every message, the code sends
and handles only declared ones, each by its constant, and the dispatcher routes by it."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
from ray.protocol import actor_pb2 as apb
from ray.protocol import messages as msg
from ray.protocol.messages import (
    ActorMethodOptions,
    ActorTaskSpec,
    ArgKind,
    Dispatcher,
    TaskOptions,
    TaskSpec,
    handles,
)

RUNTIME = Path(__file__).resolve().parents[3] / "runtime" / "ray"
SEND_METHODS = ("request", "request_into", "notify")


def _runtime_sources() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(RUNTIME.rglob("*.py")) if "_pb2" not in p.name]


def _message_constant(node: ast.expr) -> str | None:
    """`msg.PUSH_TASK` / `PUSH_TASK` -> its value, if it names a message constant."""
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    value = getattr(msg, name, None) if name else None
    return value if isinstance(value, str) and value in msg.MESSAGES else None


def _framed_sends() -> list[tuple[str, int, ast.expr]]:
    """Every `<connection>.request(X, ...)` / `.notify(X, ...)` of the runtime (aiohttp's session.request
    takes an HTTP method and is not one of them)."""
    sends = []
    for path, tree in _runtime_sources():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in SEND_METHODS and node.args):
                first = node.args[0]
                if isinstance(first, ast.Constant) and first.value in ("GET", "POST", "PUT", "DELETE"):
                    continue
                if path.name == "framing.py":
                    continue  # the transport itself
                sends.append((f"{path.relative_to(RUNTIME)}:{node.lineno}", node.lineno, first))
    return sends


def _handled() -> dict[str, list[str]]:
    handled: dict[str, list[str]] = {}
    for path, tree in _runtime_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "handles":
                        handled.setdefault(_message_constant(dec.args[0]) or "?", []).append(
                            f"{path.relative_to(RUNTIME)}:{node.name}")
    return handled


def test_every_framed_send_names_a_declared_message_by_its_constant():
    literal_or_unknown = [where for where, _, first in _framed_sends()
                          if _message_constant(first) is None and not _forwards_a_variable(first)]
    assert literal_or_unknown == []


def _forwards_a_variable(node: ast.expr) -> bool:
    # The borrower outbox and the executor's quiet notify forward a message chosen by their caller.
    return isinstance(node, ast.Name) and node.id in ("method", "message")


def test_every_declared_message_has_exactly_one_handler_and_a_sender():
    handled = _handled()
    assert "?" not in handled
    assert {m: h for m, h in handled.items() if len(h) != 1} == {}
    assert set(msg.MESSAGES) - set(handled) == set(), "declared but never handled"
    assert set(msg.MESSAGES) - _referenced_outside_handlers() == set(), "declared but never sent"


def _referenced_outside_handlers() -> set[str]:
    """Message constants used as call arguments (a send, or a helper that sends), not as `@handles(...)`."""
    used = set()
    for path, tree in _runtime_sources():
        if path.name == "messages.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) != "handles":
                used |= {m for arg in node.args if (m := _message_constant(arg)) is not None}
    return used


def test_argument_kinds_match_the_proto_enum():
    assert {k.name: k.value for k in ArgKind} == dict(apb.TaskArg.Kind.items())


def test_dispatcher_routes_by_message_and_refuses_what_its_process_does_not_receive():
    class Raylet:
        @handles(msg.RETURN_LEASE)
        def return_lease(self, conn, body):
            return ("returned", body["lease_id"])

    dispatch = Dispatcher(msg.RAYLET, Raylet())
    assert dispatch(None, msg.RETURN_LEASE, {"lease_id": 7}) == ("returned", 7)
    with pytest.raises(ValueError, match="does not handle 'push_task'"):
        dispatch(None, msg.PUSH_TASK, {})

    class Misplaced:
        @handles(msg.PUSH_TASK)
        def push_task(self, conn, body):
            return None

    with pytest.raises(ValueError, match="'push_task' is sent to the worker, not to the raylet"):
        Dispatcher(msg.RAYLET, Misplaced())
    with pytest.raises(ValueError, match="is not a message"):
        handles("no_such_message")


def test_task_specs_travel_as_plain_tuples_and_come_back_equal():
    options = TaskOptions("f", b"RemoteFunction:k", 1, {"CPU": 1.0}, {}, {}, 3, False)
    owner = {"worker_id": "w", "node_id": "n", "unix": "@u", "tcp": "1.2.3.4:5"}
    spec = TaskSpec(options, b"t" * 24, [(ArgKind.VALUE, b"x"), (ArgKind.BY_REF, b"o" * 28, owner)], ("y",),
                    [b"r" * 28], owner, "ns", None)
    frame = pickle.dumps(spec.to_wire(), protocol=5)
    assert b"TaskSpec" not in frame and b"ArgKind" not in frame  # builtins only: cheap to pickle
    assert TaskSpec.from_wire(pickle.loads(frame)) == spec
    call = ActorTaskSpec(ActorMethodOptions("m", "A.m", 2), b"t" * 24, [(ArgKind.STORED, b"o" * 28, (1, None))],
                         (), [b"r" * 28, b"s" * 28], owner, "ns")
    assert ActorTaskSpec.from_wire(pickle.loads(pickle.dumps(call.to_wire()))) == call


def test_actor_arguments_survive_the_proto_round_trip():
    args = [(ArgKind.VALUE, b"v"), (ArgKind.BY_REF, b"o" * 28, {"worker_id": "w", "node_id": "n", "unix": "",
                                                               "tcp": "h:1"}),
            (ArgKind.STORED, b"s" * 28, (1, None, False, "node", "h:2", 123))]
    spec = apb.ActorCreationSpec(args=msg.args_to_proto(args))
    assert msg.args_from_proto(apb.ActorCreationSpec.FromString(spec.SerializeToString()).args) == args
