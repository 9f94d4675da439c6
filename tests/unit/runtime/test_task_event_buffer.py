"""An owner's task event buffer (no processes): one record per attempt, reported once (sealed) when it starts and
finishes between two reports, as it is when still pending, and again when it changed or ended."""

from __future__ import annotations

import os
from types import SimpleNamespace

from ray._common import task_events as te
from ray._common.ids import JobID, TaskID
from ray.core_worker.task_events import TaskEventBuffer


class _Options:  # a remote function's options: described by identity, once per batch
    name = "f"


def _buffer() -> TaskEventBuffer:
    # The buffer reads only its process's driver task id when made; reporting (`flush`) needs a raylet, which the
    # integration tests have.
    return TaskEventBuffer(SimpleNamespace(driver_task_id=TaskID.for_driver(JobID.from_int(1))))


def _reported(buffer: TaskEventBuffer) -> list[tuple]:
    return [(r[te.A_TASK_ID], r[te.A_END_STATE], r[te.A_PUSHED_T] is not None)
            for r in buffer._attempts_to_report()]


def _sealed(buffer: TaskEventBuffer) -> list[bytes]:
    sealed, buffer.sealed_attempts = buffer.sealed_attempts, []
    return [r[te.A_TASK_ID] for r in sealed]


def test_an_attempt_is_reported_when_it_starts_again_when_it_changes_and_when_it_ends():
    buffer = _buffer()
    options = _Options()
    quick = buffer.submitted(b"quick", 0, options, None, waits_for_args=False)
    slow = buffer.submitted(b"slow", 0, options, None, waits_for_args=True)
    buffer.pushed(quick)
    buffer.ended(quick, te.FINISHED, None, "worker-1", (5.0,))
    # One report: the quick one once, sealed (nothing else will name it); the slow one as it is.
    assert _reported(buffer) == [(b"slow", None, False)]
    assert _sealed(buffer) == [b"quick"]
    assert quick[te.A_NODE_T] is not None and quick[te.A_ARGS_T] is None  # nothing to wait for
    assert slow[te.A_ARGS_T] is not None and slow[te.A_NODE_T] is None
    assert _reported(buffer) == []  # nothing changed since
    buffer.assigned(slow)
    buffer.pushed(slow)  # two changes, one report
    assert _reported(buffer) == [(b"slow", None, True)]
    buffer.ended(slow, te.FAILED, {"error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""})
    assert _reported(buffer) == [(b"slow", te.FAILED, True)]
    assert _reported(buffer) == [] and _sealed(buffer) == []


def test_only_a_finished_attempt_that_no_other_report_names_is_sealed():
    buffer = _buffer()
    options = _Options()
    sealed, failed, seen_running, reported_before = (
        buffer.submitted(name, 0, options, None, waits_for_args=False)
        for name in (b"sealed", b"failed", b"seen-running", b"reported-before"))
    assert _reported(buffer) == [(name, None, False) for name in (b"sealed", b"failed", b"seen-running",
                                                                  b"reported-before")]
    again = buffer.submitted(b"sealed", 1, options, None, waits_for_args=False)  # a retry: a new attempt
    buffer.ended(again, te.FINISHED, None, "worker-1", (5.0,))
    buffer.ended(failed, te.FAILED, {"error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""})
    buffer.ended(seen_running, te.FINISHED, None, "worker-1", (5.0,), ran_reported=True)
    buffer.ended(reported_before, te.FINISHED, None, "worker-1", (5.0,))
    resent = buffer.submitted(b"resent", 0, options, None, waits_for_args=True)
    buffer.pushed(resent)
    buffer.resent(resent)  # an actor call sent again after a restart: the dead worker may have reported it
    buffer.pushed(resent)
    buffer.ended(resent, te.FINISHED, None, "worker-2", (6.0,))
    # Only the retry, which no batch named, is sealed; the rest merge with what the GCS has of them.
    assert _sealed(buffer) == [b"sealed"]
    assert _reported(buffer) == [(b"failed", te.FAILED, False), (b"seen-running", te.FINISHED, False),
                                 (b"reported-before", te.FINISHED, False), (b"resent", te.FINISHED, True)]
    assert buffer.sealed_attempts == [] and _reported(buffer) == []


def test_a_worker_reports_only_the_tasks_still_running_when_a_report_goes_out():
    buffer = _buffer()
    buffer.run_started(b"short", 0, (10, 0))
    assert buffer.run_ended(b"short") is False  # its owner learns of it from the reply, and seals it
    started = buffer.run_started(b"long", 1, (10, 0))
    buffer._report_running()
    buffer._report_running()  # once
    assert buffer.events == [(b"long", 1, te.RUNNING, started, (10, 0))]
    assert buffer.run_ended(b"long") is True  # the reply says so: its owner's record merges with this report


def test_with_events_off_nothing_is_kept():
    os.environ["RAY_enable_task_events"] = "0"
    try:
        from ray._common import config as config_module

        config_module._config = None
        buffer = _buffer()
        assert buffer.submitted(b"t", 0, _Options(), None, waits_for_args=False) is None
        buffer.ended(None, te.FINISHED)
        assert buffer._attempts_to_report() == [] and buffer.events == []
    finally:
        del os.environ["RAY_enable_task_events"]
        config_module._config = None
