"""The layout of a node's pool of recycled shared-memory segments, shared by the raylet and writers.

Writing a large object into a NEW tmpfs file costs the kernel a fresh, zeroed page per 4 KiB (about half
of a 100 MiB put). So the raylet keeps the files of freed large objects in `<shm_dir>/free/<size>-<seq>`
instead of unlinking them, and writers claim one (an atomic rename) and write over its pages, as Ray's
plasma store reuses the pages of its arena.

Safety rule, kept by both sides: a reader holds a shared `flock` on an object's file for as long as any
view of its mapping lives (the mapping's own descriptor carries the lock), and a writer only reuses a
segment it can lock exclusively. So bytes a process can still see are never overwritten.
"""

from __future__ import annotations

import os

POOL_DIR_NAME = "free"
# Smaller objects are unlinked when freed: creating a small file costs less than the pool's bookkeeping.
MIN_SEGMENT_BYTES = 1024 * 1024
# The pool holds at most this share of the store's capacity, and never more than POOL_MAX_BYTES.
POOL_FRACTION = 0.25
POOL_MAX_BYTES = 2 * 1024 * 1024 * 1024


def pool_dir(shm_dir: str) -> str:
    return os.path.join(shm_dir, POOL_DIR_NAME)


def segment_name(size: int, seq: int) -> str:
    return f"{size}-{seq}"


def segment_size(name: str) -> int | None:
    """The size a segment's name records, or None for a name that is not a segment's."""
    size, sep, seq = name.partition("-")
    if not sep or not size.isdigit() or not seq.isdigit():
        return None
    return int(size)


def pool_limit(capacity: int) -> int:
    return int(min(capacity * POOL_FRACTION, POOL_MAX_BYTES))
