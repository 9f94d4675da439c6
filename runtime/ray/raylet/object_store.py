"""The node's shared-memory object store: accounting, eviction by spilling to disk, and restore.

Objects are files in the node's /dev/shm dir (written by the processes that create them). Once the bytes
in shared memory pass `object_spilling_threshold` of the store's capacity, the least recently created
objects move to `<session>/spill/<node>/`; reading a spilled object restores it first. Nothing is lost:
an object is only removed when its owner frees it.

The files of freed large objects are kept as recycled segments (`ray._common.recycled_segments`) for
writers to reuse, up to a bounded pool that shrinks first when live objects need the room. The pool is
not part of the used bytes; writers claim segments without telling the raylet, so the pool's books are
checked against its directory before they are used.

Copies of other nodes' objects (`raylet/object_manager.py` pulls them) are secondary, as Ray calls them: when
the store needs room they are evicted (unlinked: their primary still holds the bytes) before any primary is
spilled.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import shutil
from collections import OrderedDict

from ray._common import recycled_segments
from ray._common.config import config

logger = logging.getLogger(__name__)


class LocalObjectStore:
    def __init__(self, shm_dir: str, spill_dir: str, capacity: int):
        self.shm_dir = shm_dir
        self.spill_dir = spill_dir
        self.capacity = capacity
        self._in_memory: OrderedDict[str, int] = OrderedDict()
        self._spilled: dict[str, int] = {}
        self._copies: set[str] = set()  # objects in memory that are copies pulled from another node
        self.evicted_copies_total = 0
        self.spilled_bytes_total = 0
        self.restored_bytes_total = 0
        self.pool_dir = recycled_segments.pool_dir(shm_dir)
        self.pool_limit = recycled_segments.pool_limit(capacity)
        self._pool: OrderedDict[str, int] = OrderedDict()  # segment name -> size, oldest first
        self._pool_seq = 0

    @property
    def used_bytes(self) -> int:
        return sum(self._in_memory.values())

    @property
    def num_objects(self) -> int:
        return len(self._in_memory) + len(self._spilled)

    @property
    def recycled_bytes(self) -> int:
        return sum(self._pool.values())

    def stats(self) -> dict:
        self._sync_pool()
        return {"object_store_used_bytes": self.used_bytes, "num_objects": self.num_objects,
                "num_spilled": len(self._spilled), "spilled_bytes_total": self.spilled_bytes_total,
                "restored_bytes_total": self.restored_bytes_total, "capacity": self.capacity,
                "num_copies": len(self._copies), "evicted_copies_total": self.evicted_copies_total,
                "recycled_bytes": self.recycled_bytes, "num_recycled": len(self._pool)}

    def on_created(self, oid: str, size: int, copy: bool = False) -> None:
        """An object was written here; `copy`: pulled from the node that holds its primary."""
        self._in_memory[oid] = size
        if copy:
            self._copies.add(oid)
        self._fit_pool()
        self._spill_if_needed(keep=oid)

    def contains(self, oid: str) -> bool:
        """Whether the object is in this node's shared memory (a primary or a copy)."""
        return oid in self._in_memory

    def _spill_if_needed(self, keep: str | None = None) -> None:
        limit = self.capacity * config().object_spilling_threshold
        used = self.used_bytes
        if used <= limit:
            return
        # Copies go first (evicting one costs nothing), then the least recently created primaries.
        candidates = [o for o in self._in_memory if o in self._copies]
        candidates += [o for o in self._in_memory if o not in self._copies]
        for oid in candidates:
            if used <= limit:
                break
            if oid == keep:
                continue
            used -= self._spill(oid)

    def _spill(self, oid: str) -> int:
        size = self._in_memory.pop(oid)
        if oid in self._copies:  # a copy: evicted, not spilled (readers that mapped it keep their mapping)
            self._copies.discard(oid)
            self.evicted_copies_total += 1
            _unlink(os.path.join(self.shm_dir, oid))
            return size
        os.makedirs(self.spill_dir, exist_ok=True)
        src, dst = os.path.join(self.shm_dir, oid), os.path.join(self.spill_dir, oid)
        try:
            shutil.copyfile(src, dst)
            os.unlink(src)  # readers that mapped it keep their mapping
        except FileNotFoundError:  # freed meanwhile (its owner moved it into the pool): no copy to keep
            _unlink(dst)
            return size
        self._spilled[oid] = size
        self.spilled_bytes_total += size
        return size

    def restore(self, oid: str) -> bool:
        """Bring a spilled object back into shared memory; True when it is there afterwards."""
        if oid in self._in_memory:
            return True
        size = self._spilled.pop(oid, None)
        if size is None:
            return False
        src, dst = os.path.join(self.spill_dir, oid), os.path.join(self.shm_dir, oid)
        tmp = dst + ".restore"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        os.unlink(src)
        self.restored_bytes_total += size
        self._in_memory[oid] = size
        self._fit_pool()
        self._spill_if_needed(keep=oid)
        return True

    def free(self, oids: list[str], recycled: dict[str, str] | None = None) -> None:
        """The owner freed these objects; `recycled` names the ones whose files it moved into the pool itself
        (`shared_memory.recycle`)."""
        for oid in oids:
            size = self._in_memory.pop(oid, None)
            self._copies.discard(oid)
            segment = (recycled or {}).get(oid)
            if segment is not None:
                self._adopt_segment(segment)
            elif size is not None:
                self._recycle_or_unlink(oid, size)
            if self._spilled.pop(oid, None) is not None:
                _unlink(os.path.join(self.spill_dir, oid))
        self._fit_pool()

    # ------------------------------------------------------------------ recycled segments
    def _recycle_or_unlink(self, oid: str, size: int) -> None:
        """Keep a freed object's file for a writer to reuse, or remove it. A process may still map it (a
        view that outlived its ref): writers skip a segment they cannot lock, so its bytes stay."""
        path = os.path.join(self.shm_dir, oid)
        if size < recycled_segments.MIN_SEGMENT_BYTES or size > self.pool_limit:
            _unlink(path)
            return
        self._pool_seq += 1
        name = recycled_segments.segment_name(size, self._pool_seq)
        try:
            os.makedirs(self.pool_dir, exist_ok=True)
            os.rename(path, os.path.join(self.pool_dir, name))
        except FileNotFoundError:
            return
        self._pool[name] = size

    def _adopt_segment(self, name: str) -> None:
        """Book a segment an owner moved into the pool (a writer may have claimed it already: `_sync_pool`)."""
        size = recycled_segments.segment_size(name)
        if size is None or "/" in name or name.startswith("."):
            return  # not a segment's name: nothing of ours to touch
        if size < recycled_segments.MIN_SEGMENT_BYTES or size > self.pool_limit:
            _unlink(os.path.join(self.pool_dir, name))
            return
        self._pool[name] = size

    def _sync_pool(self) -> None:
        """Forget segments that writers have claimed since (they are objects now)."""
        if not self._pool:
            return
        try:
            present = set(os.listdir(self.pool_dir))
        except FileNotFoundError:
            present = set()
        for name in [n for n in self._pool if n not in present]:
            del self._pool[name]

    def _fit_pool(self) -> None:
        """Unlink the oldest segments until the pool is within its limit and, with the objects in memory,
        within the store's capacity."""
        budget = min(self.pool_limit, self.capacity - self.used_bytes)
        total = self.recycled_bytes
        if total > budget:
            self._sync_pool()  # the books may still count segments that writers took
            total = self.recycled_bytes
        while self._pool and total > budget:
            name, size = self._pool.popitem(last=False)
            _unlink(os.path.join(self.pool_dir, name))
            total -= size

    def map_range(self, oid: str, offset: int, length: int) -> memoryview | None:
        """`length` bytes of an object's stored form from `offset` (in memory or spilled), as a read-only view
        of the file's pages for a transport to send from (no copy here); None if it is not here. The mapping
        holds a shared lock on the file, so a freed object's recycled segment is not rewritten while it is
        sent. Blocks (page tables are populated): call it off the event loop."""
        for d in (self.shm_dir, self.spill_dir):
            try:
                fd = os.open(os.path.join(d, oid), os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)  # kept by the mapping's own descriptor, as readers' are
                if os.fstat(fd).st_size < offset + length:
                    return None
                return map_file_range(fd, offset, length, writable=False)
            finally:
                os.close(fd)
        return None

    def destroy(self) -> None:
        shutil.rmtree(self.shm_dir, ignore_errors=True)
        shutil.rmtree(self.spill_dir, ignore_errors=True)


def map_file_range(fd: int, offset: int, length: int, writable: bool) -> memoryview:
    """A view of bytes `offset` to `offset + length` of an open file, mapped shared with its page tables
    populated; the mapping lives as long as views of it do. `offset` need not be page-aligned."""
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    m = mmap.mmap(fd, length + offset - start, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=prot, offset=start)
    return memoryview(m)[offset - start:]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
