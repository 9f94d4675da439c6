"""The core worker's task event buffer (Ray's TaskEventBuffer): state changes of the tasks this process owns
or runs, recorded on the hot path with one `list.append` and reported off it.

Every `task_events_report_interval_ms` the io thread swaps the buffer for an empty one, encodes it once
(`ray._common.task_events.encode_batch`) and sends it to the raylet (`TASK_EVENTS`), which forwards it to the
GCS. At most `task_events_max_num_status_events_buffer_on_worker` events wait between reports; more are
counted as dropped and the count travels with the next batch.

The first event of an attempt recorded by its owner carries a cheap placeholder for the task's description
(the shared options object, not a dict made per task); it becomes a dict when the batch is encoded.
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
        self.dropped = 0
        self._descriptions: dict[int, Any] = {}  # id(options) -> options, for this batch's events (io thread)
        self._handle = None
        self.enabled = cfg.enable_task_events and self.interval_s > 0
        self._driver_task = core_worker.driver_task_id.binary()
        # This worker's stdout and stderr file names (set by its executor): the batch names them once, and the
        # executor's events carry only offsets in them.
        self.log_files: tuple[str, str] | None = None
        if not self.enabled:
            self.record = _ignore  # type: ignore[method-assign]
            self.record_submitted = _ignore  # type: ignore[method-assign]

    def record(self, task_id: bytes, attempt: int, state: str, extra: Any = None) -> None:
        """Any thread. The hot path: one length check and one append."""
        events = self.events
        if len(events) < self.max_buffered:
            events.append((task_id, attempt, state, time.time(), extra))
        else:
            self.dropped += 1

    def record_submitted(self, task_id: bytes, attempt: int, options, parent: bytes | None,
                         state: str = te.PENDING_ARGS_AVAIL, actor_id: bytes | None = None) -> None:
        """The owner's first event of an attempt (PENDING_NODE_ASSIGNMENT when it has no argument to wait
        for: the GCS adds PENDING_ARGS_AVAIL at the same time), naming the task's description: its shared
        options object, described once per batch. Io thread only (the batch is swapped there)."""
        key = id(options)
        self._descriptions[key] = options
        self.record(task_id, attempt, state, (key, parent or self._driver_task, actor_id))

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
        if not self.events and not self.dropped:
            return
        raylet = self.cw.raylet
        if raylet is None or raylet.closed:
            return
        batch, self.events = self.events, []
        options, self._descriptions = self._descriptions, {}
        dropped, self.dropped = self.dropped, 0
        sender = {"worker_id": self.cw.worker_id.hex(), "node_id": self.cw.node_id, "pid": os.getpid(),
                  "job_id": self.cw.job_id.hex()}
        if self.log_files:
            sender["log_files"] = self.log_files
        payload = te.encode_batch(batch, sender, dropped, {k: self._describe(o) for k, o in options.items()})
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
