"""Running tasks inside a worker process: normal tasks and actor tasks (sync, threaded, async).

Pushed tasks arrive on the io thread and are queued; the main thread runs them (so user code sees a normal
main thread and `KeyboardInterrupt` cancellation works). Threaded actors use a thread pool and async
actors an event loop thread.

An owner may queue a few short normal tasks here behind the one running (`max_tasks_in_flight_per_worker`).
One that has not started can be handed back unrun (a `handed_back` reply; the owner runs it elsewhere): all
of them when the running task blocks in `ray.get`/`ray.wait` (one of them may be what it waits for), when the
worker exits, and when their owner asks (HAND_BACK_QUEUED: they waited too long). A cancelled one is answered
as cancelled without running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import functools
import inspect
import json
import logging
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from ray import exceptions
from ray._common import framing
from ray._common import task_events as te
from ray._common.ids import ActorID, TaskID
from ray._common.placement_groups import STRATEGY_TYPE as PLACEMENT_GROUP
from ray._common.serialization import deserialize
from ray.core_worker.memory_store import StoredObject, error_object
from ray.core_worker.object_ref import ObjectRef
from ray.core_worker.task_events import failure
from ray.protocol import messages as msg
from ray.protocol.messages import ActorTaskSpec, ArgKind, TaskArg, TaskSpec, handles

logger = logging.getLogger(__name__)


class ActorExit(Exception):
    """Raised by `ray.actor.exit_actor()` to end the actor after the current task."""


@dataclass(slots=True)
class _Invocation:
    """What running one task needs, whether a normal task or an actor method call."""

    task_id: bytes
    name: str
    args: list[TaskArg]
    kwargs_keys: tuple[str, ...]
    return_ids: list[bytes]
    retry_exceptions: bool | bytes = False
    attempt: int = 0


class TaskExecutor:
    def __init__(self, core_worker):
        self.cw = core_worker
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.actor: Any = None
        self.actor_id: ActorID | None = None
        self.actor_spec: Any = None  # actor.proto's ActorCreationSpec of the actor this worker became
        self._actor_context: dict[str, Any] = {}  # what `get_runtime_context()` reports inside its methods
        self.is_async = False
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._async_sem: asyncio.Semaphore | None = None
        self._running: dict[bytes, int] = {}  # task id -> thread id running it
        self._async_tasks: dict[bytes, asyncio.Future] = {}
        self._main_thread_id = threading.get_ident()
        self._interrupt_task: bytes | None = None  # the main-thread task a SIGINT is meant for
        self.exiting = False
        self.gcs_conn = None  # the GCS's connection that created our actor
        self._last_task_name = ""
        self._log_position: tuple[int, int] | None = None  # this worker's .out/.err sizes as its last task ended
        # Normal tasks pushed and not started: the push's responder -> the push. Whichever thread pops an entry
        # first owns it: the main thread runs it, the io thread hands it back or answers it cancelled. One entry per
        # push, not per task id: a push handed back stays in `queue` (skipped there), and the same task pushed here
        # again must not be taken by that stale item (which lost the task: its reply went to the answered push).
        self._not_started: dict[framing.Responder, msg.PushTask] = {}
        self._handing_back = False  # the running task blocks: pushes are handed back as they come

    # ------------------------------------------------------------------ io thread
    @handles(msg.PUSH_TASK)
    def push_task(self, conn: framing.Connection, body: msg.PushTask) -> framing.Responder | msg.TaskReply:
        function = body.get("function")
        if function is not None:  # its submitter's first task of this function here: no GCS read to run it
            self.cw.functions.add_pushed(*function)
        if self._handing_back:
            return _HANDED_BACK
        responder = framing.Responder()
        self._not_started[responder] = body
        self.queue.put((msg.PUSH_TASK, body, responder))
        return responder

    @handles(msg.HAND_BACK_QUEUED)
    def hand_back_queued(self, conn: framing.Connection, body: Any) -> None:
        self._hand_back()

    def _hand_back(self) -> None:
        """Io thread: answer every pushed task that has not started with `handed_back`."""
        for responder in list(self._not_started):
            if self._not_started.pop(responder, None) is not None:
                responder.send(_HANDED_BACK)

    def task_blocked(self) -> None:
        """The running normal task waits in `ray.get`/`ray.wait` (its thread): what is queued behind it goes back
        to its owners, and so does what is pushed until the next task starts."""
        self._handing_back = True
        self.cw.loop.call_soon_threadsafe(self._hand_back)

    @handles(msg.CREATE_ACTOR)
    def create_actor(self, conn: framing.Connection, body: msg.CreateActor) -> framing.Responder:
        self.gcs_conn = conn
        responder = framing.Responder()
        self.queue.put((msg.CREATE_ACTOR, body, responder))
        return responder

    @handles(msg.ADOPT_ACTOR)
    def adopt_actor(self, conn: framing.Connection, actor_id: bytes) -> bytes:
        """A GCS restarted from Redis reconnects: this worker's exit is reported to it from now on."""
        mine = self.actor_id.binary() if self.actor_id is not None else b""
        if mine and mine == actor_id:
            self.gcs_conn = conn
        return mine

    @handles(msg.PUSH_ACTOR_TASK)
    def push_actor_task(self, conn: framing.Connection, wire: tuple) -> framing.Responder:
        spec = ActorTaskSpec.from_wire(wire)
        responder = framing.Responder()
        if self.is_async:
            self._async_loop.call_soon_threadsafe(self._start_async, spec, responder)
        elif self._pool is not None:
            self._pool.submit(self._run_and_reply, spec, responder)
        else:
            self.queue.put((msg.PUSH_ACTOR_TASK, spec, responder))
        return responder

    @handles(msg.EXIT_WORKER)
    def exit_worker(self, conn: framing.Connection, body: msg.ExitWorker) -> Any:
        """The raylet ends this worker (its job or its lease's owner ended, ...): report, then exit."""
        return self.cw.exit_reporting(float(body.get("timeout_s", 1.0)))

    @handles(msg.CANCEL_TASK)
    def cancel_task(self, conn: framing.Connection, body: msg.CancelTask) -> bool:
        """Whether the task had not started here: then it is answered cancelled and never runs."""
        task_id = body["task_id"]
        if not body.get("children_only") and self._cancel_not_started(task_id):
            return True
        if body.get("not_started_only"):
            return False
        if body.get("recursive") and self.cw.submitter is not None:
            # Ray's recursive cancel: the tasks this task submitted go first (we own them).
            self.cw.submitter.cancel_children(task_id, body.get("force", False))
        if not body.get("children_only"):
            self._cancel(task_id)
        return False

    def _cancel_not_started(self, task_id: bytes) -> bool:
        responder = next((r for r, push in list(self._not_started.items())
                          if push["spec"][msg.TASK_SPEC_WIRE_TASK_ID] == task_id), None)
        push = self._not_started.pop(responder, None) if responder is not None else None
        if push is None:
            return False
        call = _task_invocation(TaskSpec.from_wire(push["spec"]), push)
        responder.send(self._error_reply(call, exceptions.TaskCancelledError(task_id.hex())))
        return True

    def _cancel(self, task_id: bytes) -> None:
        fut = self._async_tasks.get(task_id)
        if fut is not None and self._async_loop is not None:
            self._async_loop.call_soon_threadsafe(fut.cancel)
            return
        thread_id = self._running.get(task_id)
        if thread_id is None:
            return
        if thread_id == self._main_thread_id:
            # A signal also wakes the main thread from a blocking call (time.sleep, ray.get); the handler
            # raises only if this task is still the one running.
            self._interrupt_task = task_id
            signal.pthread_kill(thread_id, signal.SIGINT)
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(KeyboardInterrupt))

    def install_interrupt_handler(self) -> None:
        """Main thread, at start: SIGINT interrupts the running task that `ray.cancel` named, nothing else."""
        def on_sigint(signum, frame) -> None:
            task_id, self._interrupt_task = self._interrupt_task, None
            if task_id is not None and self._running.get(task_id) == self._main_thread_id:
                raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_sigint)

    # ------------------------------------------------------------------ main thread
    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            message, body, responder = item
            if message == msg.CREATE_ACTOR:
                reply = self._create_actor(body)
            elif message == msg.PUSH_TASK:
                if not self._starts(responder):
                    continue  # handed back or cancelled before it started
                reply = self._execute_task(body)
                self._handing_back = False  # before its reply: the owner's next push is run
            else:
                reply = self._execute_actor_task(body)
            self._reply(responder, reply)
            if self.exiting:
                break
        self._flush_and_exit()

    def _starts(self, responder: framing.Responder) -> bool:
        """Main thread, at a pushed task's queue item: whether it runs it (its push was not answered meanwhile)."""
        return self._not_started.pop(responder, None) is not None

    def _flush_and_exit(self) -> None:
        self.cw.loop.call_soon_threadsafe(self._hand_back)  # tasks queued here run elsewhere
        if self.gcs_conn is not None:  # an intended exit: the GCS must not restart the actor
            self.cw.loop.call_soon_threadsafe(_notify_quietly, self.gcs_conn, msg.ACTOR_EXITING)
        self.cw.loop.call_soon_threadsafe(functools.partial(self.cw.task_events.flush, everything=True))
        # Let the io thread send the last replies before the process goes away.
        try:
            self.cw.run_sync(asyncio.sleep(0.05), timeout=2)
        except Exception:
            pass
        os._exit(0)

    def _run_and_reply(self, spec: ActorTaskSpec, responder: framing.Responder) -> None:
        reply = self._execute_actor_task(spec)
        self._reply(responder, reply)
        if self.exiting:
            self.queue.put(None)

    # ------------------------------------------------------------------ actors
    def _create_actor(self, creation: msg.CreateActor) -> msg.ActorCreated:
        from ray.protocol import actor_pb2 as apb

        spec = apb.ActorCreationSpec.FromString(creation["spec"])
        self.actor_id = ActorID(spec.actor_id)
        self.actor_spec = spec
        strategy = json.loads(spec.scheduling_strategy_json or "{}")
        self._actor_context = dict(
            is_actor=True, actor_id=self.actor_id, namespace=spec.ray_namespace, gpu_ids=creation["gpu_ids"],
            resources=dict(spec.resources), actor_name=spec.name, actor_restarted=creation["restarted"],
            placement_group=strategy if strategy.get("type") == PLACEMENT_GROUP else None)
        cls = self.cw.functions.load(spec.function_key)
        self.cw.set_task_context(TaskID(spec.task_id), lease_id=creation["lease_id"], **self._actor_context)
        self._apply_gpus(creation["gpu_ids"])
        constructor = _Invocation(spec.task_id, f"{spec.class_name}.__init__", msg.args_from_proto(spec.args),
                                  tuple(spec.kwargs_keys), [])
        events = self.cw.task_events
        events.record(spec.task_id, 0, te.RUNNING)
        try:
            args, kwargs = self._resolve_args(constructor)
            self.actor = cls.__new__(cls)
            self.actor.__init__(*args, **kwargs)
        except Exception as e:
            err = self._task_error(constructor, e)
            events.record(spec.task_id, 0, te.FAILED, failure(err))
            return {"ok": False, "error": error_object(err).to_wire()}
        events.record(spec.task_id, 0, te.FINISHED)
        self.is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                            for _, m in inspect.getmembers(cls, inspect.isfunction))
        max_concurrency = spec.max_concurrency or (1000 if self.is_async else 1)
        if self.is_async:
            self._start_async_loop(max_concurrency)
        elif max_concurrency > 1:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_concurrency, thread_name_prefix="ray-actor")
        print(f":actor_name:{_actor_log_name(self.actor, spec.class_name or cls.__name__)}", flush=True)
        return {"ok": True, "pid": os.getpid()}

    def _start_async_loop(self, max_concurrency: int) -> None:
        loop = asyncio.new_event_loop()
        self._async_loop = loop
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(loop)
            self.cw.set_task_context(TaskID(self.actor_spec.task_id), **self._actor_context)
            self._async_sem = asyncio.Semaphore(max_concurrency)
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, name="ray-async-actor", daemon=True).start()
        ready.wait()

    def _start_async(self, spec: ActorTaskSpec, responder: framing.Responder) -> None:
        """On the actor's event loop: one Task per call, which `_cancel` cancels (also while it waits for a slot
        under max_concurrency). The method's coroutine runs inside it, not in a Task of its own."""
        self._async_tasks[spec.task_id] = self._async_loop.create_task(self._run_async(spec, responder))

    async def _run_async(self, spec: ActorTaskSpec, responder: framing.Responder) -> None:
        call = _actor_invocation(spec)
        task_id = spec.task_id
        self.cw.set_async_call_task_id(TaskID(task_id))
        events = self.cw.task_events
        started = None
        reported = False
        try:
            async with self._async_sem:
                method = getattr(self.actor, spec.options.method)
                if events.enabled:
                    started = events.run_started(task_id, 0)
                if any(arg[0] == ArgKind.BY_REF for arg in spec.args):  # fetching from owners may block: off the loop
                    args, kwargs = await asyncio.get_running_loop().run_in_executor(None, self._resolve_args, call)
                else:
                    args, kwargs = self._resolve_args(call)
                if inspect.iscoroutinefunction(method):
                    result = await method(*args, **kwargs)
                else:
                    result = method(*args, **kwargs)
                reply = self._store_returns(call, result)
        except asyncio.CancelledError:
            reply = self._error_reply(call, exceptions.TaskCancelledError(task_id.hex()))
        except ActorExit:
            reply = self._store_returns(call, None)
            self.exiting = True
            self.queue.put(None)
        except Exception as e:
            reply = self._error_reply(call, self._task_error(call, e))
        finally:
            self._async_tasks.pop(task_id, None)
            reported = events.run_ended(task_id)
        if started is not None:
            _tell_run(reply, (started,), reported)
        self._reply(responder, reply)

    def _reply(self, responder: framing.Responder, reply: msg.TaskReply | msg.ActorCreated) -> None:
        # Refs this task deserialized and kept are registered with their owners before the caller, who
        # may drop its own refs once it has the reply, hears that the task is done. With none pending, this
        # thread answers itself when it can, sparing the io thread a wakeup (the rid is set after the conn).
        rid = responder.rid
        conn = responder.conn
        if rid and conn is not None and self.cw.refs.registrations_settled() and conn.reply_from_thread(rid, reply):
            return
        self.cw.loop.call_soon_threadsafe(self.cw.refs.after_registrations, responder.send, reply)

    # ------------------------------------------------------------------ tasks
    def _execute_task(self, push: msg.PushTask) -> msg.TaskReply:
        spec = TaskSpec.from_wire(push["spec"])
        options = spec.options
        self.cw.set_task_context(TaskID(spec.task_id), lease_id=push["lease_id"], is_actor=False,
                                 actor_id=None, namespace=spec.namespace, gpu_ids=push["gpu_ids"],
                                 resources=options.resources, actor_name="", actor_restarted=False,
                                 placement_group=options.strategy if options.strategy.get("type") == PLACEMENT_GROUP
                                 else None)
        self._apply_gpus(push["gpu_ids"])
        if options.name != self._last_task_name:  # names the driver's `(name pid=...)` prefix
            self._last_task_name = options.name
            self._log_position = None  # that line is no task's output: the next start is looked up again
            print(f":task_name:{options.name}", flush=True)
        call = _task_invocation(spec, push)
        function = lambda: self.cw.functions.load(options.function_key)  # noqa: E731
        events = self.cw.task_events
        if events.log_files is None and events.enabled:
            events.set_log_files(_worker_log_files())
        if not events.log_files:
            return self._execute(call, function)
        # Ray's task_log_info: where this task's output starts and ends in this worker's .out/.err, so that
        # `ray logs task --id` shows only its lines (actor tasks interleave: Ray serves the actor's log). A task
        # starts where the last one ended: most tasks cost one look at the files. The reply carries the range.
        start = self._log_position or _log_sizes()
        started = events.run_started(call.task_id, call.attempt, start)
        try:
            reply = self._execute_inner(call, function)
        finally:
            reported = events.run_ended(call.task_id)
            end = self._log_position = _log_sizes()
        _tell_run(reply, (started, *start, *end), reported)
        return reply

    def _execute_actor_task(self, spec: ActorTaskSpec) -> msg.TaskReply:
        self.cw.set_actor_call_context(TaskID(spec.task_id), spec.namespace, self._actor_context)
        return self._execute(_actor_invocation(spec), lambda: getattr(self.actor, spec.options.method))

    def _execute(self, call: _Invocation, function: Callable[[], Callable]) -> msg.TaskReply:
        # The reply tells the owner when it started running here; the owner reports the attempt, with FINISHED.
        # A failure is also recorded here, by `_error_reply`, with its traceback.
        events = self.cw.task_events
        if not events.enabled:
            return self._execute_inner(call, function)
        started = events.run_started(call.task_id, call.attempt)
        try:
            reply = self._execute_inner(call, function)
        finally:
            reported = events.run_ended(call.task_id)
        _tell_run(reply, (started,), reported)
        return reply

    def _execute_inner(self, call: _Invocation, function: Callable[[], Callable]) -> msg.TaskReply:
        task_id = call.task_id
        self._running[task_id] = threading.get_ident()
        try:
            fn = function()
            try:
                args, kwargs = self._resolve_args(call)
            except exceptions.RayError as e:
                return self._error_reply(call, e, app_error=False)
            try:
                result = fn(*args, **kwargs)
            except KeyboardInterrupt:
                return self._error_reply(call, exceptions.TaskCancelledError(task_id.hex()))
            except ActorExit:
                self.exiting = True
                return self._store_returns(call, None)
            except Exception as e:
                reply = self._error_reply(call, self._task_error(call, e))
                reply["retryable"] = self._retryable(call, e)
                return reply
            return self._store_returns(call, result)
        except KeyboardInterrupt:
            return self._error_reply(call, exceptions.TaskCancelledError(task_id.hex()))
        finally:
            self._running.pop(task_id, None)

    def _apply_gpus(self, gpu_ids: list) -> None:
        if gpu_ids and not os.environ.get("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"):
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)

    def _retryable(self, call: _Invocation, e: Exception) -> bool:
        retry = call.retry_exceptions
        if not retry:
            return False
        if retry is True:
            return True
        return isinstance(e, tuple(cloudpickle.loads(retry)))

    def _resolve_args(self, call: _Invocation) -> tuple[list, dict]:
        values: list[Any] = [None] * len(call.args)
        borrowed = []
        for i, arg in enumerate(call.args):
            kind = arg[0]
            if kind == ArgKind.VALUE:
                values[i] = deserialize(arg[1])
            elif kind == ArgKind.STORED:
                values[i] = self.cw.materialize(arg[1], StoredObject.from_wire(arg[2]))
            else:
                borrowed.append((i, ObjectRef(arg[1], arg[2])))
        if borrowed:
            got = self.cw.get([ref for _, ref in borrowed], None)
            for (i, _), value in zip(borrowed, got, strict=True):
                values[i] = value
        nkw = len(call.kwargs_keys)
        if nkw:
            kwargs = dict(zip(call.kwargs_keys, values[-nkw:], strict=True))
            return values[:-nkw], kwargs
        return values, {}

    def _task_error(self, call: _Invocation, e: BaseException) -> exceptions.RayTaskError:
        if isinstance(e, exceptions.RayTaskError):
            return e  # a nested task's error passes through unchanged
        tb = traceback.format_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None)
        if tb and tb[0].startswith("Traceback"):
            tb = tb[1:]  # Ray shows the frames right under the "ray::f()" header
        text = "".join(tb)
        name = call.name
        actor_repr = None
        if self.actor is not None:
            actor_repr = repr(self.actor) if type(self.actor).__repr__ is not object.__repr__ else (
                f"{type(self.actor).__name__}")
        cause: BaseException | None = e
        try:
            cloudpickle.dumps(e)
        except Exception:
            cause = None
        return exceptions.RayTaskError(name, text, cause, proctitle=f"ray::{name}", pid=os.getpid(),
                                       ip=self.cw.node_ip, actor_repr=actor_repr,
                                       actor_id=self.actor_id.hex() if self.actor_id else None)

    def _error_reply(self, call: _Invocation, error: BaseException, app_error: bool = True) -> msg.TaskReply:
        self.cw.task_events.record(call.task_id, call.attempt, te.FAILED, failure(error))
        stored = error_object(error).to_wire()
        return {"returns": [(oid, stored) for oid in call.return_ids], "app_error": app_error}

    def _store_returns(self, call: _Invocation, result: Any) -> msg.TaskReply:
        return_ids = call.return_ids
        n = len(return_ids)
        if n == 0:
            return {"returns": []}
        if n == 1:
            values = [result]
        else:
            try:
                values = list(result)
            except TypeError:
                values = None
            if values is None or len(values) != n:
                err = ValueError(f"Task returned {len(values) if values is not None else 'a non-sequence'} "
                                 f"objects, but num_returns={n}.")
                return self._error_reply(call, self._task_error(call, err))
        returns = []
        nested: tuple = ()
        for oid, value in zip(return_ids, values, strict=True):
            try:
                stored = self.cw.store_value(oid, value, owned=False)
            except Exception as e:
                stored = error_object(self._task_error(call, e))
            nested += stored.nested
            returns.append((oid, stored.to_wire()))
        reply: msg.TaskReply = {"returns": returns, "exit": self.exiting}
        if nested:  # the caller lets us drop them once it holds them itself
            self.cw.refs.hold_for_caller(call.task_id, nested)
            reply["nested_holder"] = self.cw.address
        return reply


def _worker_log_files() -> tuple[str, str] | tuple[()]:
    """This worker's stdout and stderr file names in the node's log directory (Ray's worker-*.out/.err), or ()
    when they are not such files."""
    try:
        names = tuple(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) for fd in (1, 2))
    except OSError:
        return ()
    return names if all(n.startswith("worker-") for n in names) else ()  # type: ignore[return-value]


def _log_sizes() -> tuple[int, int]:
    """The sizes of this process's stdout and stderr files, what was printed so far written out.

    The files' offsets, not fstat (2 us each, building a stat result, on every task): this worker opened them
    new and appends to them, and nobody else writes them, so the offset is the size."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # the task closed or replaced them: sizes of what reached the files
        pass
    return os.lseek(1, 0, os.SEEK_CUR), os.lseek(2, 0, os.SEEK_CUR)


_HANDED_BACK: msg.TaskReply = {"returns": [], "handed_back": True}


def _task_invocation(spec: TaskSpec, push: msg.PushTask) -> _Invocation:
    return _Invocation(spec.task_id, spec.options.name, spec.args, spec.kwargs_keys, spec.return_ids,
                       spec.options.retry_exceptions, push.get("attempt", 0))


def _tell_run(reply: msg.TaskReply, ran: tuple, reported: bool) -> None:
    """The reply's account of the run for its owner's task events: `ran`, and whether this worker's own report
    named it running (then the owner's record is not sealed)."""
    reply["ran"] = ran
    if reported:
        reply["ran_reported"] = True


def _actor_invocation(spec: ActorTaskSpec) -> _Invocation:
    return _Invocation(spec.task_id, spec.options.name, spec.args, spec.kwargs_keys, spec.return_ids)


def _notify_quietly(conn: framing.Connection, message: str) -> None:
    try:
        conn.notify(message, {})
    except Exception:
        pass


def _actor_log_name(actor: object, class_name: str) -> str:
    """What prefixes the actor's lines on the driver: its own `__repr__` when its class defines one (Ray's
    custom actor log prefix), else the class name."""
    if type(actor).__repr__ is object.__repr__:
        return class_name
    try:
        return repr(actor).replace("\n", " ")
    except Exception:
        return class_name
