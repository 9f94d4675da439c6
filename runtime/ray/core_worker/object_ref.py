"""`ObjectRef`: a future for a value owned by one process, counted for distributed reference counting."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

# Set by the core worker of this process: it counts refs and resolves futures.
_hooks: Any = None
_serialization_context = threading.local()


def set_hooks(hooks: Any) -> None:
    global _hooks
    _hooks = hooks


@contextlib.contextmanager
def collecting_refs() -> Iterator[list[ObjectRef]]:
    """Collect the refs pickled inside the block: the caller keeps them alive as long as the bytes live
    (a `ray.put` value, a task's arguments or return value) instead of pinning them forever."""
    outer = getattr(_serialization_context, "refs", None)
    refs: list[ObjectRef] = []
    _serialization_context.refs = refs
    try:
        yield refs
    finally:
        _serialization_context.refs = outer
        if outer is not None:
            outer.extend(refs)


class ObjectRef:
    __slots__ = ("_id", "_owner", "_counted", "__weakref__")

    def __init__(self, object_id: bytes, owner_address: dict | None = None, _count: bool = True):
        self._id = object_id
        self._owner = owner_address
        self._counted = False
        if _count and _hooks is not None:
            _hooks.add_local_ref(object_id, owner_address)
            self._counted = True

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self):
        from ray._common.ids import TaskID

        return TaskID(self._id[:24])

    @property
    def owner_address(self) -> dict | None:
        return self._owner

    def __del__(self):
        if self._counted and _hooks is not None:
            try:
                _hooks.remove_local_ref(self._id)
            except Exception:  # interpreter shutdown
                pass

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"ObjectRef({self.hex()})"

    def __reduce__(self):
        collected = getattr(_serialization_context, "refs", None)
        if collected is not None:
            collected.append(self)
        elif _hooks is not None:  # pickled outside the runtime's view: kept alive until its owner exits
            _hooks.on_ref_serialized(self._id, self._owner)
        return _rebuild_ref, (self._id, self._owner)

    # ---------------------------------------------------------------- futures
    def future(self) -> concurrent.futures.Future:
        """A concurrent.futures.Future resolved with the value (or the task's exception)."""
        return _hooks.future_for(self)

    def __await__(self):
        return asyncio.wrap_future(self.future()).__await__()


def _rebuild_ref(object_id: bytes, owner: dict | None) -> ObjectRef:
    ref = ObjectRef(object_id, owner)
    if _hooks is not None:
        _hooks.on_ref_deserialized(ref)
    return ref
