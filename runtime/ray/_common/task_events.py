"""Task events: what every core worker reports about its tasks, and how a batch travels.

A core worker appends `(task_id: bytes, attempt: int, state: str, time_s: float, extra)` tuples to its
buffer on the hot path (one `list.append`); once per `task_events_report_interval_ms` its io thread pickles
the buffer in one call (`encode_batch`) and sends it to its raylet (`TASK_EVENTS`), which forwards the bytes
to the GCS (`AddTaskEventData`) without decoding them. Every hop is authenticated with the cluster's token
(framed handshake, gRPC interceptor), so the GCS unpickles only what a token holder sent.

A batch: `{"worker_id", "node_id", "pid", "job_id", "dropped": <events this worker could not buffer>,
"descriptions": {key: description}, "events": [(task_id, attempt, state, time_s, extra), ...]}`, plus
`"log_files"` from a worker that runs normal tasks.
A description (one per remote function or actor method in the batch) has name, func_or_class_name, type,
job_id, required_resources, runtime_env_info, placement_group_id, language. `extra` is None, or:
  * the owner's first event of an attempt: `(description key, parent task id, actor id or None)`;
  * `{"info": {...}}`: a full description (with parent_task_id, actor_id), for rare tasks such as an
    actor's creation and the driver;
  * a FAILED event: `{"error_type", "error_message"}`;
  * a normal task's RUNNING, recorded by its executor: `(stdout start, stderr start)`, where the task's output
    starts in its worker's log files, which the batch names once (`"log_files": (stdout file, stderr file)`);
  * state None (no state change): `(stdout end, stderr end)`, where that output ends (Ray's task_log_info).
    Sent only when the task printed something: otherwise the worker's next task starts where it ended, and the
    GCS ends it there.
The executing worker's RUNNING event names the task's node, worker and pid through the batch's sender.
"""

from __future__ import annotations

import pickle
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

Event = tuple  # (task_id: bytes, attempt: int, state: str, time_s: float, extra: dict | tuple | None)


def encode_batch(events: list[Event], sender: dict[str, Any], dropped: int,
                 descriptions: dict[int, dict]) -> bytes:
    """One report of a core worker, pickled in one C-level call: the hot path's tuples travel as they were
    recorded (no per-event Python work in the worker). Only the GCS decodes it (`decode_batch`), from a raylet
    that authenticated with the cluster's token, which received it from a worker that did too."""
    return pickle.dumps({**sender, "dropped": dropped, "descriptions": descriptions, "events": events},
                        protocol=5)


def decode_batch(data: bytes) -> dict[str, Any]:
    return pickle.loads(data)
