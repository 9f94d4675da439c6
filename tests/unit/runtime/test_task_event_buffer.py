"""An owner's task event buffer (no processes): one record per attempt, kept on the submitter's own object for it;
packed once (sealed) when it finishes before any report named it, reported as it is when still pending after a
full interval, and again when it changed or ended."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

from ray._common import task_events as te
from ray._common.ids import JobID, TaskID
from ray.core_worker.task_events import OwnedAttempt, TaskEventBuffer


class _Options:  # a remote function's options: described by identity, once per batch
    name = "f"


class _Call(OwnedAttempt):  # a submitter's object for one attempt
    pass


def _buffer() -> TaskEventBuffer:
    # The buffer reads only its process's driver task id when made; reporting (`flush`) needs a raylet, which the
    # integration tests have.
    return TaskEventBuffer(SimpleNamespace(driver_task_id=TaskID.for_driver(JobID.from_int(1))))


def _id(name: bytes) -> bytes:
    return name.ljust(24, b".")  # a task id's size


def _submit(buffer: TaskEventBuffer, name: bytes, options: _Options, number: int = 0, *, waits: bool = False,
            call: _Call | None = None) -> _Call:
    call = call or _Call()
    buffer.submitted(call, _id(name), number, options, None, waits_for_args=waits)
    return call


def _reported(buffer: TaskEventBuffer, everything: bool = False) -> list[tuple]:
    return [(r[te.A_TASK_ID].rstrip(b"."), r[te.A_END_STATE], r[te.A_PUSHED_T] is not None)
            for r in buffer._attempts_to_report(everything)]


def _sealed(buffer: TaskEventBuffer) -> list[tuple]:
    sealed = buffer._sealed_to_report()
    if sealed is None:
        return []
    rows, counts, workers = sealed
    records = te.decode_sealed(rows, workers)
    assert sum(counts.values()) == len(records)
    return [(r[te.A_TASK_ID].rstrip(b"."), r[te.A_ATTEMPT], r[te.A_WORKER], r[te.A_RAN]) for r in records]


def test_an_attempt_is_reported_a_full_interval_after_it_starts_again_when_it_changes_and_when_it_ends():
    buffer = _buffer()
    options = _Options()
    quick = _submit(buffer, b"quick", options)
    slow = _submit(buffer, b"slow", options, waits=True)
    buffer.pushed(quick)
    buffer.ended(quick, te.FINISHED, None, "worker-1", (5.0,))
    # The quick one is packed as it ends, once (nothing else will name it). The slow one is not reported yet: it
    # was submitted since the last report, and most attempts end before the next one.
    assert _reported(buffer) == []
    assert _sealed(buffer) == [(b"quick", 0, "worker-1", (5.0,))]
    assert quick.ev_node_t == quick.ev_node_t and quick.ev_args_t != quick.ev_args_t  # nothing to wait for (NaN)
    assert slow.ev_args_t == slow.ev_args_t and slow.ev_node_t != slow.ev_node_t
    assert _reported(buffer) == [(b"slow", None, False)]  # still pending a full interval later: as it is
    assert _reported(buffer) == []  # nothing changed since
    buffer.assigned(slow)
    buffer.pushed(slow)  # two changes, one report
    assert _reported(buffer) == [(b"slow", None, True)]
    buffer.ended(slow, te.FAILED, {"error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""})
    assert _reported(buffer) == [(b"slow", te.FAILED, True)]
    assert _reported(buffer) == [] and _sealed(buffer) == []


def test_the_last_report_names_every_attempt_still_pending():
    buffer = _buffer()
    _submit(buffer, b"young", _Options())
    assert _reported(buffer, everything=True) == [(b"young", None, False)]
    assert _reported(buffer) == []


def test_only_a_finished_attempt_that_no_other_report_names_is_sealed():
    buffer = _buffer()
    options = _Options()
    sealed, failed, seen_running, reported_before = (
        _submit(buffer, name, options) for name in (b"sealed", b"failed", b"seen-running", b"reported-before"))
    assert _reported(buffer) == []
    assert _reported(buffer) == [(name, None, False) for name in (b"sealed", b"failed", b"seen-running",
                                                                  b"reported-before")]
    _submit(buffer, b"sealed", options, 1, call=sealed)  # a retry: a new attempt of the same task
    buffer.ended(sealed, te.FINISHED, None, "worker-1", (5.0, 10, 20, 15, 20))
    buffer.ended(failed, te.FAILED, {"error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""})
    buffer.ended(seen_running, te.FINISHED, None, "worker-1", (5.0,), ran_reported=True)
    buffer.ended(reported_before, te.FINISHED, None, "worker-1", (5.0,))
    resent = _submit(buffer, b"resent", options, waits=True)
    buffer.pushed(resent)
    buffer.resent(resent)  # an actor call sent again after a restart: the dead worker may have reported it
    buffer.pushed(resent)
    buffer.ended(resent, te.FINISHED, None, "worker-2", (6.0,))
    # Only the retry, which no batch named, is sealed (with where its output is); the rest merge with what the GCS
    # has of them.
    assert _sealed(buffer) == [(b"sealed", 1, "worker-1", (5.0, 10, 20, 15, 20))]
    assert _reported(buffer) == [(b"failed", te.FAILED, False), (b"seen-running", te.FINISHED, False),
                                 (b"reported-before", te.FINISHED, False), (b"resent", te.FINISHED, True)]
    assert _sealed(buffer) == [] and _reported(buffer) == []


def test_finished_books_an_attempt_as_ended_finished_does():
    # `finished` is the hot path's inline copy of `ended(attempt, FINISHED, ...)`: both must book every case alike.
    def scenario(end) -> tuple[list, list, dict]:
        buffer = _buffer()
        options = _Options()
        reported_before = _submit(buffer, b"reported-before", options)
        _reported(buffer)
        _reported(buffer)  # names it (pending a full interval): its end is merged, not sealed
        calls = [_submit(buffer, name, options) for name in (b"with-log", b"no-log", b"never-ran", b"seen-running")]
        buffer.pushed(calls[0])
        _submit(buffer, b"with-log", options, 1, call=calls[0])  # a retry: counted by attempt number
        end(buffer, calls[0], "w1", (5.0, 10, 20, 15, 20), False)
        end(buffer, calls[1], "w2", (6.0,), False)
        end(buffer, calls[2], None, None, False)
        end(buffer, calls[3], "w1", (7.0,), True)
        end(buffer, reported_before, "w1", (8.0,), False)
        rows, counts, workers = buffer._sealed_to_report()
        times = (te.A_ARGS_T, te.A_NODE_T, te.A_PUSHED_T, te.A_END_T)
        sealed = [tuple((t is not None) if i in times else t[1:] if i == te.A_SUBMITTED else t for i, t in enumerate(r))
                  for r in te.decode_sealed(rows, workers)]  # which times were set; the description but its key
        reported = [(r[te.A_TASK_ID].rstrip(b"."), r[te.A_END_STATE], r[te.A_RAN])
                    for r in buffer._attempts_to_report()]
        return sealed, reported, {number: n for (_key, number), n in counts.items()}

    by_ended = scenario(lambda b, call, worker, ran, seen: b.ended(call, te.FINISHED, None, worker, ran, seen))
    by_finished = scenario(lambda b, call, worker, ran, seen: b.finished(call, worker, ran, seen))
    sealed, reported, counts = by_finished
    assert [(r[te.A_TASK_ID].rstrip(b"."), r[te.A_ATTEMPT], r[te.A_WORKER], r[te.A_RAN]) for r in sealed] == [
        (b"with-log", 1, "w1", (5.0, 10, 20, 15, 20)), (b"no-log", 0, "w2", (6.0,)),
        (b"never-ran", 0, None, None)]
    assert reported == [(b"seen-running", te.FINISHED, (7.0,)), (b"reported-before", te.FINISHED, (8.0,))]
    assert counts == {0: 2, 1: 1}
    assert by_finished == by_ended


def test_sealed_rows_name_each_worker_once_and_count_by_function_and_attempt():
    buffer = _buffer()
    f, g = _Options(), _Options()
    for name, options, number, worker in ((b"a", f, 0, "w1"), (b"b", f, 0, "w2"), (b"c", g, 0, "w1"),
                                          (b"d", f, 1, "w1")):
        call = _submit(buffer, name, options, number)
        buffer.pushed(call)
        buffer.ended(call, te.FINISHED, None, worker, (1.0,))
    rows, counts, workers = buffer._sealed_to_report()
    assert workers == ("w1", "w2") and len(rows) == 4 * te.SEALED_ROW.size
    assert counts == {(id(f), 0): 2, (id(g), 0): 1, (id(f), 1): 1}


def test_a_worker_reports_only_the_tasks_still_running_when_a_report_goes_out():
    buffer = _buffer()
    buffer.run_started(b"short", 0, (10, 0))
    assert buffer.run_ended(b"short") is False  # its owner learns of it from the reply, and seals it
    started = buffer.run_started(b"long", 1, (10, 0))
    buffer._report_running()
    buffer._report_running()  # once
    assert buffer.events == [(b"long", 1, te.RUNNING, started, (10, 0))]
    assert buffer.run_ended(b"long") is True  # the reply says so: its owner's record merges with this report


def test_calls_a_user_thread_pushed_itself_are_booked_by_the_io_thread_before_it_reads_the_books():
    buffer = _buffer()
    options = _Options()
    quick, slow = _Call(), _Call()

    def push_from_a_user_thread() -> None:
        buffer.submitted_from_thread(quick, _id(b"quick"), options, None, b"actor")
        buffer.submitted_from_thread(slow, _id(b"slow"), options, None, b"actor")

    thread = threading.Thread(target=push_from_a_user_thread)
    thread.start()
    thread.join()
    assert quick.ev_args_t == quick.ev_pushed_t  # pending and pushed at once: that thread sent it
    buffer.ended(quick, te.FINISHED, None, "worker-1", (5.0,))  # the io thread books both first
    assert _sealed(buffer) == [(b"quick", 0, "worker-1", (5.0,))]
    assert buffer._descriptions == {id(options): options}
    assert _reported(buffer) == []  # the slow one is pending since the last report...
    assert _reported(buffer) == [(b"slow", None, True)]  # ...and reported as it is at the one after


def test_calls_a_user_thread_sent_and_read_itself_are_booked_in_order_by_the_io_thread():
    # A caller's own channel (actor_channels.py): the call's submission and its end are both recorded by user
    # threads, the end possibly by another thread than the one that sent it. The io thread takes both in, the
    # submission first, so the end finds its attempt and seals it.
    buffer = _buffer()
    options = _Options()
    read, failed, unread = _Call(), _Call(), _Call()

    def send_then_read() -> None:
        buffer.submitted_from_thread(read, _id(b"read"), options, None, b"actor")
        buffer.submitted_from_thread(failed, _id(b"failed"), options, None, b"actor")
        buffer.submitted_from_thread(unread, _id(b"unread"), options, None, b"actor")
        buffer.ended_from_thread(read, te.FINISHED, None, "worker-1", (5.0,))

    thread = threading.Thread(target=send_then_read)
    thread.start()
    thread.join()
    reader = threading.Thread(target=buffer.ended_from_thread, args=(failed, te.FAILED, {
        "error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""}, "worker-1", (6.0,)))
    reader.start()
    reader.join()
    assert _sealed(buffer) == []  # nothing booked yet: the io thread has not looked
    buffer._adopt()  # what the io thread does first at each report
    assert _sealed(buffer) == [(b"read", 0, "worker-1", (5.0,))]
    assert _reported(buffer) == [(b"failed", te.FAILED, True)]  # merged, with the time that thread sent it
    assert _reported(buffer) == [(b"unread", None, True)]  # still pending at the report after


def test_with_events_off_nothing_is_kept():
    os.environ["RAY_enable_task_events"] = "0"
    try:
        from ray._common import config as config_module

        config_module._config = None
        buffer = _buffer()
        call = _Call()
        buffer.submitted(call, _id(b"t"), 0, _Options(), None, waits_for_args=False)
        buffer.submitted_from_thread(call, _id(b"t"), _Options(), None, b"actor")
        buffer.ended(call, te.FINISHED)
        assert call.ev_id == () and not vars(call)  # nothing set on the call
        assert buffer._attempts_to_report(everything=True) == [] and buffer.events == []
        assert buffer._sealed_to_report() is None
    finally:
        del os.environ["RAY_enable_task_events"]
        config_module._config = None
