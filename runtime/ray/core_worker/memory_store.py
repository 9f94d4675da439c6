"""The core worker's in-process store: results of owned tasks, small values, cached copies of borrowed ones.

Entries are `StoredObject`s; waiters are callbacks run (in the setter's thread) when a value arrives.
Thread-safe: the io thread sets results, user threads read and wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ray._common.serialization import serialize

INLINE, IN_STORE = 0, 1


@dataclass(slots=True)
class StoredObject:
    kind: int  # INLINE: `data` holds the serialized value; IN_STORE: it lives in a node's shared memory
    data: bytes | None
    is_error: bool = False
    node_id: str = ""
    raylet_tcp: str = ""
    size: int = 0
    # The refs pickled inside the value. The owner's entry holds them (ObjectRef instances), so they live
    # as long as this value can still be read; on the wire they travel as (object id, owner) pairs.
    nested: tuple = ()

    def to_wire(self) -> tuple:
        """ray.protocol.messages.StoredObjectWire's layout, as a plain tuple (cheaper to pickle)."""
        wire = (self.kind, self.data, self.is_error, self.node_id, self.raylet_tcp, self.size)
        if self.nested:
            wire += (tuple((r._id, r._owner) for r in self.nested),)
        return wire

    @classmethod
    def from_wire(cls, wire: tuple) -> StoredObject:
        """A copy of the value; the nested refs are not held (see `nested_in_wire`)."""
        return cls(*wire[:6])


def error_object(error: BaseException) -> StoredObject:
    """An error as a stored value: whoever reads it gets the exception raised."""
    ser = serialize(error)
    return StoredObject(INLINE, ser.to_bytes(), True, size=ser.total_bytes)


def nested_in_wire(wire: tuple) -> tuple:
    """The (object id, owner) pairs of the refs inside a value on the wire."""
    return wire[6] if len(wire) > 6 else ()


class MemoryStore:
    def __init__(self) -> None:
        # Re-entrant, as the reference counter's: the collector may run an ObjectRef's __del__ (which frees an
        # owned value here) while this thread is inside one of the sections below; a plain Lock deadlocked
        # there. The sections never iterate a dict the re-entered `delete` changes.
        self._lock = threading.RLock()
        self._values: dict[bytes, StoredObject] = {}
        self._waiters: dict[bytes, list[Callable[[], None]]] = {}
        # Called with every arriving object id: one registration covers a `ray.wait` over many refs.
        self._arrival_listeners: list[Callable[[bytes], None]] = []
        # Told the ids a waiter registers for before they are here (the actor submitter then has this process's
        # io thread read an answer that a caller's own channel would otherwise wait for; actor_channels.py).
        self.on_wanted: Callable[[tuple[bytes, ...]], None] | None = None

    def put(self, oid: bytes, value: StoredObject) -> None:
        with self._lock:
            self._values[oid] = value
            callbacks = self._waiters.pop(oid, ())
            listeners = tuple(self._arrival_listeners) if self._arrival_listeners else ()
        for cb in callbacks:
            cb()
        for listener in listeners:
            listener(oid)

    def present(self, oids: list[bytes] | set[bytes]) -> set[bytes]:
        """The ones of `oids` that are here (one C-level set operation, not a call per id)."""
        with self._lock:
            return self._values.keys() & oids

    def add_arrival_listener(self, listener: Callable[[bytes], None]) -> None:
        with self._lock:
            self._arrival_listeners.append(listener)

    def remove_arrival_listener(self, listener: Callable[[bytes], None]) -> None:
        with self._lock:
            self._arrival_listeners.remove(listener)

    def get(self, oid: bytes) -> StoredObject | None:
        return self._values.get(oid)

    def contains(self, oid: bytes) -> bool:
        return oid in self._values

    def add_waiter(self, oid: bytes, callback: Callable[[], None], reads_itself: bool = False) -> bool:
        """Register `callback` for when `oid` arrives; returns True (and registers nothing) if it is here.
        `reads_itself`: the waiting thread fetches an answer on its own channel itself (`on_wanted` is not told)."""
        with self._lock:
            if oid in self._values:
                return True
            self._waiters.setdefault(oid, []).append(callback)
        if self.on_wanted is not None and not reads_itself:
            self.on_wanted((oid,))
        return False

    def remove_waiter(self, oid: bytes, callback: Callable[[], None]) -> None:
        """Forget a waiter registered by `add_waiter` that gave up (a timeout); nothing if it ran already."""
        with self._lock:
            callbacks = self._waiters.get(oid)
            if callbacks is not None and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del self._waiters[oid]

    def delete(self, oid: bytes) -> StoredObject | None:
        with self._lock:
            return self._values.pop(oid, None)

    def __len__(self) -> int:
        return len(self._values)
