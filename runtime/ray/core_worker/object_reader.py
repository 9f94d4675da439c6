"""Reading objects: `ray.get`, `ray.wait` and futures on refs (any user thread). It waits until each value is here
(an owned task's result arrives from its worker; a borrowed value is fetched from its owner by the io thread), then
turns it into a Python value: inline bytes, this node's shared memory (restored first if it was spilled), or
another node's copy, which this node's raylet pulls here first."""

from __future__ import annotations

import _thread
import concurrent.futures
import threading
import time
from typing import Any

from ray import exceptions
from ray._common import framing
from ray._common.serialization import deserialize
from ray.core_worker import shared_memory
from ray.core_worker.memory_store import INLINE, StoredObject, error_object
from ray.core_worker.object_ref import ObjectRef
from ray.protocol import messages as msg


class ObjectReader:
    def __init__(self, core_worker: Any, in_worker: bool):
        """`core_worker`: the process's CoreWorker (not imported here: it imports this); `in_worker`: this process
        is a worker (a task blocked in `ray.get` tells its raylet, which may lease another worker meanwhile)."""
        self.cw = core_worker
        self.store = core_worker.memory_store
        self.in_worker = in_worker
        self._fetch_lock = threading.Lock()
        self._fetching: set[bytes] = set()  # borrowed objects being fetched from their owners

    def ensure_local(self, oid: bytes, owner: dict | None) -> None:
        """Start fetching a borrowed object from its owner unless it is here or on its way."""
        if self.store.contains(oid) or oid in self.cw.refs.owned or owner is None:
            return
        if owner.get("worker_id") == self.cw.worker_id.hex():
            return
        with self._fetch_lock:
            if oid in self._fetching:
                return
            self._fetching.add(oid)
        self.cw.loop.call_soon_threadsafe(lambda: self.cw.loop.create_task(self._fetch_from_owner(oid, owner)))

    async def _fetch_from_owner(self, oid: bytes, owner: dict) -> None:
        try:
            conn = await self.cw.pool.get(self.cw.conn_address(owner))
            wire = await conn.request(msg.GET_OBJECT, {"object_id": oid})
            if wire is None:
                stored = error_object(exceptions.ObjectLostError(oid.hex(), str(owner.get("tcp"))))
            else:
                stored = StoredObject.from_wire(wire)
        except (OSError, framing.ConnectionLost, framing.RemoteError):
            stored = error_object(exceptions.OwnerDiedError(oid.hex(), str(owner.get("tcp"))))
        finally:
            with self._fetch_lock:
                self._fetching.discard(oid)
        self.store.put(oid, stored)

    def wait_stored(self, items: list[tuple[bytes, dict | None]], num: int, timeout: float | None,
                    fetch: bool = True) -> list[bool]:
        """Block until `num` of the objects are available here; returns readiness flags.

        Costs a few set operations plus one listener, whatever the number of refs: `ray.wait` in a loop
        over a long list is a benchmark row (bench/: "ray.wait on 1000 refs")."""
        oids = [oid for oid, _ in items]
        if fetch:
            owned = self.cw.refs.owned
            for oid, owner in items:
                if oid not in owned:
                    self.ensure_local(oid, owner)
        here = self.store.present(oids)
        if len(here) < num and num == len(oids) == len(here) + 1:  # `ray.get` of one ref, most often
            (oid,) = set(oids) - here
            if self._wait_one(oid, timeout):
                here.add(oid)
        elif len(here) < num:
            missing = set(oids) - here
            if self.cw.actor_submitter is not None:
                self.cw.actor_submitter.channels.claim(missing)
            event = threading.Event()
            lock = threading.Lock()
            count = [len(here)]

            def arrived(oid: bytes) -> None:
                if oid in missing:
                    with lock:
                        if oid in missing:
                            missing.discard(oid)
                            count[0] += 1
                            if count[0] >= num:
                                event.set()

            self.store.add_arrival_listener(arrived)
            for oid in self.store.present(missing):  # arrived while we registered
                arrived(oid)
            blocked = self._notify_blocked() if not event.is_set() else False
            try:
                event.wait(timeout)
            finally:
                self.store.remove_arrival_listener(arrived)
                if blocked:
                    self._notify_unblocked()
            here = self.store.present(oids)
        return [oid in here for oid in oids]

    def _wait_one(self, oid: bytes, timeout: float | None) -> bool:
        """Block until one object is here; whether it came in time. The io thread wakes this thread by releasing a
        bare lock: one futex call on each side, where an `Event` (a condition and its lock) took about twice as long
        to wake a sync caller."""
        arrived = _thread.allocate_lock()
        arrived.acquire()
        if self.store.add_waiter(oid, arrived.release, reads_itself=True):
            return True
        blocked = self._notify_blocked()
        try:
            if self.cw.actor_submitter is not None:  # an actor call's answer on this thread's own channel: read here
                deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
                self.cw.actor_submitter.channels.read_reply(oid, None if timeout is None else max(timeout, 0.0))
                if deadline is not None:
                    timeout = deadline - time.monotonic()
            if arrived.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
                return True
            self.store.remove_waiter(oid, arrived.release)
            return self.store.contains(oid)
        finally:
            if blocked:
                self._notify_unblocked()

    def _notify_blocked(self) -> bool:
        lease_id = self.cw.task_context("lease_id", 0)
        if not self.in_worker or not lease_id or self.cw.task_context("is_actor", False):
            return False
        self.cw.executor.task_blocked()
        self.cw.loop.call_soon_threadsafe(self._raylet_notify, msg.NOTIFY_BLOCKED, {"lease_id": lease_id})
        return True

    def _notify_unblocked(self) -> None:
        lease_id = self.cw.task_context("lease_id", 0)
        self.cw.loop.call_soon_threadsafe(self._raylet_notify, msg.NOTIFY_UNBLOCKED, {"lease_id": lease_id})

    def _raylet_notify(self, method: str, body: dict) -> None:
        if not self.cw.raylet.closed:
            self.cw.raylet.notify(method, body)

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        items = [(r._id, r._owner) for r in refs]
        stored = [self.store.get(oid) for oid, _ in items]
        if any(s is None for s in stored):
            start = time.monotonic()
            unique = list({oid: owner for oid, owner in items}.items())  # `ray.get([r, r])` is allowed
            ready = self.wait_stored(unique, len(unique), timeout)
            if not all(ready):
                raise exceptions.GetTimeoutError(
                    f"Get timed out: some object(s) not ready after {timeout} s "
                    f"(waited {time.monotonic() - start:.1f} s).")
            stored = [self.store.get(oid) for oid, _ in items]
        values = []
        for (oid, _), s in zip(items, stored, strict=True):
            if s is None:  # freed concurrently; cannot happen while the caller holds the ref
                raise exceptions.ObjectLostError(oid.hex())
            values.append(self.materialize(oid, s))
        return values

    def wait(self, refs: list[ObjectRef], num_returns: int,
             timeout: float | None) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """`ray.wait`: (ready, not ready), in the order given, with at most `num_returns` ready. Ready means
        readable here: borrowed values are fetched (Ray's default, fetch_local=True)."""
        flags = self.wait_stored([(r._id, r._owner) for r in refs], num_returns, timeout)
        ready: list[ObjectRef] = []
        not_ready: list[ObjectRef] = []
        for ref, is_ready in zip(refs, flags, strict=True):
            (ready if is_ready and len(ready) < num_returns else not_ready).append(ref)
        return ready, not_ready

    def materialize(self, oid: bytes, stored: StoredObject) -> Any:
        if stored.kind == INLINE:
            value = deserialize(stored.data)
        elif stored.node_id == self.cw.node_id:
            value = self._read_local(oid)
        else:
            value = self._read_remote(oid, stored)
        if stored.is_error:
            if isinstance(value, exceptions.RayTaskError):
                raise value.as_instanceof_cause()
            raise value
        return value

    def _read_local(self, oid: bytes) -> Any:
        try:
            return shared_memory.read(self.cw.shm_dir, oid.hex())
        except FileNotFoundError:
            pass
        # Spilled to disk: ask the raylet to restore it into shared memory.
        async def _restore():
            return await self.cw.raylet.request(msg.RESTORE_OBJECT, {"object_id": oid.hex()})

        restored = self.cw.run_sync(_restore(), timeout=300)
        if not restored:
            raise exceptions.ObjectLostError(oid.hex())
        return shared_memory.read(self.cw.shm_dir, oid.hex())

    def _read_remote(self, oid: bytes, stored: StoredObject) -> Any:
        """A value held on another node: read from this node's copy, which this node's raylet pulls first if
        it is not here (one pull per object for all of the node's readers; `raylet/object_manager.py`)."""
        oid_hex = oid.hex()
        for _ in range(3):  # a copy can be evicted between its pull and the read: pulled again
            try:
                return shared_memory.read(self.cw.shm_dir, oid_hex)
            except FileNotFoundError:
                pass

            async def _pull() -> bool:
                return await self.cw.raylet.request(msg.PULL_OBJECT, {"object_id": oid_hex, "size": stored.size,
                                                                   "source": stored.raylet_tcp})

            try:
                pulled = self.cw.run_sync(_pull(), timeout=300 + stored.size / 2**25)  # 300 s, plus 1 s per 32 MiB
            except (OSError, framing.RemoteError) as e:
                raise exceptions.ObjectLostError(oid_hex) from e
            if not pulled:
                raise exceptions.ObjectLostError(oid_hex)
        raise exceptions.ObjectLostError(oid_hex)

    def future_for(self, ref: ObjectRef) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        oid = ref._id

        def done():
            try:
                fut.set_result(self.materialize(oid, self.store.get(oid)))
            except BaseException as e:
                fut.set_exception(e)

        self.ensure_local(oid, ref._owner)
        if self.store.add_waiter(oid, lambda: threading.Thread(target=done, daemon=True).start()):
            done()
        return fut

