"""Task events: what every core worker reports about its tasks, and how a batch travels.

A core worker keeps one record per attempt of the tasks it owns (filled in as the attempt goes) and appends
`(task_id: bytes, attempt: int, state: str, time_s: float, extra)` tuples for the rest (one `list.append` on
the hot path). Once per `task_events_report_interval_ms` its io thread pickles them in one call
(`encode_batch`) and sends the bytes to its raylet (`TASK_EVENTS`), which forwards them to the GCS
(`AddTaskEventData`) without decoding them. Every hop is authenticated with the cluster's token (framed
handshake, gRPC interceptor), so the GCS unpickles only what a token holder sent.

A batch: `{"worker_id", "node_id", "pid", "job_id", "dropped": <events this worker could not buffer>,
"descriptions": {key: description}, "events": [(task_id, attempt, state, time_s, extra), ...],
"attempts": [attempt record, ...], "sealed": (rows, {(description key, attempt number): rows}, worker ids)}`, plus
`"log_files"` from a worker that runs normal tasks.

Sealed records are most of an owner's report: attempts that finished between two of its reports, that no earlier
batch named and whose executor did not report them running either. Nothing else will ever be said about such an
attempt, so the owner packs it into one fixed-size row (`SEALED_ROW`) the moment it finishes, and the GCS keeps
the rows as they came, with their count per description and attempt number for the `ray_tasks` gauge, and
unpacks them only when the state API reads them (`decode_sealed`).

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

import math
import pickle
import struct
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


# An owner's report flag: not in a batch yet; in one; in one, and changed since (queued to go again); ended, its
# end queued (sealed ones are not tracked further).
UNREPORTED, REPORTED, CHANGED, ENDED = 0, 1, 2, 3

# A sealed record: task id, attempt number, description key, parent task id, actor id (zeros: none); the
# PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, SUBMITTED_TO_WORKER, RUNNING and FINISHED times (NaN: none); the
# index of the worker that ran it in the batch's worker ids; where its output starts and ends in that worker's
# stdout and stderr (-1: not a worker's log files). Ids are the runtime's fixed sizes (24-byte task ids).
SEALED_ROW = struct.Struct("<24sIQ24s16s5dI4q")
NO_TIME = math.nan
NO_ACTOR = bytes(16)


def encode_batch(events: list[Event], sender: dict[str, Any], dropped: int,
                 descriptions: dict[int, dict], attempts: list[Attempt] | None = None,
                 sealed: tuple[bytes, dict[tuple[int, int], int], tuple[str, ...]] | None = None) -> bytes:
    """One report of a core worker, pickled in one C-level call: the hot path's tuples travel as they were
    recorded (no per-event Python work in the worker). Only the GCS decodes it (`decode_batch`), from a raylet
    that authenticated with the cluster's token, which received it from a worker that did too."""
    batch = {**sender, "dropped": dropped, "descriptions": descriptions, "events": events}
    if attempts:
        batch["attempts"] = attempts
    if sealed:
        batch["sealed"] = sealed
    return pickle.dumps(batch, protocol=5)


def pack_sealed(records: list[tuple | list]) -> tuple[bytes, dict[tuple[int, int], int], tuple[str, ...]]:
    """Finished attempt records (`Attempt` layout) as a batch's sealed rows, counts and worker ids: what an owner
    sends, packed from whole records (the owner itself packs each row as its attempt finishes)."""
    rows = bytearray()
    counts: dict[tuple[int, int], int] = {}
    workers: dict[str, int] = {}
    for rec in records:
        key, parent, actor_id = rec[A_SUBMITTED]
        ran = rec[A_RAN] or (NO_TIME,)
        log = ran[1:] if len(ran) == 5 else (-1, -1, -1, -1)
        worker = workers.setdefault(rec[A_WORKER], len(workers))
        rows += SEALED_ROW.pack(rec[A_TASK_ID], rec[A_ATTEMPT], key, parent, actor_id or NO_ACTOR,
                                *(NO_TIME if t is None else t for t in (rec[A_ARGS_T], rec[A_NODE_T], rec[A_PUSHED_T])),
                                ran[0], rec[A_END_T], worker, *log)
        counts[(key, rec[A_ATTEMPT])] = counts.get((key, rec[A_ATTEMPT]), 0) + 1
    return bytes(rows), counts, tuple(workers)


def decode_sealed(rows: bytes | memoryview, workers: tuple[str, ...]) -> list[tuple]:
    """Sealed rows as attempt records (`Attempt` layout, as tuples)."""
    records = []
    for (task_id, attempt, key, parent, actor_id, t_args, t_node, t_pushed, t_running, t_end, worker,
         out_start, err_start, out_end, err_end) in SEALED_ROW.iter_unpack(rows):
        ran = None if t_running != t_running else (t_running,) if out_start < 0 else (
            t_running, out_start, err_start, out_end, err_end)
        records.append((task_id, attempt, (key, parent, None if actor_id == NO_ACTOR else actor_id),
                        None if t_args != t_args else t_args, None if t_node != t_node else t_node,
                        None if t_pushed != t_pushed else t_pushed, FINISHED, t_end, None, workers[worker], ran,
                        UNREPORTED))
    return records


def decode_batch(data: bytes) -> dict[str, Any]:
    return pickle.loads(data)
