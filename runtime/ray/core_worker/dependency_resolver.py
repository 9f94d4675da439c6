"""Resolving a task's own-ref arguments before it leaves its owner (Ray's LocalDependencyResolver).

A task (or an actor's constructor) may take refs to objects this process owns and has not computed yet.
The owner waits for them, then sends small values inline and large ones as their store location, so the
executor never has to call back. Refs owned by others travel as they are (the executor borrows them).
Used by both submitters and by actor creation; runs on the io thread.
"""

from __future__ import annotations

import asyncio

from ray import exceptions
from ray._common.config import config
from ray.core_worker.memory_store import INLINE, MemoryStore, StoredObject, error_object
from ray.protocol.messages import ArgKind, TaskArg


class DependencyResolver:
    def __init__(self, worker_id: str, memory_store: MemoryStore, loop: asyncio.AbstractEventLoop):
        self._worker_id = worker_id  # whose refs are "own"
        self._store = memory_store
        self._loop = loop

    async def resolve(self, args: list[TaskArg]) -> StoredObject | None:
        """Replace, in place, each BY_REF argument this process owns by its value (VALUE or STORED). Returns
        the error object of the first argument that failed (the task then fails with it without running)."""
        for i, arg in enumerate(args):
            if arg[0] != ArgKind.BY_REF or arg[2].get("worker_id") != self._worker_id:
                continue
            oid = arg[1]
            stored = self._store.get(oid)
            if stored is None:
                await self._arrival(oid)
                stored = self._store.get(oid)
            if stored is None:
                return error_object(exceptions.ObjectLostError(oid.hex()))
            if stored.is_error:
                return stored
            if stored.kind == INLINE and stored.size <= config().max_direct_call_object_size:
                args[i] = (ArgKind.VALUE, stored.data)
            else:
                args[i] = (ArgKind.STORED, oid, stored.to_wire())
        return None

    async def _arrival(self, oid: bytes) -> None:
        fut = self._loop.create_future()

        def arrived() -> None:  # runs in the thread that stores the value
            self._loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

        if not self._store.add_waiter(oid, arrived):
            await fut
