"""The core worker's task event buffer (Ray's TaskEventBuffer): state changes of the tasks this process owns
or runs, recorded on the hot path and reported off it.

An owner keeps one record per attempt it submits (`submitted` returns it; `assigned`, `pushed` and `ended` fill
in its times): a task that starts and ends between two reports travels as one record, not as one event per
state change, and the GCS merges it once. An attempt still pending when a report goes out is reported as it is
then, and again when it changes or ends. An attempt that finished before any report named it, and that its
executor did not report running, is sealed: the GCS stores those records without decoding them
(`ray._common.task_events.encode_sealed`). Everything else (a worker's RUNNING, a failure's traceback, actor
creation, the driver) is an event: one `list.append` of a tuple (`record`).

Every `task_events_report_interval_ms` the io thread swaps the buffers for empty ones, encodes them once
(`ray._common.task_events.encode_batch`) and sends them to the raylet (`TASK_EVENTS`), which forwards them to
the GCS. At most `task_events_max_num_status_events_buffer_on_worker` events (and as many attempt records) wait
between reports; more are counted as dropped and the count travels with the next batch.

An attempt's first report carries a cheap placeholder for the task's description (the shared options object,
not a dict made per task); it becomes a dict when the batch is encoded.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from ray import exceptions
from ray._common import task_events as te
from ray._common.config import config
from ray.protocol import messages as msg

_ERROR_TYPES: tuple[tuple[type, str], ...] = (
    (exceptions.TaskCancelledError, te.TASK_CANCELLED),
    (exceptions.WorkerCrashedError, te.WORKER_DIED),
    (exceptions.ActorUnschedulableError, te.TASK_UNSCHEDULABLE_ERROR),
    (exceptions.ActorDiedError, te.ACTOR_DIED),
    (exceptions.TaskUnschedulableError, te.TASK_UNSCHEDULABLE_ERROR),
    (exceptions.RuntimeEnvSetupError, te.RUNTIME_ENV_SETUP_FAILED),
    (exceptions.TaskPlacementGroupRemoved, te.TASK_PLACEMENT_GROUP_REMOVED),
    (exceptions.LocalRayletDiedError, te.LOCAL_RAYLET_DIED),
)


def error_type_of(error: BaseException) -> str:
    """Ray's ErrorType name for an exception a task failed with."""
    for cls, name in _ERROR_TYPES:
        if isinstance(error, cls):
            return name
    return te.TASK_EXECUTION_EXCEPTION


# The failure of an attempt that never ran because an argument's task failed or its object was lost.
ARGUMENT_FAILED = {"error_type": te.DEPENDENCY_RESOLUTION_FAILED,
                   "error_message": "An argument of the task failed or was lost; the task did not run."}


def failure(error: BaseException) -> dict[str, str]:
    """The extra of a FAILED event."""
    return {"error_type": error_type_of(error), "error_message": str(error)}


class TaskEventBuffer:
    def __init__(self, core_worker):
        self.cw = core_worker
        cfg = config()
        self.interval_s = cfg.task_events_report_interval_ms / 1000
        self.max_buffered = cfg.task_events_max_num_status_events_buffer_on_worker
        self.events: list[te.Event] = []
        # Owner attempt records (`te.Attempt`): ended since the last report (frozen, see `ended`), sealed ones
        # apart; submitted since then and still pending (by id: reported as they are at the next report); reported
        # before and changed since.
        self.sealed_attempts: list[tuple] = []
        self.ended_attempts: list[tuple] = []
        self.new_attempts: dict[int, list] = {}
        self.changed_attempts: list[list] = []
        # The tasks this worker runs now and no report named yet: task id -> (attempt, RUNNING time, log start or
        # None). A report takes them out (`_report_running`), so that exactly one of it and `run_ended` gets each.
        self.running: dict[bytes, tuple] = {}
        self._announce = False  # its log files are named in no batch yet
        self.dropped = 0
        self._descriptions: dict[int, Any] = {}  # id(options) -> options, for this batch's attempt records (io thread)
        self._handle = None
        self.enabled = cfg.enable_task_events and self.interval_s > 0
        self._driver_task = core_worker.driver_task_id.binary()
        # This worker's stdout and stderr file names (`set_log_files`): its batches name them, and the replies
        # and events carry only offsets in them.
        self.log_files: tuple[str, str] | tuple[()] | None = None
        if not self.enabled:
            self.record = _ignore  # type: ignore[method-assign]
            self.submitted = _ignore  # type: ignore[method-assign]
            self.assigned = self.pushed = self.resent = _ignore  # type: ignore[method-assign]
            self.ended = self.run_ended = _ignore  # type: ignore[method-assign]

    def record(self, task_id: bytes, attempt: int, state: str, extra: Any = None) -> None:
        """Any thread. The hot path: one length check and one append."""
        events = self.events
        if len(events) < self.max_buffered:
            events.append((task_id, attempt, state, time.time(), extra))
        else:
            self.dropped += 1

    # ------------------------------------------------------------------ an owner's attempts (io thread)
    def submitted(self, task_id: bytes, attempt: int, options, parent: bytes | None, waits_for_args: bool,
                  actor_id: bytes | None = None) -> list | None:
        """A new attempt of a task this process owns: PENDING_ARGS_AVAIL when it waits for arguments, else
        PENDING_NODE_ASSIGNMENT (the GCS adds PENDING_ARGS_AVAIL at the same time). Returns its record, which
        the other calls take (None with events off)."""
        key = id(options)
        self._descriptions[key] = options
        now = time.time()
        record = [task_id, attempt, (key, parent or self._driver_task, actor_id), now if waits_for_args else None,
                  None if waits_for_args else now, None, None, None, None, None, None, te.UNREPORTED]
        if len(self.new_attempts) < self.max_buffered:
            self.new_attempts[id(record)] = record
        else:
            self.dropped += 1
        return record

    def assigned(self, record: list) -> None:
        """Its arguments are ready: PENDING_NODE_ASSIGNMENT."""
        record[te.A_NODE_T] = time.time()
        self._changed(record)

    def pushed(self, record: list) -> None:
        """Sent to the worker that runs it: SUBMITTED_TO_WORKER."""
        record[te.A_PUSHED_T] = time.time()
        self._changed(record)

    def ended(self, record: list, state: str, extra: Any = None, worker_id: str | None = None,
              ran: tuple | None = None, ran_reported: bool = False) -> None:
        """FINISHED or FAILED (`extra`: the failure's error type and message); `ran`: the reply's account of the
        run by that worker (`te.Attempt`); `ran_reported`: whether that worker reported it running itself."""
        record[te.A_END_STATE] = state
        record[te.A_END_T] = time.time()
        record[te.A_EXTRA] = extra
        record[te.A_WORKER] = worker_id
        record[te.A_RAN] = ran
        self.new_attempts.pop(id(record), None)
        # Sealed when no report names this attempt but this one: no earlier batch of this owner, no executor's
        # RUNNING, no failure (whose executor reports its traceback).
        queue = self.sealed_attempts if (state == te.FINISHED and record[te.A_REPORTED] == te.UNREPORTED
                                         and not ran_reported) else self.ended_attempts
        # A tuple of atomic values: the collector untracks it at its first look. A list would be promoted through
        # every generation while it waits for the report, and the driver's collections grew with it (its GC time
        # per actor call, 4.7 -> 9.7 us).
        if len(queue) < self.max_buffered:
            queue.append(tuple(record))
        else:
            self.dropped += 1

    def resent(self, record: list) -> None:
        """The same attempt goes to another worker (an actor call retried after a restart): the worker that died
        may have reported it running, so its end is not sealed but merged with that report."""
        if record[te.A_REPORTED] == te.UNREPORTED:
            record[te.A_REPORTED] = te.REPORTED

    def _changed(self, record: list) -> None:
        if record[te.A_REPORTED] == te.REPORTED:  # reported before: report it again, once per batch
            record[te.A_REPORTED] = te.CHANGED
            self.changed_attempts.append(record)

    def _attempts_to_report(self) -> list[tuple | list]:
        """This batch's attempt records: those that ended, and those still pending that are new or changed."""
        attempts: list[tuple | list] = self.ended_attempts
        self.ended_attempts = []
        for pending in (self.new_attempts.values(), self.changed_attempts):
            for record in pending:
                if record[te.A_END_STATE] is None:
                    record[te.A_REPORTED] = te.REPORTED  # a later change or its end goes again
                    attempts.append(record)
        self.new_attempts, self.changed_attempts = {}, []
        return attempts

    # ------------------------------------------------------------------ the tasks this worker runs (any thread)
    def set_log_files(self, files: tuple[str, str] | tuple[()]) -> None:
        """Its executor's stdout and stderr files (() when they are not a worker's log files), named in its next
        batch even if it has nothing else to say: its tasks' owners name only this worker."""
        self.log_files = files
        self._announce = bool(files)

    def run_started(self, task_id: bytes, attempt: int, log_start: tuple[int, int] | None = None) -> float:
        """A task starts running here: its RUNNING time, which the reply carries to its owner. Reported from here
        only if it still runs when a batch goes out."""
        now = time.time()
        self.running[task_id] = (attempt, now, log_start)
        return now

    def run_ended(self, task_id: bytes) -> bool:
        """Whether a report of this worker named the task running (its reply says so: then its owner's record is
        not sealed). One atomic `dict.pop` on each side decides it, whichever thread comes first."""
        return self.running.pop(task_id, None) is None

    def _report_running(self) -> None:
        events, running = self.events, self.running
        for task_id in list(running):  # a copy: executor threads add and remove
            entry = running.pop(task_id, None)
            if entry is None:  # it ended meanwhile: its owner reports it
                continue
            if len(events) < self.max_buffered:
                events.append((task_id, entry[0], te.RUNNING, entry[1], entry[2]))  # when it started
            else:
                self.dropped += 1

    # ------------------------------------------------------------------ reporting (io thread)
    def start(self) -> None:
        if self.enabled:
            self._handle = self.cw.loop.call_later(self.interval_s, self._tick)

    def _tick(self) -> None:
        self.flush()
        if self.cw.connected or self._handle is not None:
            self._handle = self.cw.loop.call_later(self.interval_s, self._tick)

    def stop(self) -> None:
        """At shutdown (io thread): report what is left, stop the timer."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.flush()

    def flush(self) -> None:
        if self.running:
            self._report_running()
        if not self.events and not self.dropped and not self.ended_attempts and not self.sealed_attempts \
                and not self.new_attempts and not self.changed_attempts and not self._announce:
            return
        raylet = self.cw.raylet
        if raylet is None or raylet.closed:
            return
        batch, self.events = self.events, []
        attempts = self._attempts_to_report()
        sealed, self.sealed_attempts = self.sealed_attempts, []
        self._announce = False
        options, self._descriptions = self._descriptions, {}
        dropped, self.dropped = self.dropped, 0
        sender = {"worker_id": self.cw.worker_id.hex(), "node_id": self.cw.node_id, "pid": os.getpid(),
                  "job_id": self.cw.job_id.hex()}
        if self.log_files:
            sender["log_files"] = self.log_files
        payload = te.encode_batch(batch, sender, dropped, {k: self._describe(o) for k, o in options.items()},
                                  attempts, sealed)
        with contextlib.suppress(Exception):
            raylet.notify(msg.TASK_EVENTS, payload)

    def _describe(self, options: Any) -> dict:
        """A remote function's (TaskOptions) or actor method's (ActorMethodOptions) description."""
        job_id = self.cw.job_id.hex()
        if hasattr(options, "function_key"):
            strategy = options.strategy or {}
            return {"name": options.name, "func_or_class_name": options.name, "type": te.NORMAL_TASK,
                    "job_id": job_id, "required_resources": options.resources,
                    "runtime_env_info": {"serialized_runtime_env": _json(options.runtime_env)},
                    "placement_group_id": strategy.get("placement_group_id") or None, "language": "PYTHON"}
        return {"name": options.name, "func_or_class_name": options.name, "type": te.ACTOR_TASK, "job_id": job_id,
                "required_resources": {}, "runtime_env_info": {"serialized_runtime_env": "{}"},
                "placement_group_id": None, "language": "PYTHON"}


def _json(value: Any) -> str:
    import json

    return json.dumps(value or {}, sort_keys=True)


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None
