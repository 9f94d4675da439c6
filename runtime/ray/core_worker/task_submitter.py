"""Submitting normal tasks from their owner: dependency resolution, leases per scheduling class, direct
pushes to leased workers (lease reuse), spillback, retries and cancellation. Runs on the io thread, except that
a user thread pushes a task itself to an idle leased worker of its class when nothing of this process waits
before it (`submit_threadsafe`): a caller who blocks on the result next then costs the io thread one wakeup,
for the reply, not two (tasks sync in bench/ is bound by wakeups). `_lock` keeps which workers are idle, and
what is in flight where, consistent between that thread and the io thread.

Pipelining: a leased worker whose last task was short (`pipelined_task_max_s`) gets up to
`max_tasks_in_flight_per_worker` retryable tasks at once (not SPREAD ones, which must spread); they wait in
its queue, so it never idles for a round trip between short tasks. What has not started comes back unrun (`handed_back`)
when the running task blocks, when the worker exits, and when tasks waited there longer than
`PIPELINE_STUCK_FACTOR` times the limit (HAND_BACK_QUEUED); it then runs on another worker or lease.
A free worker is always used before a queue is made.

Locality-aware leasing (Ray's LocalityAwareLeasePolicy): a default-strategy task whose resolved arguments
live mostly in another node's object store asks that node's raylet for its lease first; such tasks form
their own scheduling class per data node. A lease request the raylet cancels fails the class's queued tasks
(TaskUnschedulableError, RuntimeEnvSetupError); `ray.cancel` of the last queued task of a class withdraws
its outstanding lease requests (CANCEL_LEASE).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time

from ray import exceptions
from ray._common import framing
from ray._common import task_events as te
from ray._common.config import config
from ray.core_worker.inbox import Inbox
from ray.core_worker.memory_store import IN_STORE, StoredObject, error_object
from ray.core_worker.scheduling_classes import LeasedWorker, PendingTask, SchedulingClass, scheduling_key
from ray.core_worker.task_events import ARGUMENT_FAILED, failure
from ray.protocol import messages as msg
from ray.protocol.messages import ArgKind, TaskOptions, TaskSpec

logger = logging.getLogger(__name__)

MAX_PENDING_LEASE_REQUESTS = 10
LEASE_IDLE_TIMEOUT_S = 0.25  # keep an idle leased worker this long for the next task of its class
# Tasks queued at a worker whose running task has taken this many times `pipelined_task_max_s` are handed back.
PIPELINE_STUCK_FACTOR = 10


class NormalTaskSubmitter:
    def __init__(self, core_worker):
        self.cw = core_worker
        self.loop = core_worker.loop
        self._classes: dict[tuple, SchedulingClass] = {}
        # Options object (by identity; a remote function reuses one per `.options()`) -> its class: the key
        # is computed once per options, not per task.
        self._class_of_options: dict[int, tuple[TaskOptions, SchedulingClass]] = {}
        self._tasks: dict[bytes, PendingTask] = {}  # task id -> pending/running task
        self._request_ids = itertools.count(1)
        self._lease_tasks: set[asyncio.Task] = set()  # lease requests in flight (ended at shutdown)
        self._closed = False
        self._inbox = Inbox(self.loop, self.submit)  # tasks submitted by user threads
        # Held to take a worker from a class's idle ones, or to change its tasks in flight or what is queueable: a
        # user thread does so too (`_push_from_thread`). Reentrant: `_make_idle` pumps.
        self._lock = threading.RLock()
        self._events = core_worker.task_events
        # Worker id -> the function keys whose pickles went to it with a task (see function_manager).
        self._functions_sent: dict[str, set[bytes]] = {}
        cfg = config()
        self._pipeline_depth = max(1, cfg.max_tasks_in_flight_per_worker)
        self._short_task_s = cfg.pipelined_task_max_s

    # ------------------------------------------------------------------ entry
    def submit_threadsafe(self, spec: TaskSpec, pinned: list[bytes]) -> None:
        """From a user thread. Pushed by this thread to an idle leased worker of its class when nothing of this
        process waits before it and no argument waits for a value (a sync caller's usual case); otherwise submitted
        on the io thread, one wakeup per burst of submissions."""
        if not self._push_from_thread(spec, pinned):
            self._inbox.put(spec, pinned)

    def _push_from_thread(self, spec: TaskSpec, pinned: list[bytes]) -> bool:
        options = spec.options
        known = self._class_of_options.get(id(options))
        if known is None or known[0] is not options:
            return False
        cls = known[1]
        if not cls.idle or cls.tasks or self._closed or any(arg[0] == ArgKind.BY_REF for arg in spec.args):
            return False
        with self._lock:
            if not cls.idle or cls.tasks or not self._inbox.idle():
                return False
            worker = cls.idle[-1]
            if options.function_key not in worker.functions:  # its pickle goes with the first push, from the loop
                return False
            cls.idle.pop()
            task = PendingTask(spec, options.max_retries, pinned)
            self._tasks[spec.task_id] = task
            self._events.submitted_from_thread(task, spec.task_id, options, spec.parent_task_id)
            body = self._start(cls, worker, task)
            if worker.conn.request_from_thread(msg.PUSH_TASK, body, self._on_push_reply, cls, worker, task):
                return True
            # Something waits to be written there first: the io thread sends it, as a task it was given.
            task.worker = None
            worker.inflight.remove(task)
            self._update_queueable(cls, worker)
            cls.idle.append(worker)
        self._inbox.put(spec, pinned, task)
        return True

    def submit(self, spec: TaskSpec, pinned: list[bytes], task: PendingTask | None = None) -> None:
        """On the io thread. `task`: booked already by a thread that could not push it."""
        if task is not None:
            self._queue(task, recorded=True)
            return
        task = PendingTask(spec, spec.options.max_retries, pinned)
        self._tasks[spec.task_id] = task
        if any(arg[0] == ArgKind.BY_REF for arg in spec.args):
            self._events.submitted(task, spec.task_id, 0, spec.options, spec.parent_task_id, True)
            self.loop.create_task(self._resolve_and_queue(task))
        else:  # nothing to wait for: it waits for a node from the start
            self._events.submitted(task, spec.task_id, 0, spec.options, spec.parent_task_id, False)
            self._queue(task, recorded=True)

    async def _resolve_and_queue(self, task: PendingTask) -> None:
        error = await self.cw.resolver.resolve(task.spec.args)
        if task.cancelled:
            return
        if error is not None:
            self._finish_with_error_object(task, error)
            return
        locality = ""
        if not task.spec.options.strategy and config().locality_aware_leasing_enabled:
            locality = self._data_raylet(task.spec.args)
        self._queue(task, locality)

    def _data_raylet(self, args: list) -> str:
        """The raylet of the node holding most of these (resolved) arguments' bytes in its store, when that
        is another node's; "" otherwise."""
        by_node: dict[tuple[str, str], int] = {}
        for arg in args:
            if arg[0] == ArgKind.STORED and arg[2][0] == IN_STORE:
                where = (arg[2][3], arg[2][4])  # node id, its raylet's TCP address
                by_node[where] = by_node.get(where, 0) + arg[2][5]
        if not by_node:
            return ""
        (node_id, raylet_tcp), _ = max(by_node.items(), key=lambda item: item[1])
        return "" if node_id == self.cw.node_id else raylet_tcp

    def _queue(self, task: PendingTask, locality: str = "", recorded: bool = False) -> None:
        if not recorded:
            self._events.assigned(task)
        cls = self._class_for(task.spec.options, locality)
        cls.tasks.append(task)
        self._pump(cls)

    def _class_for(self, options: TaskOptions, locality: str = "") -> SchedulingClass:
        if not locality:
            known = self._class_of_options.get(id(options))
            if known is not None and known[0] is options:
                return known[1]
        key = scheduling_key(options.resources, options.runtime_env, options.strategy) + (locality,)
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = SchedulingClass(key, {
                "resources": options.resources, "runtime_env": options.runtime_env,
                "strategy": options.strategy, "job_id": self.cw.job_id.hex(),
            }, locality_raylet=locality,
                pipelines=options.strategy.get("type") != "SPREAD" and self._pipeline_depth > 1)
        if locality:
            return cls
        if len(self._class_of_options) > 256:
            self._class_of_options.clear()
        self._class_of_options[id(options)] = (options, cls)
        return cls

    # ------------------------------------------------------------------ scheduling
    def _pump(self, cls: SchedulingClass) -> None:
        with self._lock:
            self._push_queued(cls)
        if not cls.tasks:
            # Nothing left to lease for (Ray's CancelWorkerLeaseIfNeeded): once that has lasted as long as an idle
            # lease is kept (the next batch of a loop reuses them), outstanding requests are withdrawn, so the
            # raylet does not go on granting leases held idle that others (a new actor, another class) wait behind.
            if cls.lease_requests and cls.withdraw_handle is None:
                cls.withdraw_handle = self.loop.call_later(LEASE_IDLE_TIMEOUT_S, self._withdraw_if_idle, cls)
            return
        if cls.withdraw_handle is not None:
            cls.withdraw_handle.cancel()
            cls.withdraw_handle = None
        outstanding = cls.pending_leases - len(cls.cancelled_requests)
        wanted = min(len(cls.tasks), MAX_PENDING_LEASE_REQUESTS) - outstanding
        for _ in range(max(0, wanted)):
            cls.pending_leases += 1
            task = self.loop.create_task(self._request_lease(cls))
            self._lease_tasks.add(task)
            task.add_done_callback(self._lease_tasks.discard)

    def _push_queued(self, cls: SchedulingClass) -> None:
        """The class's queued tasks go to its idle workers, then into the queues of busy ones that may take more."""
        while cls.tasks:
            task = cls.tasks[0]
            if task.cancelled:
                cls.tasks.popleft()
                continue
            if cls.idle:
                worker = cls.idle.pop()
            elif cls.queueable and task.retries_left != 0:  # a queued task may be handed back or retried
                worker = cls.queueable[-1]
            else:
                break
            cls.tasks.popleft()
            self._push(cls, worker, task)

    async def _request_lease(self, cls: SchedulingClass) -> None:
        request_id = next(self._request_ids)
        raylet, grant_or_reject, locality = self.cw.raylet, False, False
        if cls.locality_raylet:  # ask the node holding the tasks' data first
            try:
                raylet, locality = await self.cw.pool.get(cls.locality_raylet), True
            except OSError:
                pass
        try:
            while True:
                if request_id in cls.cancelled_requests:  # withdrawn while it was being spilled elsewhere
                    return
                cls.lease_requests[request_id] = raylet
                try:
                    reply = await raylet.request(msg.REQUEST_LEASE, {
                        **cls.request, "grant_or_reject": grant_or_reject, "locality": locality,
                        "request_id": request_id})
                except (framing.ConnectionLost, framing.RemoteError) as e:
                    if raylet is self.cw.raylet:
                        self._fail_class(cls, exceptions.LocalRayletDiedError(), only_if_no_workers=True)
                        return
                    # The node we were spilled to died: start over at our own raylet.
                    logger.info("Lost the raylet a lease was spilled to (%s); asking the local raylet again.", e)
                    raylet, grant_or_reject, locality = self.cw.raylet, False, False
                    await asyncio.sleep(0.1)
                    continue
                if "spillback" in reply:
                    locality = False
                    try:
                        raylet = await self.cw.pool.get(reply["spillback"])
                        grant_or_reject = True
                    except OSError:  # that node is going away; the local raylet will learn it soon
                        raylet, grant_or_reject = self.cw.raylet, False
                        await asyncio.sleep(0.1)
                    continue
                if "rejected" in reply:  # the node we were spilled to cannot run it any more
                    raylet, grant_or_reject, locality = self.cw.raylet, False, False
                    await asyncio.sleep(0.1)
                    continue
                if "cancelled" in reply:
                    self._on_lease_cancelled(cls, reply["cancelled"])
                    return
                break
            grant = reply["granted"]
            try:
                conn = await self.cw.pool.get(self.cw.conn_address(grant["address"]))
            except OSError:
                raylet.notify(msg.RETURN_LEASE, {"lease_id": grant["lease_id"], "kill": True})
                return
            if len(self._functions_sent) > 4096:  # forget workers long gone (at worst a pickle is sent again)
                self._functions_sent.clear()
            worker = LeasedWorker(conn, grant["lease_id"], raylet, grant["worker_id"], grant["node_id"],
                                  grant["gpu_ids"], functions=self._functions_sent.setdefault(grant["worker_id"], set()))
            cls.workers.add(worker)
            self._make_idle(cls, worker)
        finally:
            cls.lease_requests.pop(request_id, None)
            cls.cancelled_requests.discard(request_id)
            cls.pending_leases -= 1
            if cls.tasks and not self._closed:
                self._pump(cls)

    def _on_lease_cancelled(self, cls: SchedulingClass, cancelled: msg.LeaseCancelled) -> None:
        """The raylet cancelled a lease request: withdrawn by us, or the class's tasks can never run here."""
        kind, message = cancelled["type"], cancelled["message"]
        if kind == msg.CANCELLED_INTENDED:
            return
        while cls.tasks:
            task = cls.tasks.popleft()
            if kind == msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED:
                error: BaseException = exceptions.RuntimeEnvSetupError(message)
            elif kind == msg.CANCELLED_PLACEMENT_GROUP_REMOVED:
                error = exceptions.TaskPlacementGroupRemoved()
            else:  # CANCELLED_UNSCHEDULABLE
                error = exceptions.TaskUnschedulableError(
                    f"{message} lease_id={task.spec.task_id.hex()}, name={task.spec.options.name}")
            self._finish_with_error(task, error)

    def _cancel_lease_requests(self, cls: SchedulingClass) -> None:
        """No task of the class is queued any more: its outstanding lease requests are withdrawn."""
        for request_id, raylet in list(cls.lease_requests.items()):
            if not raylet.closed:
                raylet.notify(msg.CANCEL_LEASE, {"request_id": request_id})
        cls.cancelled_requests.update(cls.lease_requests)
        cls.lease_requests.clear()

    def _withdraw_if_idle(self, cls: SchedulingClass) -> None:
        cls.withdraw_handle = None
        if not cls.tasks and not self._closed:
            self._cancel_lease_requests(cls)

    def _make_idle(self, cls: SchedulingClass, worker: LeasedWorker) -> None:
        """A task of the worker is done (or it was just leased): it takes the next one; idle once it has none."""
        with self._lock:
            self._make_idle_locked(cls, worker)

    def _make_idle_locked(self, cls: SchedulingClass, worker: LeasedWorker) -> None:
        if worker not in cls.workers:  # dropped (exiting, lost) while tasks queued there were answered
            if cls.tasks:
                self._pump(cls)
            return
        if worker.inflight:
            self._update_queueable(cls, worker)
            if cls.tasks:
                self._pump(cls)
            return
        worker.queue_paused = False
        if worker in cls.queueable:
            cls.queueable.remove(worker)
        worker.idle_since = time.monotonic()
        cls.idle.append(worker)
        if cls.tasks:
            self._pump(cls)
        if not worker.inflight and worker.idle_handle is None:
            worker.idle_handle = self.loop.call_later(LEASE_IDLE_TIMEOUT_S, self._return_if_idle, cls, worker)

    def _update_queueable(self, cls: SchedulingClass, worker: LeasedWorker) -> None:
        """A busy worker may take another task into its queue while its tasks are short and there is room."""
        may = (cls.pipelines and not worker.queue_paused and len(worker.inflight) < self._pipeline_depth
               and worker.last_task_s <= self._short_task_s and worker in cls.workers)
        if may != (worker in cls.queueable):
            if may:
                cls.queueable.append(worker)
            else:
                cls.queueable.remove(worker)

    def _task_done_at(self, worker: LeasedWorker, task: PendingTask) -> None:
        """Its reply came: it leaves the worker's tasks in flight, and the worker's last task time is known."""
        now = time.monotonic()
        if worker.inflight and worker.inflight[0] is task:
            worker.last_task_s = now - max(worker.head_since, task.pushed_at)
            worker.head_since = now
        if task in worker.inflight:
            worker.inflight.remove(task)

    def _hand_back_stuck(self, cls: SchedulingClass) -> None:
        """Tasks queued behind a task that has run too long are asked back, to run on another worker."""
        cls.stuck_check = None
        limit = self._short_task_s * PIPELINE_STUCK_FACTOR
        now = time.monotonic()
        waiting = False
        with self._lock:
            for worker in cls.workers:
                if len(worker.inflight) < 2 or worker.queue_paused:
                    continue
                if now - worker.head_since >= limit:
                    worker.queue_paused = True
                    self._update_queueable(cls, worker)
                    if not worker.conn.closed:
                        worker.conn.notify(msg.HAND_BACK_QUEUED)
                else:
                    waiting = True
        if waiting and not self._closed:
            cls.stuck_check = self.loop.call_later(limit, self._hand_back_stuck, cls)

    def _return_if_idle(self, cls: SchedulingClass, worker: LeasedWorker) -> None:
        """Its idle timer: the lease goes back once the worker has been idle `LEASE_IDLE_TIMEOUT_S`. The timer is
        not cancelled when the worker is taken (a user thread may take it): it looks again, later if need be."""
        with self._lock:
            worker.idle_handle = None
            if worker.inflight or worker not in cls.idle:
                return
            idle_for = time.monotonic() - worker.idle_since
            if idle_for < LEASE_IDLE_TIMEOUT_S:
                worker.idle_handle = self.loop.call_later(LEASE_IDLE_TIMEOUT_S - idle_for, self._return_if_idle,
                                                          cls, worker)
                return
            cls.idle.remove(worker)
            cls.workers.discard(worker)
        if not worker.raylet.closed:
            worker.raylet.notify(msg.RETURN_LEASE, {"lease_id": worker.lease_id})

    def _drop_worker(self, cls: SchedulingClass, worker: LeasedWorker) -> None:
        with self._lock:
            cls.workers.discard(worker)
            if worker in cls.idle:
                cls.idle.remove(worker)
            if worker in cls.queueable:
                cls.queueable.remove(worker)

    def _push(self, cls: SchedulingClass, worker: LeasedWorker, task: PendingTask) -> None:
        """Io thread, under `_lock`."""
        body = self._start(cls, worker, task)
        if len(worker.inflight) > 1 and cls.stuck_check is None:
            cls.stuck_check = self.loop.call_later(self._short_task_s * PIPELINE_STUCK_FACTOR,
                                                   self._hand_back_stuck, cls)
        self._events.pushed(task)
        key = task.spec.options.function_key
        if key not in worker.functions:  # its first task of this function: the function goes along
            worker.functions.add(key)
            pickled = self.cw.functions.pickled_for_push(key)
            if pickled is not None:
                body["function"] = (key, pickled)
        # A callback, not a coroutine: the next task goes out as this reply is read.
        worker.conn.request_with_callback(msg.PUSH_TASK, body, self._on_push_reply, cls, worker, task)

    def _start(self, cls: SchedulingClass, worker: LeasedWorker, task: PendingTask) -> msg.PushTask:
        """Any thread, under `_lock`: `task` joins what is in flight to `worker`; its push."""
        task.worker = worker
        task.pushed_at = time.monotonic()
        if not worker.inflight:
            worker.head_since = task.pushed_at
        worker.inflight.append(task)
        self._update_queueable(cls, worker)
        return {"spec": task.spec.to_wire(), "lease_id": worker.lease_id, "gpu_ids": worker.gpu_ids,
                "attempt": task.attempt}

    def _on_push_reply(self, reply: dict | None, error: BaseException | None, cls: SchedulingClass,
                       worker: LeasedWorker, task: PendingTask) -> None:
        spec = task.spec
        task.worker = None
        if isinstance(error, (framing.ConnectionLost, OSError)):
            if worker.lost_head is None:  # the first of its tasks told: the one it ran, if any
                worker.lost_head = worker.inflight[0] if worker.inflight else task
            ran = task is worker.lost_head
            if task in worker.inflight:
                worker.inflight.remove(task)
            self._drop_worker(cls, worker)
            if task.cancelled:
                self._finish_with_error(task, exceptions.TaskCancelledError(spec.task_id.hex()))
            elif not ran:  # queued behind the task that ran: it had not started, and costs no retry
                self._next_attempt(task, {"error_type": te.WORKER_DIED, "error_message": (
                    "The worker this task was queued at died before it started; the task runs elsewhere.")})
                cls.tasks.appendleft(task)
                self._pump(cls)
            elif task.retries_left != 0:
                task.retries_left -= 1 if task.retries_left > 0 else 0
                logger.info("Worker died running %s; retrying (%s retries left).", spec.options.name,
                            task.retries_left)
                self._next_attempt(task, {"error_type": te.WORKER_DIED, "error_message": (
                    "The worker running the task died; the task is retried.")})
                cls.tasks.appendleft(task)
                self._pump(cls)
            else:
                self._finish_with_error(task, exceptions.WorkerCrashedError())
            return
        if error is None and reply.get("handed_back"):  # it had not started there: it runs elsewhere
            if task in worker.inflight:
                worker.inflight.remove(task)
            worker.queue_paused = True
            if task.cancelled:
                self._finish_with_error(task, exceptions.TaskCancelledError(spec.task_id.hex()))
            else:
                cls.tasks.appendleft(task)
            self._make_idle(cls, worker)
            return
        self._task_done_at(worker, task)
        if error is not None:  # framing.RemoteError: the worker's handler failed
            self._make_idle(cls, worker)
            self._finish_with_error(task, exceptions.RaySystemError(str(error)))
            return
        if reply.get("app_error") and reply.get("retryable") and task.retries_left != 0 and not task.cancelled:
            task.retries_left -= 1 if task.retries_left > 0 else 0
            self._next_attempt(task, {"error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""},
                               worker.worker_id, reply.get("ran"))
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
        # The result first: the caller's thread wakes while the io thread books the end.
        self._finish(task, reply["returns"], reply.get("nested_holder"))
        if reply.get("app_error"):
            self._events.ended(task, te.FAILED, {"error_type": te.TASK_EXECUTION_EXCEPTION,
                                                 "error_message": ""}, worker.worker_id, reply.get("ran"))
        else:
            self._events.finished(task, worker.worker_id, reply.get("ran"), reply.get("ran_reported", False))

    def _next_attempt(self, task: PendingTask, failed: dict, worker_id: str | None = None,
                      ran: tuple | None = None) -> None:
        """The attempt failed and the task is retried: its next attempt starts, described again."""
        spec = task.spec
        self._events.ended(task, te.FAILED, failed, worker_id, ran)
        task.attempt += 1
        self._events.submitted(task, spec.task_id, task.attempt, spec.options, spec.parent_task_id, False)

    # ------------------------------------------------------------------ completion
    def _finish(self, task: PendingTask, returns: list, nested_holder: dict | None = None) -> None:
        self._tasks.pop(task.spec.task_id, None)
        self.cw.complete(task.spec.task_id, returns, nested_holder, task.pinned)

    def _finish_with_error(self, task: PendingTask, error: BaseException) -> None:
        self._events.ended(task, te.FAILED, failure(error))
        self._finish_with_error_object(task, error_object(error), recorded=True)

    def _finish_with_error_object(self, task: PendingTask, stored: StoredObject, recorded: bool = False) -> None:
        if not recorded:  # an argument's error: the task never ran
            self._events.ended(task, te.FAILED, ARGUMENT_FAILED)
        wire = stored.to_wire()
        self._finish(task, [(oid, wire) for oid in task.spec.return_ids])

    def _fail_class(self, cls: SchedulingClass, error: BaseException, only_if_no_workers: bool = False) -> None:
        if only_if_no_workers and cls.workers:
            return
        while cls.tasks:
            self._finish_with_error(cls.tasks.popleft(), error)

    # ------------------------------------------------------------------ cancel
    def cancel(self, task_id: bytes, force: bool, recursive: bool = True) -> bool:
        with self._lock:  # not while a user thread pushes it
            return self._cancel(task_id, force, recursive)

    def _cancel(self, task_id: bytes, force: bool, recursive: bool) -> bool:
        task = self._tasks.get(task_id)
        if task is None:
            return False
        task.cancelled = True
        for cls in self._classes.values():
            if task in cls.tasks:
                cls.tasks.remove(task)
                self._finish_with_error(task, exceptions.TaskCancelledError(task_id.hex()))
                if not cls.tasks:
                    self._cancel_lease_requests(cls)
                return True
        worker = task.worker
        if worker is None:  # still resolving dependencies
            self._finish_with_error(task, exceptions.TaskCancelledError(task_id.hex()))
            return True
        if force:
            queued = len(worker.inflight) > 1 and worker.inflight[0] is not task
            self.loop.create_task(self._kill_running(worker, task_id, recursive, queued))
        else:
            worker.conn.notify(msg.CANCEL_TASK, {"task_id": task_id, "recursive": recursive})
        return True

    async def _kill_running(self, worker: LeasedWorker, task_id: bytes, recursive: bool, queued: bool) -> None:
        if queued:  # queued behind another task there: if it has not started, it is answered cancelled, no kill
            with contextlib.suppress(framing.ConnectionLost, framing.RemoteError, asyncio.TimeoutError):
                if await asyncio.wait_for(worker.conn.request(msg.CANCEL_TASK, {
                        "task_id": task_id, "not_started_only": True}), 5):
                    return
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
            if cls.stuck_check is not None:
                cls.stuck_check.cancel()
                cls.stuck_check = None
        for task in list(self._lease_tasks):  # the raylets drop their requests with our connection
            task.cancel()
        with self._lock:
            for cls in self._classes.values():
                for worker in list(cls.idle):
                    if worker.idle_handle is not None:
                        worker.idle_handle.cancel()
                    if not worker.raylet.closed:
                        worker.raylet.notify(msg.RETURN_LEASE, {"lease_id": worker.lease_id})
                cls.idle.clear()
