"""What the normal-task submitter (`task_submitter.py`) keeps: a task its owner has not seen finish, a worker it
holds a lease on, and the scheduling class (Ray's) whose tasks share those workers."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field

from ray._common import framing
from ray.core_worker.task_events import OwnedAttempt
from ray.protocol import messages as msg
from ray.protocol.messages import TaskSpec


@dataclass
class PendingTask(OwnedAttempt):  # its task events' times ride on it
    spec: TaskSpec
    retries_left: int
    pinned: list[bytes]
    worker: LeasedWorker | None = None
    cancelled: bool = False
    attempt: int = 0  # the task events' attempt_number
    pushed_at: float = 0.0  # monotonic


@dataclass(eq=False)
class LeasedWorker:
    conn: framing.Connection
    lease_id: int
    raylet: framing.Connection
    worker_id: str
    node_id: str
    gpu_ids: list
    # Pushed, no reply yet, in push order: the first runs, the others wait in its queue (pipelining).
    inflight: list[PendingTask] = field(default_factory=list)
    head_since: float = 0.0  # monotonic: when the first of `inflight` began to be its running task, at the latest
    last_task_s: float = float("inf")  # how long its last task took, as its owner saw it (unknown: not short)
    queue_paused: bool = False  # it handed tasks back: queue nothing more there until it is free
    lost_head: PendingTask | None = None  # the task it ran when its connection was lost (the others had not started)
    idle_handle: asyncio.TimerHandle | None = None  # looks once it may have idled long enough; kept when it is taken
    idle_since: float = 0.0  # monotonic: when it last became idle
    functions: set = field(default_factory=set)  # function keys pushed to this worker process (any lease)


@dataclass
class SchedulingClass:
    key: tuple
    request: msg.RequestLease
    tasks: deque = field(default_factory=deque)
    idle: list[LeasedWorker] = field(default_factory=list)
    queueable: list[LeasedWorker] = field(default_factory=list)  # busy, and may take a task into its queue
    pipelines: bool = False  # its tasks may be queued at busy workers (any strategy but SPREAD)
    stuck_check: asyncio.TimerHandle | None = None
    workers: set = field(default_factory=set)
    pending_leases: int = 0
    # The raylet (TCP address) of the node holding these tasks' data, asked first; "": the local raylet.
    locality_raylet: str = ""
    lease_requests: dict = field(default_factory=dict)  # request id -> the raylet connection it waits at
    cancelled_requests: set = field(default_factory=set)  # withdrawn (CANCEL_LEASE), their answers not back yet
    withdraw_handle: asyncio.TimerHandle | None = None  # withdraws the requests once nothing was queued a while


def scheduling_key(resources: dict, runtime_env: dict, strategy: dict) -> tuple:
    """Tasks with equal keys share leased workers (Ray's scheduling class)."""
    return (tuple(sorted(resources.items())), json.dumps(runtime_env, sort_keys=True),
            json.dumps(strategy, sort_keys=True))
