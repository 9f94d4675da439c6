"""Task events: what every core worker reports about its tasks, and how a batch travels.

A core worker keeps one record per attempt of the tasks it owns (filled in as the attempt goes) and appends
`(task_id: bytes, attempt: int, state: str, time_s: float, extra)` tuples for the rest (one `list.append` on
the hot path). Once per `task_events_report_interval_ms` its io thread pickles them in one call
(`encode_batch`) and sends the bytes to its raylet (`TASK_EVENTS`), which forwards them to the GCS
(`AddTaskEventData`) without decoding them. Every hop is authenticated with the cluster's token (framed
handshake, gRPC interceptor), so the GCS unpickles only what a token holder sent.

A batch: `{"worker_id", "node_id", "pid", "job_id", "dropped": <events this worker could not buffer>,
"descriptions": {key: description}, "events": [(task_id, attempt, state, time_s, extra), ...],
"attempts": [attempt record, ...], "sealed": (bytes, {(description key, attempt number): records})}`, plus
`"log_files"` from a worker that runs normal tasks.

Sealed records are most of an owner's report: attempts that finished between two of its reports, that no earlier
batch named and whose executor did not report them running either. Nothing else will ever be said about such an
attempt, so the GCS keeps them as the owner encoded them (`encode_sealed`), with their count per description and
attempt number for the `ray_tasks` gauge, and decodes them only when the state API reads them.

An attempt record is an owner's account of one attempt of a task it submitted, as far as it knows it (`Attempt`):
`[task_id, attempt, (description key, parent task id, actor id or None), PENDING_ARGS_AVAIL time or None,
PENDING_NODE_ASSIGNMENT time or None, SUBMITTED_TO_WORKER time or None, FINISHED / FAILED / None, its time,
the failure's {"error_type", "error_message"} or None, the id of the worker that ran it or None, what that
worker's reply said about the run or None, report flag]`. The reply's part (`ran`) is `(RUNNING time,)`, or
`(RUNNING time, stdout start, stderr start, stdout end, stderr end)`: where the task's output is in the worker's
log files (Ray's task_log_info), which that worker's own batches name (`"log_files"`; its first batch goes out
as it runs its first task). A worker reports RUNNING itself only for a task still running when its batch goes
out. The same attempt may be reported again, further along: the GCS keeps one time per state. A record's
description key is described in the first batch that carries the attempt; a later batch may not describe it
again.

A description (one per remote function or actor method in the batch) has name, func_or_class_name, type,
job_id, required_resources, runtime_env_info, placement_group_id, language. `extra` is None, or:
  * `{"info": {...}}`: a full description (with parent_task_id, actor_id), for rare tasks such as an
    actor's creation and the driver;
  * a FAILED event: `{"error_type", "error_message"}`;
  * a normal task's RUNNING, reported by its executor while it runs: `(stdout start, stderr start)`, where the
    task's output starts in its worker's log files, which the batch names (`"log_files": (stdout file, stderr
    file)`).
The executing worker's RUNNING event names the task's node, worker and pid through the batch's sender; the GCS
remembers each sender's node, pid and log files for the owners' records that name that worker.
"""

from __future__ import annotations

import marshal
import pickle
from collections import Counter
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

# An owner's attempt record (a list, filled in as the attempt goes; see the module's docstring): its fields.
Attempt = list
(A_TASK_ID, A_ATTEMPT, A_SUBMITTED, A_ARGS_T, A_NODE_T, A_PUSHED_T, A_END_STATE, A_END_T, A_EXTRA, A_WORKER, A_RAN,
 A_REPORTED) = range(12)
# The owner's report flag: not in a batch yet; in one; in one, and changed since (queued to go again).
UNREPORTED, REPORTED, CHANGED = 0, 1, 2


def encode_batch(events: list[Event], sender: dict[str, Any], dropped: int,
                 descriptions: dict[int, dict], attempts: list[Attempt] | None = None,
                 sealed: list[tuple] | None = None) -> bytes:
    """One report of a core worker, pickled in one C-level call: the hot path's tuples travel as they were
    recorded (no per-event Python work in the worker). Only the GCS decodes it (`decode_batch`), from a raylet
    that authenticated with the cluster's token, which received it from a worker that did too."""
    batch = {**sender, "dropped": dropped, "descriptions": descriptions, "events": events}
    if attempts:
        batch["attempts"] = attempts
    if sealed:
        batch["sealed"] = encode_sealed(sealed)
    return pickle.dumps(batch, protocol=5)


def _series_key(record: tuple) -> tuple[int, int]:
    return record[A_SUBMITTED][0], record[A_ATTEMPT]


def encode_sealed(records: list[tuple]) -> tuple[bytes, dict[tuple[int, int], int]]:
    """Finished attempt records nothing else will amend, encoded on their own, which the GCS stores as they are, and
    counted by (description key, attempt number), which the GCS adds to `ray_tasks` without decoding them.

    With `marshal`: the records are tuples of bytes, str, numbers and None, which it writes about 5x faster than
    pickle does (no memo of every object; 0.3 against 1.7 us per record, in-process), and it builds nothing but
    those types when read."""
    return marshal.dumps(records), dict(Counter(map(_series_key, records)))


def decode_sealed(data: bytes) -> list[tuple]:
    return marshal.loads(data)


def decode_batch(data: bytes) -> dict[str, Any]:
    return pickle.loads(data)
