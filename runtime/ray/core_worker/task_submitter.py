"""Submitting normal tasks from their owner: dependency resolution, leases per scheduling class, direct
pushes to leased workers (lease reuse), spillback, retries and cancellation. Runs on the io thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from ray import exceptions
from ray._common import framing
from ray.core_worker.memory_store import StoredObject, error_object
from ray.protocol import messages as msg
from ray.protocol.messages import ArgKind, TaskOptions, TaskSpec

logger = logging.getLogger(__name__)

MAX_PENDING_LEASE_REQUESTS = 10
LEASE_IDLE_TIMEOUT_S = 0.25  # keep an idle leased worker this long for the next task of its class


@dataclass
class PendingTask:
    spec: TaskSpec
    retries_left: int
    pinned: list[bytes]
    worker: LeasedWorker | None = None
    cancelled: bool = False


@dataclass(eq=False)
class LeasedWorker:
    conn: framing.Connection
    lease_id: int
    raylet: framing.Connection
    worker_id: str
    node_id: str
    gpu_ids: list
    busy: bool = False
    idle_handle: asyncio.TimerHandle | None = None


@dataclass
class SchedulingClass:
    key: tuple
    request: msg.RequestLease
    tasks: deque = field(default_factory=deque)
    idle: list[LeasedWorker] = field(default_factory=list)
    workers: set = field(default_factory=set)
    pending_leases: int = 0


class NormalTaskSubmitter:
    def __init__(self, core_worker):
        self.cw = core_worker
        self.loop = core_worker.loop
        self._classes: dict[tuple, SchedulingClass] = {}
        # Options object (by identity; a remote function reuses one per `.options()`) -> its class: the key
        # is computed once per options, not per task.
        self._class_of_options: dict[int, tuple[TaskOptions, SchedulingClass]] = {}
        self._tasks: dict[bytes, PendingTask] = {}  # task id -> pending/running task
        self._closed = False
        self._inbox: list[tuple[TaskSpec, list[bytes]]] = []  # submitted by user threads, not yet seen here
        self._inbox_lock = threading.Lock()
        self._inbox_scheduled = False

    # ------------------------------------------------------------------ entry
    def submit_threadsafe(self, spec: TaskSpec, pinned: list[bytes]) -> None:
        """From a user thread: hand the task to the io thread, waking it once per burst of submissions
        (a `[f.remote() for _ in range(1000)]` costs one wakeup, not a thousand)."""
        with self._inbox_lock:
            self._inbox.append((spec, pinned))
            if self._inbox_scheduled:
                return
            self._inbox_scheduled = True
        self.loop.call_soon_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            batch, self._inbox = self._inbox, []
            self._inbox_scheduled = False
        for spec, pinned in batch:
            self.submit(spec, pinned)

    def submit(self, spec: TaskSpec, pinned: list[bytes]) -> None:
        """On the io thread."""
        task = PendingTask(spec, spec.options.max_retries, pinned)
        self._tasks[spec.task_id] = task
        if any(arg[0] == ArgKind.BY_REF for arg in spec.args):
            self.loop.create_task(self._resolve_and_queue(task))
        else:  # nothing to wait for
            self._queue(task)

    async def _resolve_and_queue(self, task: PendingTask) -> None:
        error = await self.cw.resolver.resolve(task.spec.args)
        if task.cancelled:
            return
        if error is not None:
            self._finish_with_error_object(task, error)
            return
        self._queue(task)

    def _queue(self, task: PendingTask) -> None:
        cls = self._class_for(task.spec.options)
        cls.tasks.append(task)
        self._pump(cls)

    def _class_for(self, options: TaskOptions) -> SchedulingClass:
        known = self._class_of_options.get(id(options))
        if known is not None and known[0] is options:
            return known[1]
        key = scheduling_key(options.resources, options.runtime_env, options.strategy)
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = SchedulingClass(key, {
                "resources": options.resources, "runtime_env": options.runtime_env,
                "strategy": options.strategy, "job_id": self.cw.job_id.hex(),
            })
        if len(self._class_of_options) > 256:
            self._class_of_options.clear()
        self._class_of_options[id(options)] = (options, cls)
        return cls

    # ------------------------------------------------------------------ scheduling
    def _pump(self, cls: SchedulingClass) -> None:
        while cls.tasks and cls.idle:
            worker = cls.idle.pop()
            if worker.idle_handle is not None:
                worker.idle_handle.cancel()
                worker.idle_handle = None
            task = cls.tasks.popleft()
            if task.cancelled:
                cls.idle.append(worker)
                continue
            self._push(cls, worker, task)
        wanted = min(len(cls.tasks), MAX_PENDING_LEASE_REQUESTS) - cls.pending_leases
        for _ in range(max(0, wanted)):
            cls.pending_leases += 1
            self.loop.create_task(self._request_lease(cls, self.cw.raylet, grant_or_reject=False))

    async def _request_lease(self, cls: SchedulingClass, raylet: framing.Connection, grant_or_reject: bool) -> None:
        try:
            while True:
                try:
                    reply = await raylet.request(msg.REQUEST_LEASE, {**cls.request, "grant_or_reject": grant_or_reject})
                except (framing.ConnectionLost, framing.RemoteError) as e:
                    if raylet is self.cw.raylet:
                        self._fail_class(cls, exceptions.LocalRayletDiedError(), only_if_no_workers=True)
                        return
                    # The node we were spilled to died: start over at our own raylet.
                    logger.info("Lost the raylet a lease was spilled to (%s); asking the local raylet again.", e)
                    raylet, grant_or_reject = self.cw.raylet, False
                    await asyncio.sleep(0.1)
                    continue
                if "spillback" in reply:
                    try:
                        raylet = await self.cw.pool.get(reply["spillback"])
                        grant_or_reject = True
                    except OSError:  # that node is going away; the local raylet will learn it soon
                        raylet, grant_or_reject = self.cw.raylet, False
                        await asyncio.sleep(0.1)
                    continue
                if "rejected" in reply:  # the node we were spilled to cannot run it any more
                    raylet, grant_or_reject = self.cw.raylet, False
                    await asyncio.sleep(0.1)
                    continue
                if "failed" in reply:
                    self._fail_class(cls, exceptions.RuntimeEnvSetupError(reply["failed"]))
                    return
                if "cancelled" in reply:  # CANCELLED_PLACEMENT_GROUP_REMOVED
                    self._fail_class(cls, exceptions.TaskPlacementGroupRemoved())
                    return
                break
            grant = reply["granted"]
            try:
                conn = await self.cw.pool.get(self.cw.conn_address(grant["address"]))
            except OSError:
                raylet.notify(msg.RETURN_LEASE, {"lease_id": grant["lease_id"], "kill": True})
                return
            worker = LeasedWorker(conn, grant["lease_id"], raylet, grant["worker_id"], grant["node_id"],
                                  grant["gpu_ids"])
            cls.workers.add(worker)
            self._make_idle(cls, worker)
        finally:
            cls.pending_leases -= 1
            if cls.tasks and not self._closed:
                self._pump(cls)

    def _make_idle(self, cls: SchedulingClass, worker: LeasedWorker) -> None:
        worker.busy = False
        cls.idle.append(worker)
        if cls.tasks:
            self._pump(cls)
        if not worker.busy and worker.idle_handle is None:
            worker.idle_handle = self.loop.call_later(LEASE_IDLE_TIMEOUT_S, self._return_if_idle, cls, worker)

    def _return_if_idle(self, cls: SchedulingClass, worker: LeasedWorker) -> None:
        worker.idle_handle = None
        if worker.busy or worker not in cls.idle:
            return
        cls.idle.remove(worker)
        cls.workers.discard(worker)
        if not worker.raylet.closed:
            worker.raylet.notify(msg.RETURN_LEASE, {"lease_id": worker.lease_id})

    def _drop_worker(self, cls: SchedulingClass, worker: LeasedWorker) -> None:
        cls.workers.discard(worker)
        if worker in cls.idle:
            cls.idle.remove(worker)

    def _push(self, cls: SchedulingClass, worker: LeasedWorker, task: PendingTask) -> None:
        worker.busy = True
        task.worker = worker
        reply = worker.conn.request(msg.PUSH_TASK, {"spec": task.spec.to_wire(), "lease_id": worker.lease_id,
                                                    "gpu_ids": worker.gpu_ids})
        # A done callback, not a coroutine: the next task goes out in the same loop turn as this reply.
        reply.add_done_callback(lambda reply: self._on_push_reply(cls, worker, task, reply))

    def _on_push_reply(self, cls: SchedulingClass, worker: LeasedWorker, task: PendingTask,
                       future: asyncio.Future) -> None:
        spec = task.spec
        task.worker = None
        error = future.exception()
        if isinstance(error, (framing.ConnectionLost, OSError)):
            self._drop_worker(cls, worker)
            if task.cancelled:
                self._finish_with_error(task, exceptions.TaskCancelledError(spec.task_id.hex()))
            elif task.retries_left != 0:
                task.retries_left -= 1 if task.retries_left > 0 else 0
                logger.info("Worker died running %s; retrying (%s retries left).", spec.options.name,
                            task.retries_left)
                cls.tasks.appendleft(task)
                self._pump(cls)
            else:
                self._finish_with_error(task, exceptions.WorkerCrashedError())
            return
        if error is not None:  # framing.RemoteError: the worker's handler failed
            self._make_idle(cls, worker)
            self._finish_with_error(task, exceptions.RaySystemError(str(error)))
            return
        reply = future.result()
        if reply.get("app_error") and reply.get("retryable") and task.retries_left != 0 and not task.cancelled:
            task.retries_left -= 1 if task.retries_left > 0 else 0
            cls.tasks.append(task)
            self._make_idle(cls, worker)
            return
        if reply.get("exit"):  # the worker is exiting (e.g. max_calls reached)
            self._drop_worker(cls, worker)
        else:
            self._make_idle(cls, worker)
        if task.cancelled and reply.get("app_error"):
            # It failed after `ray.cancel` (e.g. a child it waited on was cancelled): report the cancel.
            self._finish_with_error(task, exceptions.TaskCancelledError(spec.task_id.hex()))
            return
        self._finish(task, reply["returns"], reply.get("nested_holder"))

    # ------------------------------------------------------------------ completion
    def _finish(self, task: PendingTask, returns: list, nested_holder: dict | None = None) -> None:
        self._tasks.pop(task.spec.task_id, None)
        for oid, wire in returns:
            self.cw.add_owned_result(oid, wire)
        if nested_holder is not None:
            self.cw.refs.release_holder(nested_holder, task.spec.task_id)
        self.cw.refs.unpin(task.pinned)

    def _finish_with_error(self, task: PendingTask, error: BaseException) -> None:
        self._finish_with_error_object(task, error_object(error))

    def _finish_with_error_object(self, task: PendingTask, stored: StoredObject) -> None:
        wire = stored.to_wire()
        self._finish(task, [(oid, wire) for oid in task.spec.return_ids])

    def _fail_class(self, cls: SchedulingClass, error: BaseException, only_if_no_workers: bool = False) -> None:
        if only_if_no_workers and cls.workers:
            return
        while cls.tasks:
            self._finish_with_error(cls.tasks.popleft(), error)

    # ------------------------------------------------------------------ cancel
    def cancel(self, task_id: bytes, force: bool, recursive: bool = True) -> bool:
        task = self._tasks.get(task_id)
        if task is None:
            return False
        task.cancelled = True
        for cls in self._classes.values():
            if task in cls.tasks:
                cls.tasks.remove(task)
                self._finish_with_error(task, exceptions.TaskCancelledError(task_id.hex()))
                return True
        worker = task.worker
        if worker is None:  # still resolving dependencies
            self._finish_with_error(task, exceptions.TaskCancelledError(task_id.hex()))
            return True
        if force:
            self.loop.create_task(self._kill_running(worker, task_id, recursive))
        else:
            worker.conn.notify(msg.CANCEL_TASK, {"task_id": task_id, "recursive": recursive})
        return True

    async def _kill_running(self, worker: LeasedWorker, task_id: bytes, recursive: bool) -> None:
        if recursive:  # the worker cancels what the task submitted before it is killed
            with contextlib.suppress(framing.ConnectionLost, framing.RemoteError, asyncio.TimeoutError):
                await asyncio.wait_for(worker.conn.request(msg.CANCEL_TASK, {
                    "task_id": task_id, "recursive": True, "force": True, "children_only": True}), 5)
        if not worker.raylet.closed:
            worker.raylet.notify(msg.KILL_WORKER, {"worker_id": worker.worker_id, "force": True})

    def cancel_children(self, parent_task_id: bytes, force: bool) -> None:
        """Cancel the tasks that `parent_task_id` (a task this worker runs) submitted, recursively."""
        for task_id in [t for t, task in self._tasks.items() if task.spec.parent_task_id == parent_task_id]:
            self.cancel(task_id, force, recursive=True)

    def shutdown(self) -> None:
        self._closed = True
        for cls in self._classes.values():
            for worker in list(cls.idle):
                if worker.idle_handle is not None:
                    worker.idle_handle.cancel()
                if not worker.raylet.closed:
                    worker.raylet.notify(msg.RETURN_LEASE, {"lease_id": worker.lease_id})
            cls.idle.clear()


def scheduling_key(resources: dict, runtime_env: dict, strategy: dict) -> tuple:
    """Tasks with equal keys share leased workers (Ray's scheduling class)."""
    return (tuple(sorted(resources.items())), json.dumps(runtime_env, sort_keys=True),
            json.dumps(strategy, sort_keys=True))
