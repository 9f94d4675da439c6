"""The core worker's task event buffer (Ray's TaskEventBuffer): state changes of the tasks this process owns
or runs, recorded on the hot path and reported off it.

An owner notes each attempt it submits on the submitter's own object for it (`OwnedAttempt`: `submitted`,
`assigned`, `pushed` and `ended` set its times): a task that starts and ends between two reports travels once, not
as one event per state change. An attempt that finished before any report named it, and that its executor did not
report running, is sealed: `ended` (or `finished`, the same for the hot path's case, inline) packs it into the
batch's rows at once (`ray._common.task_events.SEALED_ROW`), which the GCS stores as they came. Everything else is
reported as a record (`te.Attempt`) that the GCS merges: an attempt still pending one full interval after it was
submitted (again when it changes, and when it ends), and any that failed, was retried or was reported running by
its executor. The rest (a worker's RUNNING, a failure's
traceback, actor creation, the driver) is an event: one `list.append` of a tuple (`record`).

Every `task_events_report_interval_ms` the io thread swaps the buffers for empty ones, encodes them once
(`ray._common.task_events.encode_batch`) and sends them to the raylet (`TASK_EVENTS`), which forwards them to
the GCS. At most `task_events_max_num_status_events_buffer_on_worker` events (and as many attempts of each kind)
wait between reports; more are counted as dropped and the count travels with the next batch.

An attempt names its task's description by a key (the shared options object's id, not a dict made per task); the
batch describes each key once.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
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


class OwnedAttempt:
    """What an owner's task events know of one attempt of a task it submitted, kept on the submitter's own object
    for it (`PendingTask`, the actor submitter's `_Call`, which derive from this). Class attributes are the
    defaults, so a call made with events off sets none. No record object of its own: objects made per call and
    kept until the next report were a third of what events cost the driver, most of it in its collector."""

    ev_id: tuple = ()  # (task id, attempt number, description key, parent task id, actor id or None)
    ev_args_t: float = te.NO_TIME  # PENDING_ARGS_AVAIL
    ev_node_t: float = te.NO_TIME  # PENDING_NODE_ASSIGNMENT
    ev_pushed_t: float = te.NO_TIME  # SUBMITTED_TO_WORKER
    ev_reported: int = te.UNREPORTED


class TaskEventBuffer:
    def __init__(self, core_worker):
        self.cw = core_worker
        cfg = config()
        self.interval_s = cfg.task_events_report_interval_ms / 1000
        self.max_buffered = cfg.task_events_max_num_status_events_buffer_on_worker
        self.events: list[te.Event] = []
        # Owned attempts still pending, by id: submitted since the last report (reported at the one after, if still
        # pending then: most finish first and are sealed), and submitted before it.
        self._pending_new: dict[int, OwnedAttempt] = {}
        self._pending_old: dict[int, OwnedAttempt] = {}
        # Attempts a user thread pushed itself (`submitted_from_thread`), with their descriptions, for the io thread
        # to take into the books above (`_adopt`) before it reads them.
        self._from_threads: deque[tuple[OwnedAttempt, Any]] = deque()
        self._ended_in_threads: deque[tuple] = deque()  # `ended_from_thread`'s arguments, for the io thread
        self.changed_attempts: list[OwnedAttempt] = []  # reported before, changed since
        self.ended_attempts: list[tuple] = []  # ended, not sealed: `te.Attempt` tuples
        # This batch's sealed rows (`te.SEALED_ROW`), their count by (description key, attempt number), a first
        # attempt's by description key alone, and the workers they name (id -> index in the batch's list).
        self._sealed = bytearray()
        self._sealed_counts: dict[int | tuple[int, int], int] = {}
        self._sealed_workers: dict[str | None, int] = {}
        self._sealed_limit = self.max_buffered * te.SEALED_ROW.size
        # The tasks this worker runs now and no report named yet: task id -> (attempt, RUNNING time, log start or
        # None). A report takes them out (`_report_running`), so that exactly one of it and `run_ended` gets each.
        self.running: dict[bytes, tuple] = {}
        self._announce = False  # its log files are named in no batch yet
        self.dropped = 0
        self._descriptions: dict[int, Any] = {}  # id(options) -> options, for this batch's attempts (io thread)
        self._handle = None
        self.enabled = cfg.enable_task_events and self.interval_s > 0
        self._driver_task = core_worker.driver_task_id.binary()
        # This worker's stdout and stderr file names (`set_log_files`): its batches name them, and the replies
        # and events carry only offsets in them.
        self.log_files: tuple[str, str] | tuple[()] | None = None
        if not self.enabled:
            self.record = _ignore  # type: ignore[method-assign]
            self.submitted = self.submitted_from_thread = _ignore  # type: ignore[method-assign]
            self.assigned = self.pushed = self.resent = _ignore  # type: ignore[method-assign]
            self.ended = self.finished = _ignore  # type: ignore[method-assign]
            self.ended_from_thread = self.run_ended = _ignore  # type: ignore[method-assign]

    def record(self, task_id: bytes, attempt: int, state: str, extra: Any = None) -> None:
        """Any thread. The hot path: one length check and one append."""
        events = self.events
        if len(events) < self.max_buffered:
            events.append((task_id, attempt, state, time.time(), extra))
        else:
            self.dropped += 1

    # ------------------------------------------------------------------ an owner's attempts (io thread)
    def submitted(self, attempt: OwnedAttempt, task_id: bytes, number: int, options: Any, parent: bytes | None,
                  waits_for_args: bool, actor_id: bytes | None = None) -> None:
        """A new attempt (`number`) of a task this process owns: PENDING_ARGS_AVAIL when it waits for arguments,
        else PENDING_NODE_ASSIGNMENT (the GCS adds PENDING_ARGS_AVAIL at the same time)."""
        key = id(options)
        self._descriptions[key] = options
        attempt.ev_id = (task_id, number, key, parent or self._driver_task, actor_id)
        if number:  # a retry: the same object, whose earlier attempt's times and report go
            attempt.ev_args_t = attempt.ev_node_t = attempt.ev_pushed_t = te.NO_TIME
            attempt.ev_reported = te.UNREPORTED
        if waits_for_args:
            attempt.ev_args_t = time.time()
        else:
            attempt.ev_node_t = time.time()
        if len(self._pending_new) < self.max_buffered:
            self._pending_new[id(attempt)] = attempt
        else:
            self.dropped += 1

    def submitted_from_thread(self, attempt: OwnedAttempt, task_id: bytes, options: Any, parent: bytes | None,
                              actor_id: bytes | None = None) -> None:
        """Any thread: a new actor call, or a normal task with no argument to wait for, that this thread pushes to
        its worker itself, so PENDING_ARGS_AVAIL (a task's PENDING_NODE_ASSIGNMENT) and SUBMITTED_TO_WORKER at
        once. The io thread books it (`_adopt`) before it reads the books."""
        if actor_id is None:
            attempt.ev_node_t = attempt.ev_pushed_t = time.time()
        else:
            attempt.ev_args_t = attempt.ev_pushed_t = time.time()
        attempt.ev_id = (task_id, 0, id(options), parent or self._driver_task, actor_id)
        self._from_threads.append((attempt, options))

    def ended_from_thread(self, attempt: OwnedAttempt, state: str, extra: Any = None, worker_id: str | None = None,
                          ran: tuple | None = None, ran_reported: bool = False) -> None:
        """Any thread: `ended`, for a call whose reply that thread read itself (`actor_channels`); the io thread
        books it (`_adopt`) before it reads the books."""
        self._ended_in_threads.append((attempt, state, extra, worker_id, ran, ran_reported, time.time()))

    def _adopt(self) -> None:
        # Ends counted first: each was recorded after its attempt's submission, which is then taken in below.
        ends = len(self._ended_in_threads)
        arrived = self._from_threads
        while arrived:
            attempt, options = arrived.popleft()
            self._descriptions[attempt.ev_id[2]] = options
            if len(self._pending_new) < self.max_buffered:
                self._pending_new[id(attempt)] = attempt
            else:
                self.dropped += 1
        ended = self._ended_in_threads
        for _ in range(ends):
            attempt, state, extra, worker_id, ran, ran_reported, end_t = ended.popleft()
            self._end(attempt, state, extra, worker_id, ran, ran_reported, end_t)

    def assigned(self, attempt: OwnedAttempt) -> None:
        """Its arguments are ready: PENDING_NODE_ASSIGNMENT."""
        attempt.ev_node_t = time.time()
        if attempt.ev_reported == te.REPORTED:
            self._changed(attempt)

    def pushed(self, attempt: OwnedAttempt) -> None:
        """Sent to the worker that runs it: SUBMITTED_TO_WORKER."""
        attempt.ev_pushed_t = time.time()
        if attempt.ev_reported == te.REPORTED:
            self._changed(attempt)

    def ended(self, attempt: OwnedAttempt, state: str, extra: Any = None, worker_id: str | None = None,
              ran: tuple | None = None, ran_reported: bool = False) -> None:
        """FINISHED or FAILED (`extra`: the failure's error type and message); `ran`: the reply's account of the
        run by that worker (`te.Attempt`); `ran_reported`: whether that worker reported it running itself."""
        if self._from_threads or self._ended_in_threads:
            self._adopt()
        self._end(attempt, state, extra, worker_id, ran, ran_reported, time.time())

    def finished(self, attempt: OwnedAttempt, worker_id: str | None, ran: tuple | None,
                 ran_reported: bool) -> None:
        """`ended(attempt, FINISHED, None, worker_id, ran, ran_reported)`, for the hot path: one call per reply
        with only what a FINISHED one needs."""
        if self._from_threads or self._ended_in_threads:
            self._adopt()
        end_t = time.time()
        key_of = id(attempt)
        if self._pending_new.pop(key_of, None) is None:
            self._pending_old.pop(key_of, None)
        if attempt.ev_reported or ran_reported:  # UNREPORTED is 0
            self._end(attempt, te.FINISHED, None, worker_id, ran, ran_reported, end_t)
            return
        self._seal(attempt, worker_id, ran, end_t)

    def _end(self, attempt: OwnedAttempt, state: str, extra: Any, worker_id: str | None, ran: tuple | None,
             ran_reported: bool, end_t: float) -> None:
        if self._pending_new.pop(id(attempt), None) is None:
            self._pending_old.pop(id(attempt), None)
        # Sealed when no report names this attempt but this one: no earlier batch of this owner, no executor's
        # RUNNING, no failure (whose executor reports its traceback).
        if state != te.FINISHED or attempt.ev_reported != te.UNREPORTED or ran_reported:
            attempt.ev_reported = te.ENDED
            if len(self.ended_attempts) < self.max_buffered:
                self.ended_attempts.append(_as_record(attempt, state, end_t, extra, worker_id, ran))
            else:
                self.dropped += 1
            return
        self._seal(attempt, worker_id, ran, end_t)

    def _seal(self, attempt: OwnedAttempt, worker_id: str | None, ran: tuple | None, end_t: float) -> None:
        """Packs a FINISHED attempt that no report named into this batch's rows, counted per (function, attempt)."""
        sealed = self._sealed
        if len(sealed) >= self._sealed_limit:
            self.dropped += 1
            return
        task_id, number, key, parent, actor_id = attempt.ev_id
        worker = self._sealed_workers.get(worker_id)
        if worker is None:
            workers = self._sealed_workers
            worker = workers[worker_id] = len(workers)
        if ran is None or len(ran) == 1:
            sealed += _pack_sealed(task_id, number, key, parent, actor_id or _NO_ACTOR, attempt.ev_args_t,
                                   attempt.ev_node_t, attempt.ev_pushed_t, ran[0] if ran else _NO_TIME, end_t,
                                   worker, -1, -1, -1, -1)
        else:
            run_t, out_start, err_start, out_end, err_end = ran
            sealed += _pack_sealed(task_id, number, key, parent, actor_id or _NO_ACTOR, attempt.ev_args_t,
                                   attempt.ev_node_t, attempt.ev_pushed_t, run_t, end_t, worker, out_start,
                                   err_start, out_end, err_end)
        counts = self._sealed_counts
        series = (key, number) if number else key  # no tuple for a first attempt
        counts[series] = counts.get(series, 0) + 1

    def resent(self, attempt: OwnedAttempt) -> None:
        """The same attempt goes to another worker (an actor call retried after a restart): the worker that died
        may have reported it running, so its end is not sealed but merged with that report."""
        if attempt.ev_reported == te.UNREPORTED:
            attempt.ev_reported = te.REPORTED

    def _changed(self, attempt: OwnedAttempt) -> None:
        attempt.ev_reported = te.CHANGED  # reported before: report it again, once per batch
        self.changed_attempts.append(attempt)

    def _attempts_to_report(self, everything: bool = False) -> list[tuple]:
        """This batch's attempt records: those that ended unsealed, those pending since before the last report,
        and those reported before that changed since. An attempt submitted since the last report waits for the
        next one (most finish before it, and are sealed), unless this is the last report (`everything`)."""
        records: list[tuple] = self.ended_attempts
        self.ended_attempts = []
        pending = (self._pending_old, self._pending_new) if everything else (self._pending_old,)
        for attempt in (a for by_id in pending for a in by_id.values()):
            if attempt.ev_reported != te.CHANGED:  # not reported yet (a resent one is marked so, see `resent`)
                attempt.ev_reported = te.REPORTED  # a later change or its end goes again
                records.append(_as_record(attempt))
        for attempt in self.changed_attempts:
            if attempt.ev_reported == te.CHANGED:
                attempt.ev_reported = te.REPORTED
                records.append(_as_record(attempt))
        self._pending_old, self._pending_new = ({}, {}) if everything else (self._pending_new, {})
        self.changed_attempts = []
        return records

    def _sealed_to_report(self) -> tuple[bytes, dict[tuple[int, int], int], tuple[str | None, ...]] | None:
        if not self._sealed_counts:
            return None
        counts = {(series, 0) if type(series) is int else series: n for series, n in self._sealed_counts.items()}
        sealed = (bytes(self._sealed), counts, tuple(self._sealed_workers))
        self._sealed, self._sealed_counts, self._sealed_workers = bytearray(), {}, {}
        return sealed

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
        self.flush(everything=True)

    def flush(self, everything: bool = False) -> None:
        """Reports what is buffered; `everything`: the process's last report, which names the attempts submitted
        since the one before too."""
        if self.running:
            self._report_running()
        if self._from_threads or self._ended_in_threads:
            self._adopt()
        if not self.events and not self.dropped and not self.ended_attempts and not self._sealed_counts \
                and not self._pending_new and not self._pending_old and not self.changed_attempts \
                and not self._announce:
            return
        raylet = self.cw.raylet
        if raylet is None or raylet.closed:
            return
        attempts = self._attempts_to_report(everything)
        sealed = self._sealed_to_report()
        # The attempts still pending that no report named yet keep their descriptions for the batch that will.
        options = self._descriptions
        self._descriptions = {key: options[key] for key in {a.ev_id[2] for a in self._pending_old.values()}}
        if not self.events and not attempts and not sealed and not self.dropped and not self._announce:
            return  # only attempts younger than one report: the next one tells of them
        batch, self.events = self.events, []
        self._announce = False
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


_pack_sealed = te.SEALED_ROW.pack
_NO_ACTOR = te.NO_ACTOR
_NO_TIME = te.NO_TIME
_NOT_RUN = (_NO_TIME,)
_NO_LOG = (-1, -1, -1, -1)


def _time_or_none(t: float) -> float | None:
    return None if t != t else t  # NaN: none


def _as_record(attempt: OwnedAttempt, state: str | None = None, end_t: float | None = None, extra: Any = None,
               worker_id: str | None = None, ran: tuple | None = None) -> tuple:
    """An attempt as the GCS merges it (`te.Attempt`), as it is now."""
    task_id, number, key, parent, actor_id = attempt.ev_id
    return (task_id, number, (key, parent, actor_id), _time_or_none(attempt.ev_args_t),
            _time_or_none(attempt.ev_node_t), _time_or_none(attempt.ev_pushed_t), state, end_t, extra, worker_id, ran,
            attempt.ev_reported)


def _json(value: Any) -> str:
    import json

    return json.dumps(value or {}, sort_keys=True)


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None
