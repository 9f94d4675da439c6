"""The core worker inside every driver and worker: owns objects, submits tasks, serves its objects.

Its front door is what the public API calls: `submit_task`, `create_actor`, `submit_actor_task`, `get`,
`put`, `wait`, `cancel`, `kill_actor`, `named_actor`, and the placement group calls (`create_placement_group`,
...). They take the specs of `ray.protocol.messages` and return refs; everything behind them (ids, argument
encoding, ownership, leases) stays in this package.

An asyncio (uvloop) io thread runs the framed-protocol server and all connections; user threads call in
with `call_soon_threadsafe` / `run_coroutine_threadsafe` and wait on thread-safe callbacks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ray._common import framing, task_events
from ray._common.config import config
from ray._common.ids import ActorID, JobID, ObjectID, TaskID, WorkerID
from ray._common.serialization import PLAIN_TYPES, SerializedObject, serialize
from ray.core_worker import object_ref, shared_memory
from ray.core_worker.dependency_resolver import DependencyResolver
from ray.core_worker.function_manager import FunctionManager
from ray.core_worker.memory_store import (
    IN_STORE,
    INLINE,
    MemoryStore,
    StoredObject,
    nested_in_wire,
)
from ray.core_worker.object_reader import ObjectReader
from ray.core_worker.object_ref import ObjectRef
from ray.core_worker.placement_groups import PlacementGroupClient
from ray.core_worker.reference_counter import ReferenceCounter
from ray.core_worker.task_events import TaskEventBuffer
from ray.protocol import messages as msg
from ray.protocol.messages import (
    ActorMethodOptions,
    ActorOptions,
    ActorTaskSpec,
    ArgKind,
    Dispatcher,
    TaskArg,
    TaskOptions,
    TaskSpec,
    handles,
)

logger = logging.getLogger(__name__)

DRIVER, WORKER = "driver", "worker"


@dataclass(frozen=True)
class ActorInfo:
    """What a handle needs to know of an actor."""

    actor_id: bytes
    class_name: str
    max_task_retries: int
    function_key: bytes  # its class in the function table
    # Set when the actor lives as long as its handles (unnamed, not detached, created here): handles share it.
    scope_ref: ObjectRef | None = None


# The task an async actor's call runs as: its calls share one thread (and its `threading.local` task context), each
# in an asyncio Task of its own, whose context holds this.
_ASYNC_CALL_TASK_ID: contextvars.ContextVar[TaskID | None] = contextvars.ContextVar("ray_async_call_task_id",
                                                                                  default=None)


class CoreWorker:
    def __init__(self, mode: str, gcs_address: str, raylet_socket: str, node_id: str, node_ip: str,
                 session_dir: str, job_id: JobID, worker_id: WorkerID | None = None, namespace: str = "",
                 runtime_env: dict | None = None, num_prestart: int = 0):
        self.mode = mode
        self.gcs_address = gcs_address
        self.raylet_socket = raylet_socket
        self.node_id = node_id
        self.node_ip = node_ip
        self.session_dir = session_dir
        self.job_id = job_id
        self.worker_id = worker_id or WorkerID.from_random()
        self.namespace = namespace
        self.runtime_env = runtime_env or {}
        self.num_prestart = num_prestart
        self._gcs = None  # created on first use: plain task workers never load gRPC (~25 MB each)
        self.functions = FunctionManager(self)
        self.memory_store = MemoryStore()
        self.loop = framing.new_event_loop()
        self.resolver = DependencyResolver(self.worker_id.hex(), self.memory_store, self.loop)
        self._thread = threading.Thread(target=self._run_loop, name="ray-core-worker-io", daemon=True)
        self.refs = ReferenceCounter(self)
        self.placement_groups = PlacementGroupClient(self)
        # A worker process also receives the executor's messages (it adds its handlers when it starts).
        self.dispatcher = Dispatcher((msg.OWNER, msg.WORKER) if mode == WORKER else msg.OWNER, self, self.refs)
        self._actor_scopes: dict[bytes, bytes] = {}  # an actor's scope ref -> the actor (actors we created)
        self.reader = ObjectReader(self, in_worker=mode == WORKER)
        self._put_counter = itertools.count(1)
        self._task_context = threading.local()
        self.driver_task_id = TaskID.for_driver(job_id)
        self.task_events = TaskEventBuffer(self)
        self.shm_dir = ""
        self.raylet_tcp = ""
        self.raylet: framing.Connection | None = None
        self.pool: framing.ConnectionPool | None = None
        self.submitter = None
        self.actor_submitter = None
        self.executor = None  # set in workers
        self.connected = False
        self._exiting = False  # a worker the raylet asked to exit
        self._task_events_ended = False
        self._warned_shapes: set[tuple] = set()

    # ------------------------------------------------------------------ lifecycle
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self.run_sync(self._async_start(), timeout=60)
        object_ref.set_hooks(self)
        self.connected = True

    def run_sync(self, coro, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _async_start(self) -> None:
        from ray._common.net import bind_host
        from ray.core_worker.actor_submitter import ActorTaskSubmitter
        from ray.core_worker.task_submitter import NormalTaskSubmitter

        self.unix_path = framing.abstract_socket_name("worker", self.worker_id.hex()[:24])
        # A worker's task threads answer its callers themselves when they can (`TaskExecutor._reply`).
        self._unix_server, _ = await framing.serve(self.dispatcher, unix_path=self.unix_path,
                                                   thread_writes=self.mode == WORKER)
        self._tcp_server, port = await framing.serve(self.dispatcher, host=bind_host(self.node_ip), port=0,
                                                     thread_writes=self.mode == WORKER)
        self.address = {"worker_id": self.worker_id.hex(), "node_id": self.node_id,
                        "unix": self.unix_path, "tcp": f"{self.node_ip}:{port}"}
        self.pool = framing.ConnectionPool(self.dispatcher)
        self.raylet = await framing.connect(f"unix:{self.raylet_socket}", self.dispatcher, self._on_raylet_lost)
        reply = await self.raylet.request(msg.REGISTER_CLIENT, {
            "kind": self.mode, "worker_id": self.worker_id.hex(), "job_id": self.job_id.hex(),
            "address": self.address, "pid": os.getpid(), "runtime_env": self.runtime_env,
            "num_prestart": self.num_prestart,
        })
        self.shm_dir = reply["shm_dir"]
        self.raylet_tcp = reply["raylet_tcp"]
        self.submitter = NormalTaskSubmitter(self)
        self.actor_submitter = ActorTaskSubmitter(self)
        self.memory_store.on_wanted = self.actor_submitter.channels.claim
        if self.mode == DRIVER:
            self.task_events.record(self.driver_task_id.binary(), 0, task_events.RUNNING, {"info": {
                "name": "", "func_or_class_name": "", "type": task_events.DRIVER_TASK, "job_id": self.job_id.hex(),
                "parent_task_id": "", "actor_id": None, "required_resources": {}, "language": "PYTHON"}})
        self.task_events.start()

    def _on_raylet_lost(self, conn) -> None:
        if self.mode == WORKER:
            # A worker without its raylet is useless; the raylet's death kills us anyway.
            os._exit(0 if self._exiting else 1)

    async def exit_reporting(self, timeout_s: float) -> None:
        """A worker the raylet ends (io thread): the task events it has not reported yet go first, on the raylet
        connection, which then closes (its buffer written out first); the process exits once it has closed, or
        after `timeout_s` (Ray's core worker flushes its task events when it exits)."""
        self._exiting = True
        self.task_events.flush(everything=True)
        raylet = self.raylet
        if raylet is not None and not raylet.closed:
            raylet.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(raylet.wait_closed(), timeout_s)
        os._exit(0)

    def shutdown(self) -> None:
        if not self.connected:
            return
        self.connected = False
        object_ref.set_hooks(None)

        async def _close():
            self._end_task_events()
            if self.submitter is not None:
                self.submitter.shutdown()
            if self.actor_submitter is not None:
                self.actor_submitter.shutdown()
            self.pool.close_all()
            self.raylet.close()
            self._unix_server.close()
            self._tcp_server.close()

        try:
            self.run_sync(_close(), timeout=10)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if self._gcs is not None:
            self._gcs.close()

    def report_task_events_now(self) -> None:
        """A driver that ends, before its job is marked finished (the GCS then fails the job's tasks that have
        not ended): its own FINISHED and every event not reported yet go to its raylet now."""
        async def _end() -> None:
            self._end_task_events()

        with contextlib.suppress(Exception):
            self.run_sync(_end(), timeout=5)

    def _end_task_events(self) -> None:
        """Io thread, once: the driver's FINISHED, what is left reported, the report timer stopped."""
        if self._task_events_ended:
            return
        self._task_events_ended = True
        if self.mode == DRIVER:
            self.task_events.record(self.driver_task_id.binary(), 0, task_events.FINISHED)
        self.task_events.stop()

    @property
    def gcs(self):
        if self._gcs is None:
            from ray._common.gcs_client import GcsClient

            self._gcs = GcsClient(self.gcs_address)
        return self._gcs

    # The function table's KV: drivers talk to the GCS; workers go through their raylet (no gRPC here).
    def internal_kv_get(self, key: bytes, namespace: bytes | None = None) -> bytes | None:
        if self.mode == DRIVER or self._gcs is not None:
            return self.gcs.internal_kv_get(key, namespace=namespace)

        async def _get():
            return await self.raylet.request(msg.KV_GET, {"key": key, "namespace": namespace})

        return self.run_sync(_get(), timeout=60)

    def internal_kv_put(self, key: bytes, value: bytes, overwrite: bool = True,
                        namespace: bytes | None = None) -> int:
        if self.mode == DRIVER or self._gcs is not None:
            return self.gcs.internal_kv_put(key, value, overwrite=overwrite, namespace=namespace)

        async def _put():
            return await self.raylet.request(msg.KV_PUT, {"key": key, "value": value, "overwrite": overwrite,
                                                        "namespace": namespace})

        return self.run_sync(_put(), timeout=60)

    def conn_address(self, addr: dict) -> str:
        """How this process reaches a peer: its Unix socket on the same node, TCP otherwise."""
        if addr.get("node_id") == self.node_id and addr.get("unix"):
            return "unix:" + addr["unix"]
        return addr["tcp"]

    # ------------------------------------------------------------------ task context
    @property
    def current_task_id(self) -> TaskID:
        return _ASYNC_CALL_TASK_ID.get() or getattr(self._task_context, "task_id", None) or self.driver_task_id

    @staticmethod
    def set_async_call_task_id(task_id: TaskID) -> None:
        """Inside an async actor's call (its own asyncio Task): the task it runs as, for it alone."""
        _ASYNC_CALL_TASK_ID.set(task_id)

    def set_task_context(self, task_id: TaskID | None, **extra) -> None:
        self._task_context.task_id = task_id
        self._task_context.put_counter = itertools.count(1)
        for k, v in extra.items():
            setattr(self._task_context, k, v)

    def set_actor_call_context(self, task_id: TaskID, namespace: str, actor_context: dict[str, Any]) -> None:
        """An actor call's context: the actor's own part (`actor_context`) once per thread, the call's each time
        (the hot path of an actor's worker: ten attribute sets and a dict merge per call before)."""
        context = self._task_context
        if getattr(context, "actor_context", None) is not actor_context:
            self.set_task_context(task_id, lease_id=0, **actor_context)
            context.actor_context = actor_context
        context.task_id = task_id
        context.put_counter = itertools.count(1)
        context.namespace = namespace

    def task_context(self, name: str, default=None):
        if name == "task_id" and (async_call := _ASYNC_CALL_TASK_ID.get()) is not None:
            return async_call
        return getattr(self._task_context, name, default)

    # ------------------------------------------------------------------ reference counting (ObjectRef hooks)
    def add_local_ref(self, oid: bytes, owner: dict | None) -> None:
        self.refs.add_local(oid)

    def remove_local_ref(self, oid: bytes) -> None:
        self.refs.remove_local(oid)

    def on_ref_serialized(self, oid: bytes, owner: dict | None) -> None:
        self.refs.escape(oid)

    def on_ref_deserialized(self, ref: ObjectRef) -> None:
        self.refs.on_deserialized(ref)

    def _actor_scope_ref(self, actor_id: bytes, creation_task_id: bytes) -> ObjectRef:
        """The ref all handles of an actor we created share: when it is gone everywhere, so is the actor."""
        oid = ObjectID.for_return(TaskID(creation_task_id), 0).binary()
        self.refs.owned.add(oid)
        self._actor_scopes[oid] = actor_id
        ref = ObjectRef(oid, self.address)
        placeholder = serialize(None).to_bytes()  # no value: the ref is all that counts
        self.memory_store.put(oid, StoredObject(INLINE, placeholder, size=len(placeholder)))
        return ref

    def free_owned(self, oid: bytes) -> None:
        """Nothing references our object any more: drop its value, here and in the node's store."""
        actor_id = self._actor_scopes.pop(oid, None)
        if actor_id is not None and self.connected and self.actor_submitter is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.actor_submitter.out_of_scope, actor_id)
        stored = self.memory_store.delete(oid)
        if stored is not None and stored.kind == IN_STORE and self.connected:
            # A large object of this node goes back to the pool of recycled segments now, not when the raylet
            # reads the message: this process's next write (a put in a loop) finds it there.
            recycled = (shared_memory.recycle(self.shm_dir, oid.hex(), stored.size)
                        if stored.node_id == self.node_id else None)
            with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                self.loop.call_soon_threadsafe(self._free_in_store, oid, stored, recycled)

    def _free_in_store(self, oid: bytes, stored: StoredObject, recycled: str | None = None) -> None:
        if stored.node_id == self.node_id:
            if not self.raylet.closed:
                body: msg.FreeObjects = {"object_ids": [oid.hex()]}
                if recycled is not None:
                    body["recycled"] = {oid.hex(): recycled}
                self.raylet.notify(msg.FREE_OBJECTS, body)
            return

        async def _remote():
            try:
                conn = await self.pool.get(stored.raylet_tcp)
                conn.notify(msg.FREE_OBJECTS, {"object_ids": [oid.hex()]})
            except OSError:
                pass

        self.loop.create_task(_remote())

    def complete(self, task_id: bytes, returns: list, nested_holder: dict | None, pinned: list[bytes]) -> None:
        """A task's or actor call's results arrived (io thread): store them and release what the call pinned.

        When nothing in the results or the worker's holdings refers to the pinned objects, the pins go first, so
        a large argument freed by them is back in the pool (`free_owned`) before the caller wakes up to write
        its next one; otherwise the results adopt their refs before the pins go."""
        if nested_holder is None and not any(nested_in_wire(wire) for _, wire in returns):
            self.refs.unpin(pinned)
            for oid, wire in returns:
                self.add_owned_result(oid, wire)
            return
        for oid, wire in returns:
            self.add_owned_result(oid, wire)
        if nested_holder is not None:
            self.refs.release_holder(nested_holder, task_id)
        self.refs.unpin(pinned)

    def add_owned_result(self, oid: bytes, wire: tuple) -> None:
        """A task's return value arrived (io thread); we hold the refs inside it while it lives."""
        stored = StoredObject.from_wire(wire)
        nested = nested_in_wire(wire)
        if nested:
            stored.nested = self.refs.adopt_nested(nested)
        self.memory_store.put(oid, stored)
        self.refs.on_result_stored(oid)

    # ------------------------------------------------------------------ the front door: submitting work
    def submit_task(self, options: TaskOptions, args: tuple, kwargs: dict) -> list[ObjectRef]:
        """Submit one call of a remote function (any thread); returns refs to its `num_returns` results."""
        task_id = TaskID.for_task(self.job_id)
        return_ids = [ObjectID.for_return(task_id, i).binary() for i in range(options.num_returns)]
        encoded, pinned, keep = self._encode_args(args, kwargs)
        # Submitted by a task: `ray.cancel(recursive=True)` of that task reaches this one.
        parent = self.current_task_id.binary() if self.executor is not None else None
        spec = TaskSpec(options, task_id.binary(), encoded, tuple(kwargs), return_ids, self.address,
                        self.namespace, parent)
        refs = self._own_results(return_ids)
        self.refs.pin(pinned)
        self.submitter.submit_threadsafe(spec, pinned)
        del keep  # the pins hold large arguments from here on
        return refs

    def submit_actor_task(self, actor_id: bytes, options: ActorMethodOptions, args: tuple, kwargs: dict,
                          max_task_retries: int) -> list[ObjectRef]:
        """Call an actor's method (any thread); calls from this process reach the actor in order."""
        task_id = TaskID.for_actor_task(ActorID(actor_id))
        return_ids = [ObjectID.for_return(task_id, i).binary() for i in range(options.num_returns)]
        encoded, pinned, keep = self._encode_args(args, kwargs)
        spec = ActorTaskSpec(options, task_id.binary(), encoded, tuple(kwargs), return_ids, self.address,
                             self.namespace)
        refs = self._own_results(return_ids)
        self.refs.pin(pinned)
        self.actor_submitter.submit_threadsafe(actor_id, spec, pinned, max_task_retries,
                                               self.current_task_id.binary() if self.executor is not None else None)
        del keep
        return refs

    def create_actor(self, options: ActorOptions, args: tuple, kwargs: dict) -> ActorInfo:
        """Register an actor with the GCS, which creates (and restarts) it; raises ValueError for a taken name."""
        from ray.protocol import actor_pb2 as apb

        actor_id = ActorID.of(self.job_id)
        task_id = TaskID.for_actor_task(actor_id)
        encoded, _, keep = self._encode_args(args, kwargs)
        # The actor may start (and restart) much later, from arguments the GCS keeps: values put for large
        # arguments and refs inside arguments stay alive as long as this process.
        for ref in keep:
            self.refs.escape(ref._id)
        # The GCS forwards the arguments to the actor's worker: our own refs go as their values.
        if any(arg[0] == ArgKind.BY_REF for arg in encoded):
            error = self.run_sync(self.resolver.resolve(encoded))
            if error is not None:
                self.materialize(b"", error)  # raises the argument's error, as Ray does
        spec = apb.ActorCreationSpec(
            actor_id=actor_id.binary(), task_id=task_id.binary(), job_id=self.job_id.binary(),
            function_key=options.function_key, class_name=options.class_name, args=msg.args_to_proto(encoded),
            kwargs_keys=list(kwargs), resources=options.resources, placement_resources=options.placement_resources,
            runtime_env_json=json.dumps(options.runtime_env), scheduling_strategy_json=json.dumps(options.strategy),
            name=options.name, ray_namespace=options.namespace, is_detached=options.detached,
            max_restarts=options.max_restarts, max_task_retries=options.max_task_retries,
            max_concurrency=options.max_concurrency, owner_address_json=json.dumps(self.address),
        )
        reply = self.gcs.call(self.gcs.stubs.actor.RegisterActor,
                              apb.RegisterActorRequest(spec=spec, get_if_exists=options.get_if_exists))
        del keep
        if reply.code != 0:
            raise ValueError(reply.error_message)
        data = reply.actor
        if data.actor_id == actor_id.binary():
            parent = self.current_task_id.hex()
            self.task_events.record(task_id.binary(), 0, task_events.PENDING_ARGS_AVAIL, {"info": {
                "name": f"{options.class_name}.__init__", "func_or_class_name": f"{options.class_name}.__init__",
                "type": task_events.ACTOR_CREATION_TASK, "job_id": self.job_id.hex(), "parent_task_id": parent,
                "actor_id": actor_id.hex(), "required_resources": options.resources,
                "runtime_env_info": {"serialized_runtime_env": json.dumps(options.runtime_env, sort_keys=True)},
                "placement_group_id": options.strategy.get("placement_group_id") or None, "language": "PYTHON"}})
        scope_ref = None
        if not options.name and not options.detached and data.actor_id == actor_id.binary():
            scope_ref = self._actor_scope_ref(actor_id.binary(), task_id.binary())
        return ActorInfo(data.actor_id, data.class_name, data.max_task_retries, data.function_key, scope_ref)

    def named_actor(self, name: str, namespace: str) -> ActorInfo | None:
        """The live actor called `name` in `namespace`, if any."""
        from ray.protocol import actor_pb2 as apb

        reply = self.gcs.call(self.gcs.stubs.actor.GetNamedActorInfo,
                              apb.GetNamedActorInfoRequest(name=name, ray_namespace=namespace))
        if not reply.found:
            return None
        data = reply.actor
        return ActorInfo(data.actor_id, data.class_name, data.max_task_retries, data.function_key)

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        from ray.protocol import actor_pb2 as apb

        if no_restart:  # later calls from here fail in order after it (`mark_killed`), none races ahead
            self.actor_submitter.stop_direct(actor_id)
        self.gcs.call(self.gcs.stubs.actor.KillActorViaGcs,
                      apb.KillActorViaGcsRequest(actor_id=actor_id, force_kill=True, no_restart=no_restart))
        if no_restart:
            self.loop.call_soon_threadsafe(self.actor_submitter.mark_killed, actor_id,
                                           "The actor was killed by `ray.kill`.")

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        """`ray.cancel`: the task that computes `ref`, queued or running (a normal task or an actor call)."""
        task_id = ref._id[:24]

        def _cancel() -> None:
            if not self.submitter.cancel(task_id, force, recursive):
                self.actor_submitter.cancel(task_id, force)

        self.loop.call_soon_threadsafe(_cancel)

    def _own_results(self, return_ids: list[bytes]) -> list[ObjectRef]:
        self.refs.owned.update(return_ids)
        return [ObjectRef(oid, self.address) for oid in return_ids]

    def _encode_args(self, args: tuple, kwargs: dict) -> tuple[list[TaskArg], list[bytes], list[ObjectRef]]:
        """Task arguments for the wire: refs stay refs, small values inline, large values put in the store.
        Returns (encoded args, object ids to pin until the task ends, refs to keep alive until it is sent)."""
        encoded: list[TaskArg] = []
        pinned: list[bytes] = []
        keep: list[ObjectRef] = []
        limit = config().max_direct_call_object_size
        for value in (*args, *kwargs.values()):
            if isinstance(value, ObjectRef):
                encoded.append((ArgKind.BY_REF, value._id, value._owner))
                pinned.append(value._id)
                continue
            with object_ref.collecting_refs() as nested:
                ser = serialize(value)
            if ser.total_bytes <= limit:
                encoded.append((ArgKind.VALUE, ser.to_bytes()))
                # Refs inside an argument live until the task ends; the worker registers if it keeps one.
                pinned.extend(ref._id for ref in nested)
                keep.extend(nested)
            else:
                ref = self._put_serialized(ser, nested)
                keep.append(ref)
                encoded.append((ArgKind.BY_REF, ref._id, ref._owner))
                pinned.append(ref._id)
        return encoded, pinned, keep

    # ------------------------------------------------------------------ put / serialize values
    def store_value(self, oid: bytes, value: Any, owned: bool = True, is_error: bool = False) -> StoredObject:
        """Serialize a value (a put or a task's return); the result holds the refs found inside it."""
        if type(value) in PLAIN_TYPES:  # no ref can be inside
            return self._store_serialized(oid, serialize(value), (), is_error)
        with object_ref.collecting_refs() as nested:
            ser = serialize(value)
        return self._store_serialized(oid, ser, nested, is_error)

    def _store_serialized(self, oid: bytes, ser: SerializedObject, nested: Sequence[ObjectRef],
                          is_error: bool = False) -> StoredObject:
        size = ser.total_bytes
        if size <= config().max_direct_call_object_size:
            stored = StoredObject(INLINE, ser.to_bytes(), is_error, size=size)
        else:
            shared_memory.write(self.shm_dir, oid.hex(), ser)
            stored = StoredObject(IN_STORE, None, is_error, self.node_id, self.raylet_tcp, size)
            self.loop.call_soon_threadsafe(self._notify_created, oid.hex(), size)
        stored.nested = tuple(nested)
        return stored

    def _notify_created(self, oid_hex: str, size: int) -> None:
        if not self.raylet.closed:
            self.raylet.notify(msg.OBJECT_CREATED, {"object_id": oid_hex, "size": size})

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError("Calling 'put' on an ray.ObjectRef is not allowed. If you really want to do this, "
                            "you can wrap the ray.ObjectRef in a list and call 'put' on it.")
        oid = self.next_put_id()
        ref = ObjectRef(oid, self.address)
        self.memory_store.put(oid, self.store_value(oid, value))
        return ref

    def _put_serialized(self, ser: SerializedObject, nested: list[ObjectRef]) -> ObjectRef:
        """`put` of a value serialized already (a large task argument): serialized once, not twice."""
        oid = self.next_put_id()
        ref = ObjectRef(oid, self.address)
        self.memory_store.put(oid, self._store_serialized(oid, ser, nested))
        return ref

    def next_put_id(self) -> bytes:
        counter = getattr(self._task_context, "put_counter", None) or self._put_counter
        oid = ObjectID.for_put(self.current_task_id, next(counter)).binary()
        self.refs.owned.add(oid)
        return oid

    # ------------------------------------------------------------------ get / wait (object_reader.py)
    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        return self.reader.get(refs, timeout)

    def wait(self, refs: list[ObjectRef], num_returns: int,
             timeout: float | None) -> tuple[list[ObjectRef], list[ObjectRef]]:
        return self.reader.wait(refs, num_returns, timeout)

    def materialize(self, oid: bytes, stored: StoredObject) -> Any:
        return self.reader.materialize(oid, stored)

    def future_for(self, ref: ObjectRef) -> concurrent.futures.Future:
        return self.reader.future_for(ref)

    # ------------------------------------------------------------------ serving peers (io thread)
    @handles(msg.GET_OBJECT)
    def serve_object(self, conn: framing.Connection, body: msg.ObjectById):
        """A borrower asks for our object's value: now if we have it, else when it arrives."""
        oid = body["object_id"]
        stored = self.memory_store.get(oid)
        if stored is not None:
            return stored.to_wire()
        if oid not in self.refs.owned:
            return None
        fut = self.loop.create_future()

        def arrived():
            self.loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

        if self.memory_store.add_waiter(oid, arrived):
            fut.set_result(None)

        async def _wait():
            await fut
            s = self.memory_store.get(oid)
            return s.to_wire() if s is not None else None

        return _wait()

    @handles(msg.GET_OBJECT_REFS)
    def object_refs(self, conn: framing.Connection, body: None) -> list[dict]:
        """The refs this process holds, as the state API lists them (`ray list objects`, `ray memory`)."""
        from ray.core_worker.object_states import object_rows

        return object_rows(self)

    @handles(msg.LEASE_INFEASIBLE)
    def warn_infeasible(self, conn: framing.Connection, body: msg.LeaseInfeasible) -> None:
        resources = body["resources"]
        shape = tuple(sorted(resources.items()))
        if shape in self._warned_shapes:
            return
        self._warned_shapes.add(shape)
        threading.Thread(target=self._print_infeasible, args=(resources,), daemon=True).start()

    def _print_infeasible(self, resources: dict) -> None:
        """The warning; and, unless an autoscaler runs (it may add a node that fits, and reports in `ray status`
        what no node type can hold), that no node can hold it. Off the io thread: it asks the GCS."""
        text = ("Warning: The following resource request cannot be scheduled right now: "
                f"{resources}. This is likely due to all cluster resources being claimed by actors. Consider "
                "creating fewer actors or adding more nodes to this Ray cluster.")
        autoscaling = False
        for attempt in range(3):  # an autoscaler reports within its first second (1 s rounds in tests)
            try:
                autoscaling = self.gcs.get_cluster_status(timeout_s=5).autoscaling_state.autoscaler_state_version > 0
            except Exception:  # noqa: BLE001 - the warning matters more than the check
                break
            if autoscaling or attempt == 2:
                break
            time.sleep(1)
        if autoscaling:
            text += " The required resources may be added as autoscaling takes place."
        else:
            text += (f"\nError: No available node types can fulfill resource request {resources}. Add suitable "
                     "node types to this cluster to resolve this issue.")
        print(text, file=sys.stderr, flush=True)
