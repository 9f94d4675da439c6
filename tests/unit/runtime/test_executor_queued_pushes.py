"""A worker's queue of pushed normal tasks (`TaskExecutor`): a push asked back leaves a stale item in the main
thread's queue, and the same task pushed to this worker again must not be taken by it. The interleaving that lost
a task (bench/events_paired.py hung on it once in many thousand) is driven here step by step: the main thread's
dequeue of the stale item comes after the new push."""

from __future__ import annotations

import queue
from types import SimpleNamespace

from ray.core_worker import executor as executor_module
from ray.protocol import messages as msg


class _Conn:
    def __init__(self) -> None:
        self.replies: list[tuple[int, object]] = []

    def reply(self, rid: int, value: object) -> None:
        self.replies.append((rid, value))


def _executor() -> executor_module.TaskExecutor:
    ex = object.__new__(executor_module.TaskExecutor)
    ex.cw = SimpleNamespace(functions=None)
    ex.queue = queue.SimpleQueue()
    ex._not_started = {}
    ex._handing_back = False
    return ex


def _push(ex: executor_module.TaskExecutor, conn: _Conn, rid: int, task_id: bytes):
    options = msg.TaskOptions("f", b"key", 1, {"CPU": 1.0}, {}, {}, 3, False)
    spec = msg.TaskSpec(options, task_id, [], (), [task_id + b"\x01\x00\x00\x00"], {}, "")
    responder = ex.push_task(conn, {"spec": spec.to_wire(), "lease_id": 1})
    responder.conn, responder.rid = conn, rid  # as framing's dispatch does once the handler returns
    return responder


def _dequeue(ex: executor_module.TaskExecutor) -> object | None:
    """What the main thread's loop decides for its next queue item: the responder of a push it runs, or None for
    one it skips (handed back or cancelled before it started)."""
    _message, _body, responder = ex.queue.get_nowait()
    return responder if ex._starts(responder) else None


def test_a_push_asked_back_and_pushed_again_runs_once_and_answers_the_new_push():
    ex, conn = _executor(), _Conn()
    first = _push(ex, conn, rid=1, task_id=b"t" * 24)
    ex._hand_back()  # the owner asks it back: answered at once, its queue item stays
    assert conn.replies == [(1, {"returns": [], "handed_back": True})]
    again = _push(ex, conn, rid=2, task_id=b"t" * 24)  # pushed here again before the main thread looked
    assert _dequeue(ex) is None  # the stale item is skipped...
    assert _dequeue(ex) is again  # ...and the new push runs, answering request 2
    assert first is not again


def test_cancelling_a_queued_push_answers_it_once_and_the_main_thread_skips_it():
    ex, conn = _executor(), _Conn()
    _push(ex, conn, rid=1, task_id=b"a" * 24)
    kept = _push(ex, conn, rid=2, task_id=b"b" * 24)
    ex._error_reply = lambda call, error: {"cancelled": call.task_id}  # the reply's content is not the point
    assert ex._cancel_not_started(b"a" * 24) is True
    assert ex._cancel_not_started(b"a" * 24) is False  # answered once
    assert conn.replies == [(1, {"cancelled": b"a" * 24})]
    assert _dequeue(ex) is None and _dequeue(ex) is kept
