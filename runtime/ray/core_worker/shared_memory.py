"""Objects in the node's shared memory: one file per object under /dev/shm/openray-<session>-<node>/.

Writers create `<id>.<pid>.tmp` (or claim a recycled segment of a freed object under that name), fill it
with pwrite and rename it (sealing); readers mmap it read-only, so numpy arrays come back as views of shared
memory without a copy. A reader's shared flock lives as long as its mapping, which is what keeps a
recycled segment from being overwritten under a live view (see `ray._common.recycled_segments`).
"""

from __future__ import annotations

import fcntl
import itertools
import mmap
import os
from collections import OrderedDict

from ray._common import recycled_segments
from ray._common.serialization import SerializedObject, deserialize

# Mappings of recycled segments a writer keeps between writes (see `_WriterMappings`).
_KEPT_MAPPINGS = 2
_KEPT_MAPPING_BYTES = 512 * 2**20


def object_path(shm_dir: str, oid_hex: str) -> str:
    return os.path.join(shm_dir, oid_hex)


def write(shm_dir: str, oid_hex: str, ser: SerializedObject) -> int:
    size = ser.total_bytes
    path = object_path(shm_dir, oid_hex)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = recycled_segments.claim(shm_dir, size, tmp) if size >= recycled_segments.MIN_SEGMENT_BYTES else None
    reused_pages = fd is not None and os.fstat(fd).st_size >= size
    if fd is None:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)
        if reused_pages:
            m, kept = _writer_mappings.mapping(fd, size)
            with memoryview(m) as whole, whole[:size] as target:
                ser.write_into(target)
            if not kept:
                m.close()
        else:
            ser.write_to_fd(fd)
    except BaseException:
        _unlink(tmp)  # a half-written object must not stay behind in shared memory
        raise
    finally:
        # Drop a claimed segment's exclusive lock explicitly: a kept mapping holds a duplicate of this
        # descriptor, which would otherwise keep the lock (and readers waiting) for as long as it lives.
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)  # readers come only after the rename
    _writer_mappings.forget_removed()
    os.replace(tmp, path)
    return size


class _WriterMappings:
    """The mappings of recycled segments this process wrote last, kept for its next writes.

    Over pages that already exist, mapping them in one go (MAP_POPULATE) and copying in user space beats
    pwrite's page-by-page path; but mapping 100 MiB costs ~10 ms and unmapping ~5 ms around a ~6 ms copy.
    A process that puts objects of one size in a loop claims the same segment back each time (the raylet
    recycles it when the ref goes), so keeping its mapping leaves only the copy (Ray's plasma clients keep
    the store's arena mapped for the same reason). Writing through a kept mapping is safe: the writer holds
    the segment's exclusive lock, taken on a fresh descriptor, while it writes.

    A kept mapping also keeps the pages of a segment the raylet has since removed, so mappings of removed
    files are dropped after every write, and at most `_KEPT_MAPPINGS` (and `_KEPT_MAPPING_BYTES`) are kept.
    Fresh files are written with pwrite: over NEW pages a mapping is far slower (a fault per page).
    """

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[int, int], tuple[mmap.mmap, int]] = OrderedDict()  # file -> (map, fd)

    def mapping(self, fd: int, size: int) -> tuple[mmap.mmap, bool]:
        """A writable mapping of at least `size` bytes of the open file, and whether it is kept."""
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        kept = self._kept.pop(key, None)
        if kept is not None and len(kept[0]) >= size:
            self._kept[key] = kept
            return kept[0], True
        if kept is not None:
            _close(kept)
        m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        if size > _KEPT_MAPPING_BYTES:
            return m, False
        self._kept[key] = (m, os.dup(fd))  # a descriptor of our own to see the file's link count
        self._fit()
        return m, True

    def forget_removed(self) -> None:
        for key, kept in list(self._kept.items()):
            if os.fstat(kept[1]).st_nlink == 0:  # unlinked: only our mapping keeps its pages
                del self._kept[key]
                _close(kept)

    def _fit(self) -> None:
        while self._kept and (len(self._kept) > _KEPT_MAPPINGS
                              or sum(len(m) for m, _ in self._kept.values()) > _KEPT_MAPPING_BYTES):
            _close(self._kept.popitem(last=False)[1])


def _close(kept: tuple[mmap.mmap, int]) -> None:
    m, fd = kept
    m.close()  # no view of it outlives a write
    os.close(fd)


_writer_mappings = _WriterMappings()


_recycled_seq = itertools.count(1)


def recycle(shm_dir: str, oid_hex: str, size: int) -> str | None:
    """The owner frees a large object of its own node: move its file into the pool of recycled segments now,
    as the raylet would on FREE_OBJECTS, and return the segment's name for the raylet's books (None: not
    here, e.g. spilled, or too small to keep).

    Done by the owner, at once, because the raylet does it only when the message arrives: a put in a loop, or
    a task's next large argument written right after the last one's result came back, would otherwise find
    the pool empty and pay for a fresh file's pages. Safe for the same reasons as the raylet's rename: a
    reader's view keeps its shared lock, and writers only take segments they can lock exclusively.
    """
    if size < recycled_segments.MIN_SEGMENT_BYTES:
        return None
    pool = recycled_segments.pool_dir(shm_dir)
    # Digits only (segment_size parses the name); the pid keeps owners' names apart and from the raylet's.
    name = recycled_segments.segment_name(size, os.getpid() * 10**9 + next(_recycled_seq))
    for _ in range(2):
        try:
            os.rename(object_path(shm_dir, oid_hex), os.path.join(pool, name))
            return name
        except FileNotFoundError:
            if os.path.isdir(pool) or not os.path.exists(object_path(shm_dir, oid_hex)):
                return None
            os.makedirs(pool, exist_ok=True)  # the node's first recycled segment
    return None


def exists(shm_dir: str, oid_hex: str) -> bool:
    return os.path.exists(object_path(shm_dir, oid_hex))


def read(shm_dir: str, oid_hex: str) -> object:
    """Deserialize the object from shared memory; large buffers stay views of the mapping."""
    path = object_path(shm_dir, oid_hex)
    fd = os.open(path, os.O_RDONLY)
    try:
        # The lock belongs to the open file, which the mapping keeps open (mmap dups the fd) until the last
        # view of it is gone: while it is held no writer reuses this file's pages.
        fcntl.flock(fd, fcntl.LOCK_SH)
        st = os.fstat(fd)
        if os.stat(path).st_ino != st.st_ino:
            # Freed (and maybe recycled) between open and lock: the file is no longer this object.
            raise FileNotFoundError(f"object {oid_hex} was freed while it was being read")
        m = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return deserialize(memoryview(m))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
