"""Running tasks inside a worker process: normal tasks and actor tasks (sync, threaded, async).

Pushed tasks arrive on the io thread and are queued; the main thread runs them (so user code sees a normal
main thread and `KeyboardInterrupt` cancellation works). Threaded actors use a thread pool and async
actors an event loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import inspect
import logging
import os
import queue
import signal
import sys
import threading
import traceback
from typing import Any

import cloudpickle

from ray import exceptions
from ray._common import framing
from ray._common.ids import ActorID, TaskID
from ray._common.serialization import deserialize
from ray.core_worker.memory_store import StoredObject
from ray.core_worker.object_ref import ObjectRef

logger = logging.getLogger(__name__)


class ActorExit(Exception):
    """Raised by `ray.actor.exit_actor()` to end the actor after the current task."""


class TaskExecutor:
    def __init__(self, core_worker):
        self.cw = core_worker
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.actor: Any = None
        self.actor_id: ActorID | None = None
        self.actor_spec: dict | None = None
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

    # ------------------------------------------------------------------ io thread
    def handle(self, conn, method: str, body: Any):
        if method == "push_task" or method == "create_actor":
            if method == "create_actor":
                self.gcs_conn = conn
            responder = framing.Responder()
            self.queue.put((method, body, responder))
            return responder
        if method == "push_actor_task":
            responder = framing.Responder()
            if self.is_async:
                asyncio.run_coroutine_threadsafe(self._run_async(body, responder), self._async_loop)
            elif self._pool is not None:
                self._pool.submit(self._run_and_reply, body, responder)
            else:
                self.queue.put(("push_actor_task", body, responder))
            return responder
        if method == "cancel_task":
            if body.get("recursive") and self.cw.submitter is not None:
                # Ray's recursive cancel: the tasks this task submitted go first (we own them).
                self.cw.submitter.cancel_children(body["task_id"], body.get("force", False))
            if not body.get("children_only"):
                self._cancel(body["task_id"])
            return True
        if method == "exit":
            self._exit_soon(body.get("force", False))
            return True
        raise ValueError(f"unknown worker method {method!r}")

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

    def _exit_soon(self, force: bool) -> None:
        if force:
            os._exit(1)
        self.exiting = True
        self.queue.put(None)

    # ------------------------------------------------------------------ main thread
    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            method, body, responder = item
            if method == "create_actor":
                reply = self._create_actor(body)
            else:
                reply = self.execute(body)
            self._reply(responder, reply)
            if self.exiting:
                break
        self._flush_and_exit()

    def _flush_and_exit(self) -> None:
        if self.gcs_conn is not None:  # an intended exit: the GCS must not restart the actor
            self.cw.loop.call_soon_threadsafe(_notify_quietly, self.gcs_conn, "actor_exiting")
        # Let the io thread send the last replies before the process goes away.
        try:
            self.cw.run_sync(asyncio.sleep(0.05), timeout=2)
        except Exception:
            pass
        os._exit(0)

    def _run_and_reply(self, body: dict, responder: framing.Responder) -> None:
        reply = self.execute(body)
        self._reply(responder, reply)
        if self.exiting:
            self.queue.put(None)

    # ------------------------------------------------------------------ actors
    def _create_actor(self, spec: dict) -> dict:
        self.actor_id = ActorID(spec["actor_id"])
        self.actor_spec = spec
        cls = self.cw.functions.load(spec["function_key"])
        self.cw.set_task_context(TaskID(spec["task_id"]), lease_id=spec.get("lease_id", 0), is_actor=True,
                                 actor_id=self.actor_id, namespace=spec.get("namespace", ""),
                                 gpu_ids=spec.get("gpu_ids", []), resources=spec.get("resources", {}),
                                 actor_name=spec.get("name", ""), actor_restarted=spec.get("restarted", False))
        self._apply_gpus(spec.get("gpu_ids", []))
        try:
            args, kwargs = self._resolve_args(spec)
            self.actor = cls.__new__(cls)
            self.actor.__init__(*args, **kwargs)
        except Exception as e:
            err = self._task_error(spec, e)
            return {"ok": False, "error": self.cw._error_object(err).to_wire()}
        self.is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                            for _, m in inspect.getmembers(cls, inspect.isfunction))
        max_concurrency = spec.get("max_concurrency") or (1000 if self.is_async else 1)
        if self.is_async:
            self._start_async_loop(max_concurrency)
        elif max_concurrency > 1:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_concurrency, thread_name_prefix="ray-actor")
        print(f":actor_name:{spec.get('class_name', cls.__name__)}", flush=True)
        return {"ok": True, "pid": os.getpid()}

    def _start_async_loop(self, max_concurrency: int) -> None:
        loop = asyncio.new_event_loop()
        self._async_loop = loop
        ready = threading.Event()

        spec = self.actor_spec or {}

        def run():
            asyncio.set_event_loop(loop)
            self.cw.set_task_context(TaskID(spec["task_id"]), is_actor=True, actor_id=self.actor_id,
                                     namespace=spec.get("namespace", ""), gpu_ids=spec.get("gpu_ids", []),
                                     resources=spec.get("resources", {}), actor_name=spec.get("name", ""),
                                     actor_restarted=spec.get("restarted", False))
            self._async_sem = asyncio.Semaphore(max_concurrency)
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, name="ray-async-actor", daemon=True).start()
        ready.wait()

    async def _run_async(self, spec: dict, responder: framing.Responder) -> None:
        async with self._async_sem:
            method = getattr(self.actor, spec["method"])
            task_id = spec["task_id"]
            try:
                if any(arg[0] == "r" for arg in spec["args"]):  # fetching from owners may block: off the loop
                    args, kwargs = await asyncio.get_running_loop().run_in_executor(None, self._resolve_args, spec)
                else:
                    args, kwargs = self._resolve_args(spec)
                if inspect.iscoroutinefunction(method):
                    task = asyncio.ensure_future(method(*args, **kwargs))
                    self._async_tasks[task_id] = task
                    result = await task
                else:
                    result = method(*args, **kwargs)
                reply = self._store_returns(spec, result)
            except asyncio.CancelledError:
                reply = self._error_reply(spec, exceptions.TaskCancelledError(task_id.hex()))
            except ActorExit:
                reply = self._store_returns(spec, None)
                self.exiting = True
                self.queue.put(None)
            except Exception as e:
                reply = self._error_reply(spec, self._task_error(spec, e))
            finally:
                self._async_tasks.pop(task_id, None)
        self._reply(responder, reply)

    def _reply(self, responder: framing.Responder, reply: dict) -> None:
        # Refs this task deserialized and kept are registered with their owners before the caller, who
        # may drop its own refs once it has the reply, hears that the task is done.
        self.cw.loop.call_soon_threadsafe(self.cw.refs.after_registrations, responder.send, reply)

    # ------------------------------------------------------------------ tasks
    def execute(self, spec: dict) -> dict:
        task_id = spec["task_id"]
        self._running[task_id] = threading.get_ident()
        is_actor_task = "method" in spec
        self.cw.set_task_context(TaskID(task_id), lease_id=spec.get("lease_id", 0), is_actor=self.actor is not None,
                                 actor_id=self.actor_id, namespace=spec.get("namespace", ""),
                                 gpu_ids=spec.get("gpu_ids", []) if not is_actor_task else
                                 (self.actor_spec or {}).get("gpu_ids", []),
                                 resources=spec.get("resources", {}) if not is_actor_task else
                                 (self.actor_spec or {}).get("resources", {}),
                                 actor_name=(self.actor_spec or {}).get("name", ""),
                                 actor_restarted=(self.actor_spec or {}).get("restarted", False))
        try:
            if not is_actor_task:
                self._apply_gpus(spec.get("gpu_ids", []))
                fn = self.cw.functions.load(spec["function_key"])
                if spec["name"] != self._last_task_name:  # names the driver's `(name pid=...)` prefix
                    self._last_task_name = spec["name"]
                    print(f":task_name:{spec['name']}", flush=True)
            else:
                fn = getattr(self.actor, spec["method"])
            try:
                args, kwargs = self._resolve_args(spec)
            except exceptions.RayError as e:
                return self._error_reply(spec, e, app_error=False)
            try:
                result = fn(*args, **kwargs)
            except KeyboardInterrupt:
                return self._error_reply(spec, exceptions.TaskCancelledError(task_id.hex()))
            except ActorExit:
                self.exiting = True
                return self._store_returns(spec, None)
            except Exception as e:
                reply = self._error_reply(spec, self._task_error(spec, e))
                reply["retryable"] = self._retryable(spec, e)
                return reply
            return self._store_returns(spec, result)
        except KeyboardInterrupt:
            return self._error_reply(spec, exceptions.TaskCancelledError(task_id.hex()))
        finally:
            self._running.pop(task_id, None)

    def _apply_gpus(self, gpu_ids: list) -> None:
        if gpu_ids and not os.environ.get("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"):
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)

    def _retryable(self, spec: dict, e: Exception) -> bool:
        retry = spec.get("retry_exceptions")
        if not retry:
            return False
        if retry is True:
            return True
        return isinstance(e, tuple(cloudpickle.loads(retry)))

    def _resolve_args(self, spec: dict) -> tuple[list, dict]:
        values: list[Any] = [None] * len(spec["args"])
        borrowed = []
        for i, arg in enumerate(spec["args"]):
            tag = arg[0]
            if tag == "v":
                values[i] = deserialize(arg[1])
            elif tag == "s":
                values[i] = self.cw.materialize(arg[1], StoredObject.from_wire(arg[2]))
            else:
                borrowed.append((i, ObjectRef(arg[1], arg[2])))
        if borrowed:
            got = self.cw.get([ref for _, ref in borrowed], None)
            for (i, _), value in zip(borrowed, got, strict=True):
                values[i] = value
        nkw = len(spec.get("kwargs_keys", ()))
        if nkw:
            kwargs = dict(zip(spec["kwargs_keys"], values[-nkw:], strict=True))
            return values[:-nkw], kwargs
        return values, {}

    def _task_error(self, spec: dict, e: BaseException) -> exceptions.RayTaskError:
        if isinstance(e, exceptions.RayTaskError):
            return e  # a nested task's error passes through unchanged
        tb = traceback.format_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None)
        if tb and tb[0].startswith("Traceback"):
            tb = tb[1:]  # Ray shows the frames right under the "ray::f()" header
        text = "".join(tb)
        name = spec.get("name") or spec.get("method", "task")
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

    def _error_reply(self, spec: dict, error: BaseException, app_error: bool = True) -> dict:
        stored = self.cw._error_object(error).to_wire()
        return {"returns": [(oid, stored) for oid in spec["return_ids"]], "app_error": app_error}

    def _store_returns(self, spec: dict, result: Any) -> dict:
        return_ids = spec["return_ids"]
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
                return self._error_reply(spec, self._task_error(spec, err))
        returns = []
        nested: tuple = ()
        for oid, value in zip(return_ids, values, strict=True):
            try:
                stored = self.cw.store_value(oid, value, owned=False)
            except Exception as e:
                stored = self.cw._error_object(self._task_error(spec, e))
            nested += stored.nested
            returns.append((oid, stored.to_wire()))
        reply = {"returns": returns, "exit": self.exiting}
        if nested:  # the caller lets us drop them once it holds them itself
            self.cw.refs.hold_for_caller(spec["task_id"], nested)
            reply["nested_holder"] = self.cw.address
        return reply


def _notify_quietly(conn, method: str) -> None:
    try:
        conn.notify(method, {})
    except Exception:
        pass


def main_thread_excepthook() -> None:
    sys.excepthook = sys.__excepthook__
