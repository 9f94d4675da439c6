"""Distributed reference counting: how long each object's value must live.

A value lives while any process can still reach it:
- local refs: `ObjectRef` instances in this process;
- submitted refs: pending tasks of this process take it as an argument (top-level or nested in a value);
- borrowers (at the owner): other processes that deserialized a ref to it and still hold one;
- nesting: a stored value contains a ref to it (the value's owner holds those refs in `StoredObject.nested`).

A process that deserializes a ref it does not own registers with the owner (`add_borrower`, acknowledged)
and says `remove_borrower` when its last ref goes. A ref is only ever handed on while its sender holds it,
so the owner never sees zero holders in between, provided that a process sends nothing that lets go of a
ref (a `remove_borrower`, a `release_nested`, a task's reply) before the registrations it made earlier
are acknowledged. `after_registrations` and the per-owner outboxes keep that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ray._common import framing
from ray.core_worker.memory_store import MemoryStore
from ray.core_worker.object_ref import ObjectRef
from ray.protocol import messages as msg
from ray.protocol.messages import ADD_BORROWER, RELEASE_NESTED, REMOVE_BORROWER, handles

logger = logging.getLogger(__name__)


class Owner(Protocol):
    """What reference counting needs of its core worker (which owns it)."""

    address: msg.Address
    connected: bool
    loop: asyncio.AbstractEventLoop
    memory_store: MemoryStore
    pool: framing.ConnectionPool

    def conn_address(self, addr: msg.Address) -> str: ...

    def free_owned(self, oid: bytes) -> None: ...


class ReferenceCounter:
    def __init__(self, core_worker: Owner):
        self.cw = core_worker
        # Re-entrant: an ObjectRef's __del__ may run (garbage collection) while this thread holds the lock.
        self._lock = threading.RLock()
        self.local: dict[bytes, int] = {}
        self.submitted: dict[bytes, int] = {}
        self.owned: set[bytes] = set()
        # Refs pickled where nobody can tell when the bytes go away: kept until this process exits.
        self.escaped: set[bytes] = set()
        self.borrowing: dict[bytes, str] = {}  # borrowed object -> its owner's address, as we reach it
        self.borrowers: dict[bytes, set[framing.Connection]] = {}  # owned object -> borrowers (io thread)
        self._held_for_caller: dict[bytes, tuple[ObjectRef, ...]] = {}  # task id -> refs in its returns
        self._outboxes: dict[str, deque] = {}  # owner address -> messages in order (io thread)
        self._registrations = RegistrationOrder()  # add_borrower messages sent and acknowledged (io thread)
        self._posted: deque[None] = deque()  # one per message posted to the io thread and not yet in an outbox

    # ------------------------------------------------------------------ counts (any thread)
    def add_local(self, oid: bytes) -> None:
        with self._lock:
            self.local[oid] = self.local.get(oid, 0) + 1

    def remove_local(self, oid: bytes) -> None:
        with self._lock:
            n = self.local.get(oid, 0) - 1
            if n > 0:
                self.local[oid] = n
                return
            self.local.pop(oid, None)
            self._release_if_unreferenced(oid)

    def pin(self, oids: list[bytes]) -> None:
        with self._lock:
            for oid in oids:
                self.submitted[oid] = self.submitted.get(oid, 0) + 1

    def unpin(self, oids: list[bytes]) -> None:
        with self._lock:
            for oid in oids:
                n = self.submitted.get(oid, 0) - 1
                if n > 0:
                    self.submitted[oid] = n
                    continue
                self.submitted.pop(oid, None)
                self._release_if_unreferenced(oid)

    def is_referenced(self, oid: bytes) -> bool:
        return bool(self.local.get(oid) or self.submitted.get(oid) or self.borrowers.get(oid))

    def escape(self, oid: bytes) -> None:
        self.escaped.add(oid)

    def on_result_stored(self, oid: bytes) -> None:
        """An owned task's value arrived: free it at once if nobody wants it any more."""
        with self._lock:
            self._release_if_unreferenced(oid)

    def _release_if_unreferenced(self, oid: bytes) -> None:
        if self.is_referenced(oid) or oid in self.escaped:
            return
        if oid in self.owned:
            if not self.cw.memory_store.contains(oid):
                return  # still being computed: freed when the unreferenced result arrives
            self.owned.discard(oid)
            self.cw.free_owned(oid)
            return
        self.cw.memory_store.delete(oid)  # our cached copy
        owner = self.borrowing.pop(oid, None)
        if owner is not None:
            self._post(owner, REMOVE_BORROWER, oid)

    # ------------------------------------------------------------------ borrowing (any thread)
    def on_deserialized(self, ref: ObjectRef) -> None:
        owner = ref._owner
        if owner is None or owner.get("worker_id") == self.cw.address["worker_id"]:
            return
        with self._lock:
            if ref._id in self.borrowing:
                return
            address = self.cw.conn_address(owner)
            self.borrowing[ref._id] = address
        self._post(address, ADD_BORROWER, ref._id)

    def adopt_nested(self, nested_wire: tuple) -> tuple[ObjectRef, ...]:
        """Hold the refs inside a value that arrived from elsewhere (this process owns the value)."""
        refs = tuple(ObjectRef(oid, owner) for oid, owner in nested_wire)
        for ref in refs:
            self.on_deserialized(ref)
        return refs

    # ------------------------------------------------------------------ task returns that contain refs
    def hold_for_caller(self, task_id: bytes, refs: tuple[ObjectRef, ...]) -> None:
        """Keep the refs inside a task's return values until its caller has registered as their borrower."""
        with self._lock:
            self._held_for_caller[task_id] = self._held_for_caller.get(task_id, ()) + refs

    def release_holder(self, holder: dict, task_id: bytes) -> None:
        """Caller side: our registrations for a task's nested returns are on their way; let the worker go."""
        self._post(self.cw.conn_address(holder), RELEASE_NESTED, task_id)

    # ------------------------------------------------------------------ owner side (io thread)
    @handles(ADD_BORROWER)
    def add_borrower(self, conn: framing.Connection, oid: bytes) -> bool:
        if oid in self.owned:
            borrowed = conn.peer_info.get("borrowed")
            if borrowed is None:
                borrowed = conn.peer_info["borrowed"] = set()
                conn.on_close_callbacks.append(self._borrower_gone)
            borrowed.add(oid)
            self.borrowers.setdefault(oid, set()).add(conn)
        return True

    @handles(REMOVE_BORROWER)
    def remove_borrower(self, conn: framing.Connection, oid: bytes) -> None:
        conn.peer_info.get("borrowed", set()).discard(oid)
        self._drop_borrower(conn, oid)

    @handles(RELEASE_NESTED)
    def release_nested(self, conn: framing.Connection, task_id: bytes) -> None:
        with self._lock:
            held = self._held_for_caller.pop(task_id, ())
        del held  # the refs go here, after the caller's registrations reached their owners

    def _drop_borrower(self, conn: framing.Connection, oid: bytes) -> None:
        conns = self.borrowers.get(oid)
        if conns is None:
            return
        conns.discard(conn)
        if not conns:
            del self.borrowers[oid]
            with self._lock:
                self._release_if_unreferenced(oid)

    def _borrower_gone(self, conn: framing.Connection) -> None:
        """A borrower's connection closed (it exited or died): it holds nothing any more."""
        for oid in conn.peer_info.pop("borrowed", ()):
            self._drop_borrower(conn, oid)

    # ------------------------------------------------------------------ ordered messages to owners
    def registrations_settled(self) -> bool:
        """Any thread: every registration this process made is acknowledged (an answer may go out now)."""
        return not self._posted and not self._registrations.pending()

    def after_registrations(self, callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(*args)` on the io thread once the registrations sent so far are acknowledged."""
        barrier = self._registrations.barrier(self.cw.loop)
        if barrier is None:
            callback(*args)
            return
        barrier.add_done_callback(lambda _: callback(*args))

    def _post(self, address: str, method: str, body: Any) -> None:
        if not self.cw.connected:
            return
        self._posted.append(None)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is shutting down
            self.cw.loop.call_soon_threadsafe(self._enqueue, address, method, body)

    def _enqueue(self, address: str, method: str, body: Any) -> None:
        try:
            self._enqueue_now(address, method, body)
        finally:
            self._posted.popleft()  # after a registration is numbered: `registrations_settled` never sees a gap

    def _enqueue_now(self, address: str, method: str, body: Any) -> None:
        if method == ADD_BORROWER:
            entry = (method, body, self._registrations.sent(self.cw.loop), None)
        else:  # lets go of something: only after every registration made before it
            entry = (method, body, None, self._registrations.barrier(self.cw.loop))
        queue = self._outboxes.get(address)
        if queue is None:
            queue = self._outboxes[address] = deque()
            self.cw.loop.create_task(self._drain(address, queue))
        queue.append(entry)

    async def _drain(self, address: str, queue: deque) -> None:
        try:
            conn = await self.cw.pool.get(address)
        except OSError:
            conn = None  # the owner is gone: its objects are gone with it
        while queue:
            method, body, ack, earlier = queue.popleft()
            if earlier is not None:
                await earlier
            if conn is None or conn.closed:
                if ack is not None and not ack.done():
                    ack.set_result(None)
                continue
            if ack is not None:
                conn.request(method, body).add_done_callback(lambda f, ack=ack: _acknowledge(f, ack))
            else:
                with contextlib.suppress(framing.ConnectionLost):
                    conn.notify(method, body)
        del self._outboxes[address]


def _acknowledge(reply: asyncio.Future, ack: asyncio.Future) -> None:
    if not reply.cancelled():
        reply.exception()  # retrieved: an owner that died answers nothing, and that is fine
    if not ack.done():
        ack.set_result(None)


class RegistrationOrder:
    """The add_borrower registrations this process sent, in order, and barriers behind them.

    A message that lets go of a ref waits until every registration sent before it is acknowledged. With
    registrations numbered as they are sent, that is one number per barrier (the next number when it was
    made) compared with the lowest unacknowledged one: O(1) per message. (Waiting on the set of pending
    acknowledgements instead cost O(pending) per message: a value holding 10,000 refs, dropped while its
    registrations were in flight, kept the io thread busy for minutes.)
    """

    def __init__(self) -> None:
        self._next = 0  # number of the next registration
        self._pending: deque[int] = deque()  # sent, in order; the first one not yet acknowledged leads
        self._acked_early: set[int] = set()  # acknowledged while an earlier one was still pending
        self._barriers: deque[tuple[int, asyncio.Future]] = deque()  # (registrations before it, future)

    @property
    def unacknowledged(self) -> int:
        return len(self._pending) - len(self._acked_early)

    def sent(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        """Number a registration; returns the future to resolve when its owner acknowledges it."""
        seq = self._next
        self._next += 1
        self._pending.append(seq)
        ack = loop.create_future()
        ack.add_done_callback(lambda _: self._acknowledged(seq))
        return ack

    def pending(self) -> bool:
        """Any thread: a registration is not acknowledged yet."""
        return bool(self._pending)

    def barrier(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future | None:
        """A future done once every registration sent so far is acknowledged (None: they already are)."""
        if not self._pending:
            return None
        done = loop.create_future()
        self._barriers.append((self._next, done))
        return done

    def _acknowledged(self, seq: int) -> None:
        self._acked_early.add(seq)
        while self._pending and self._pending[0] in self._acked_early:
            self._acked_early.discard(self._pending.popleft())
        # Every registration numbered below this is acknowledged.
        low = self._pending[0] if self._pending else self._next
        while self._barriers and self._barriers[0][0] <= low:
            _, done = self._barriers.popleft()
            if not done.done():
                done.set_result(None)
