"""Binary ids with Ray's sizes and hex forms (JobID 4 bytes, ActorID 16, TaskID 24, ObjectID 28,
PlacementGroupID 18, others 28)."""

from __future__ import annotations

import itertools
import os
import struct
from typing import ClassVar

# Task ids need to be unique, not unpredictable: a random per-process base plus a counter is far cheaper
# than os.urandom per task.
_TASK_COUNTER = itertools.count(int.from_bytes(os.urandom(8), "little"))
_U64 = struct.Struct("<Q")


def _unique8() -> bytes:
    return _U64.pack(next(_TASK_COUNTER) & 0xFFFFFFFFFFFFFFFF)


class BaseID:
    SIZE: ClassVar[int] = 28
    __slots__ = ("_bytes", "_hash")

    def __init__(self, id_bytes: bytes):
        if not isinstance(id_bytes, bytes) or len(id_bytes) != self.SIZE:
            raise ValueError(
                f"{type(self).__name__} needs {self.SIZE} bytes, got {id_bytes!r:.60}; "
                f"use {type(self).__name__}.from_hex() for hex strings."
            )
        self._bytes = id_bytes
        self._hash = hash(id_bytes)

    @classmethod
    def from_random(cls):
        return cls(os.urandom(cls.SIZE))

    @classmethod
    def from_hex(cls, hex_id: str):
        return cls(bytes.fromhex(hex_id))

    @classmethod
    def nil(cls):
        """Ray's nil id: every byte 0xff."""
        return cls(b"\xff" * cls.SIZE)

    def is_nil(self) -> bool:
        return self._bytes == b"\xff" * self.SIZE

    def binary(self) -> bytes:
        return self._bytes

    def hex(self) -> str:
        return self._bytes.hex()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()})"

    def __reduce__(self):
        return type(self), (self._bytes,)


class UniqueID(BaseID):
    SIZE = 28


class NodeID(UniqueID):
    pass


class WorkerID(UniqueID):
    pass


class JobID(BaseID):
    SIZE = 4

    @classmethod
    def from_int(cls, value: int) -> JobID:
        return cls(value.to_bytes(cls.SIZE, "little"))

    def int(self) -> int:
        return int.from_bytes(self._bytes, "little")


class ActorID(BaseID):
    SIZE = 16

    @classmethod
    def of(cls, job_id: JobID) -> ActorID:
        return cls(os.urandom(12) + job_id.binary())

    def job_id(self) -> JobID:
        return JobID(self._bytes[12:])


class PlacementGroupID(BaseID):
    """14 unique bytes + the creating job's id, as Ray's; `.hex()` names the group's bundle resources."""

    SIZE = 18

    @classmethod
    def of(cls, job_id: JobID) -> PlacementGroupID:
        return cls(os.urandom(14) + job_id.binary())

    @classmethod
    def nil(cls) -> PlacementGroupID:
        return cls(b"\xff" * cls.SIZE)

    def is_nil(self) -> bool:
        return self._bytes == b"\xff" * self.SIZE

    def job_id(self) -> JobID:
        return JobID(self._bytes[14:])


class TaskID(BaseID):
    SIZE = 24

    @classmethod
    def for_task(cls, job_id: JobID) -> TaskID:
        return cls(_unique8() + b"\x00" * 12 + job_id.binary())

    @classmethod
    def for_actor_task(cls, actor_id: ActorID) -> TaskID:
        return cls(_unique8() + actor_id.binary())

    @classmethod
    def for_driver(cls, job_id: JobID) -> TaskID:
        return cls(b"\x00" * 20 + job_id.binary())


class ObjectID(BaseID):
    """TaskID + 4-byte little-endian index: return values count from 1, puts from 0x80000000 up."""

    SIZE = 28

    @classmethod
    def for_return(cls, task_id: TaskID, index: int) -> ObjectID:
        return cls(task_id.binary() + (index + 1).to_bytes(4, "little"))

    @classmethod
    def for_put(cls, task_id: TaskID, put_index: int) -> ObjectID:
        return cls(task_id.binary() + (0x80000000 | put_index).to_bytes(4, "little"))

    def task_id(self) -> TaskID:
        return TaskID(self._bytes[:24])
