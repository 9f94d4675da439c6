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

import fcntl
import os

POOL_DIR_NAME = "free"
# Smaller objects are unlinked when freed: creating a small file costs less than the pool's bookkeeping.
MIN_SEGMENT_BYTES = 1024 * 1024
# The pool holds at most this share of the store's capacity, and with the objects in memory never more than the
# capacity (the raylet's `_fit_pool`): the store's pages stay allocated up to its peak use, as the pages of
# Ray's plasma arena do, so that a copy pulled from another node or a large put reuses pages instead of
# faulting in fresh ones (a 1 GiB copy is 262,144 of them).
POOL_FRACTION = 1.0
# Segments tried per claim before creating a new file: each try is a few syscalls.
_MAX_CLAIM_TRIES = 4


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
    return int(capacity * POOL_FRACTION)


def claim(shm_dir: str, size: int, tmp: str) -> int | None:
    """Take a recycled segment of about `size` bytes as `tmp`; returns its fd (exclusively locked) or None.

    The exclusive lock fails while any process still maps the segment (a view of the freed object) or
    another writer is claiming it; the rename fails when someone else took it first. Either way: next one.
    """
    pool = pool_dir(shm_dir)
    try:
        names = os.listdir(pool)
    except FileNotFoundError:
        return None
    sized = [(s, n) for n in names if (s := segment_size(n)) is not None]
    # Closest size first: a smaller segment still saves its pages, a larger one is cut to size.
    sized.sort(key=lambda sn: abs(sn[0] - size))
    for _, name in sized[:_MAX_CLAIM_TRIES]:
        src = os.path.join(pool, name)
        try:
            fd = os.open(src, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(src, tmp)
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd
        except (BlockingIOError, FileNotFoundError):
            pass
        os.close(fd)
    return None
