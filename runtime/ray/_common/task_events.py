"""Task events: what every core worker reports about its tasks, and how a batch travels.

A core worker appends `(task_id: bytes, attempt: int, state: str, time_s: float, extra)` tuples to its
buffer on the hot path (one `list.append`); once per `task_events_report_interval_ms` its io thread turns
the buffer into one JSON batch (`encode_batch`) and sends it to its raylet (`TASK_EVENTS`), which forwards
the bytes to the GCS (`AddTaskEventData`) without parsing them. JSON, not pickle: the GCS decodes it.

A batch: `{"worker_id", "node_id", "pid", "dropped": <events this worker could not buffer>,
"events": [[task_id_hex, attempt, state, time_ms, extra], ...]}`. `extra` is null or an object:
  * with the first event of an attempt its owner records (`info`): name, func_or_class_name, type, job_id,
    parent_task_id, actor_id, required_resources, runtime_env_info, placement_group_id, language;
  * `SUBMITTED_TO_WORKER`: node_id, worker_id of the leased worker;
  * `FAILED`: error_type, error_message.
Events of the executing worker (`RUNNING`, and its own `FINISHED`/`FAILED`) name the task's node, worker and
pid through the batch's sender.
"""

from __future__ import annotations

import json
from typing import Any

# Ray's TaskStatus names (common.proto), in the order a task goes through them.
NIL = "NIL"
PENDING_ARGS_AVAIL = "PENDING_ARGS_AVAIL"
PENDING_NODE_ASSIGNMENT = "PENDING_NODE_ASSIGNMENT"
SUBMITTED_TO_WORKER = "SUBMITTED_TO_WORKER"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
TASK_STATES = (NIL, PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, "PENDING_OBJ_STORE_MEM_AVAIL",
               "PENDING_ARGS_FETCH", SUBMITTED_TO_WORKER, "PENDING_ACTOR_TASK_ARGS_FETCH",
               "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY", RUNNING, "RUNNING_IN_RAY_GET", "RUNNING_IN_RAY_WAIT",
               FINISHED, FAILED)
TERMINAL_STATES = (FINISHED, FAILED)

# Ray's TaskType names.
NORMAL_TASK = "NORMAL_TASK"
ACTOR_CREATION_TASK = "ACTOR_CREATION_TASK"
ACTOR_TASK = "ACTOR_TASK"
DRIVER_TASK = "DRIVER_TASK"

# Ray's ErrorType names for a failed task.
TASK_EXECUTION_EXCEPTION = "TASK_EXECUTION_EXCEPTION"
WORKER_DIED = "WORKER_DIED"
ACTOR_DIED = "ACTOR_DIED"
TASK_CANCELLED = "TASK_CANCELLED"
TASK_UNSCHEDULABLE_ERROR = "TASK_UNSCHEDULABLE_ERROR"
RUNTIME_ENV_SETUP_FAILED = "RUNTIME_ENV_SETUP_FAILED"
TASK_PLACEMENT_GROUP_REMOVED = "TASK_PLACEMENT_GROUP_REMOVED"
DEPENDENCY_RESOLUTION_FAILED = "DEPENDENCY_RESOLUTION_FAILED"
LOCAL_RAYLET_DIED = "LOCAL_RAYLET_DIED"

Event = tuple  # (task_id: bytes, attempt: int, state: str, time_s: float, extra: dict | Any | None)


def encode_batch(events: list[Event], sender: dict[str, Any], dropped: int,
                 encode_extra=None) -> bytes:
    """One report of a core worker: its buffered events as JSON bytes. `encode_extra(extra)` turns an
    event's extra (which may be a cheap placeholder recorded on the hot path) into a JSON-able dict."""
    out = []
    append = out.append
    for task_id, attempt, state, t, extra in events:
        if extra is not None and encode_extra is not None:
            extra = encode_extra(extra)
        append((task_id.hex(), attempt, state, int(t * 1000), extra))
    return json.dumps({**sender, "dropped": dropped, "events": out}, separators=(",", ":")).encode()
