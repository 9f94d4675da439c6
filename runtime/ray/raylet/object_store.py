"""The node's shared-memory object store: accounting, eviction by spilling to disk, and restore.

Objects are files in the node's /dev/shm dir (written by the processes that create them). Once the bytes
in shared memory pass `object_spilling_threshold` of the store's capacity, the least recently created
objects move to `<session>/spill/<node>/`; reading a spilled object restores it first. Nothing is lost:
an object is only removed when its owner frees it.

The files of freed large objects are kept as recycled segments (`ray._common.recycled_segments`) for
writers to reuse, up to a bounded pool that shrinks first when live objects need the room. The pool is
not part of the used bytes; writers claim segments without telling the raylet, so the pool's books are
checked against its directory before they are used.
"""

from __future__ import annotations

import logging
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
                "recycled_bytes": self.recycled_bytes, "num_recycled": len(self._pool)}

    def on_created(self, oid: str, size: int) -> None:
        self._in_memory[oid] = size
        self._fit_pool()
        self._spill_if_needed(keep=oid)

    def _spill_if_needed(self, keep: str | None = None) -> None:
        limit = self.capacity * config().object_spilling_threshold
        used = self.used_bytes
        for oid in list(self._in_memory):
            if used <= limit:
                break
            if oid == keep:
                continue
            used -= self._spill(oid)

    def _spill(self, oid: str) -> int:
        size = self._in_memory.pop(oid)
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

    def read(self, oid: str, offset: int, length: int) -> bytes | None:
        """`length` bytes of an object's stored form from `offset` (in memory or spilled); None if not here."""
        for d in (self.shm_dir, self.spill_dir):
            try:
                fd = os.open(os.path.join(d, oid), os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                return os.pread(fd, length, offset)
            finally:
                os.close(fd)
        return None

    def destroy(self) -> None:
        shutil.rmtree(self.shm_dir, ignore_errors=True)
        shutil.rmtree(self.spill_dir, ignore_errors=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
