"""Recycled shared-memory segments: the store's pool of freed object files and the writers that reuse them.

Real files in a per-test dir stand in for the node's /dev/shm dir (the code is the same on any file system).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from ray._common import recycled_segments
from ray._common.serialization import serialize
from ray.core_worker import shared_memory
from ray.raylet.object_store import LocalObjectStore

MIB = 1024 * 1024


@pytest.fixture
def store(tmp_path):
    shm_dir = tmp_path / "shm"
    shm_dir.mkdir()
    s = LocalObjectStore(str(shm_dir), str(tmp_path / "spill"), capacity=64 * MIB)
    try:
        yield s
    finally:
        s.destroy()


def _put(store: LocalObjectStore, oid: str, value: object) -> int:
    """What a core worker and its raylet do for one put: write the file, then report it."""
    size = shared_memory.write(store.shm_dir, oid, serialize(value))
    store.on_created(oid, size)
    return os.stat(shared_memory.object_path(store.shm_dir, oid)).st_ino


def test_a_freed_large_object_file_is_reused_by_the_next_put_and_is_not_used_bytes(store):
    first = _put(store, "a" * 56, np.full(2 * MIB, 1, dtype=np.uint8))
    store.free(["a" * 56])
    assert not shared_memory.exists(store.shm_dir, "a" * 56)
    assert store.used_bytes == 0
    assert store.stats()["num_recycled"] == 1 and store.recycled_bytes > 2 * MIB

    second = _put(store, "b" * 56, np.full(2 * MIB, 2, dtype=np.uint8))
    assert second == first  # the same pages, written over
    assert (shared_memory.read(store.shm_dir, "b" * 56) == 2).all()
    assert store.stats()["num_recycled"] == 0  # the claimed segment left the pool's books
    assert store.used_bytes > 2 * MIB


def test_a_segment_still_viewed_by_a_reader_is_never_written_over(store):
    old = _put(store, "a" * 56, np.full(2 * MIB, 1, dtype=np.uint8))
    view = shared_memory.read(store.shm_dir, "a" * 56)
    store.free(["a" * 56])  # the owner freed it, but a numpy view of its mapping lives on

    other = _put(store, "b" * 56, np.full(2 * MIB, 2, dtype=np.uint8))
    assert other != old
    assert (view == 1).all(), "a live view's bytes changed under it"

    del view  # the mapping goes, and with it the reader's lock: now the segment can be reused
    store.free(["b" * 56])
    reused = {_put(store, c * 56, np.full(2 * MIB, 3, dtype=np.uint8)) for c in "cd"}
    assert old in reused


def test_small_objects_are_unlinked_and_the_pool_and_the_objects_stay_within_the_capacity(store):
    _put(store, "s" * 56, np.zeros(1000))
    store.free(["s" * 56])
    assert store.stats()["num_recycled"] == 0
    assert store.pool_limit == 64 * MIB  # the whole capacity, as Ray's plasma arena keeps its pages

    for i in range(6):
        _put(store, f"{i}" * 56, np.zeros(5 * MIB, dtype=np.uint8))
    store.free([f"{i}" * 56 for i in range(6)])
    assert store.stats()["num_recycled"] == 6
    # A 40 MiB object takes one segment (cut to size); with it in memory the pool may keep 24 MiB at most.
    _put(store, "L" * 56, np.zeros(40 * MIB, dtype=np.uint8))
    assert store.used_bytes + store.recycled_bytes <= store.capacity
    assert store.stats()["num_recycled"] == 4
    files = os.listdir(recycled_segments.pool_dir(store.shm_dir))
    assert len(files) == 4  # the oldest was removed, not leaked

    store.free(["s" * 56, "L" * 56], {})
    assert sorted(os.listdir(store.shm_dir)) == [recycled_segments.POOL_DIR_NAME]


def test_the_pool_gives_way_to_live_objects_so_the_store_stays_within_capacity(store):
    for i in range(3):
        _put(store, f"{i}" * 56, np.zeros(5 * MIB, dtype=np.uint8))
    store.free([f"{i}" * 56 for i in range(3)])
    assert store.stats()["num_recycled"] == 3

    # Live objects that do not fit next to the pool (even after reusing its segments) shrink it.
    for i in range(3, 8):
        _put(store, f"{i}" * 56, np.zeros(10 * MIB, dtype=np.uint8))
    assert store.used_bytes + store.recycled_bytes <= store.capacity


def test_destroy_removes_the_pool_with_the_store(store):
    _put(store, "a" * 56, np.zeros(2 * MIB, dtype=np.uint8))
    store.free(["a" * 56])
    store.destroy()
    assert not os.path.exists(store.shm_dir)


def test_a_failed_write_leaves_no_file_behind(store):
    class Unwritable:
        total_bytes = 2 * MIB

        def write_to_fd(self, fd: int) -> None:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        shared_memory.write(store.shm_dir, "e" * 56, Unwritable())
    assert os.listdir(store.shm_dir) == []


def test_a_writer_keeps_its_mapping_of_a_segment_it_writes_again_and_readers_are_not_blocked(store):
    _put(store, "a" * 56, np.full(2 * MIB, 1, dtype=np.uint8))  # a fresh file: pwrite, nothing mapped
    store.free(["a" * 56])
    _put(store, "b" * 56, np.full(2 * MIB, 2, dtype=np.uint8))  # the recycled segment: mapped and kept
    kept = dict(shared_memory._writer_mappings._kept)
    assert len(kept) == 1
    # The writer's lock went with the write: a reader (a shared lock, blocking) gets in at once.
    assert (shared_memory.read(store.shm_dir, "b" * 56) == 2).all()
    store.free(["b" * 56])
    _put(store, "c" * 56, np.full(2 * MIB, 3, dtype=np.uint8))
    assert shared_memory._writer_mappings._kept.keys() == kept.keys()  # the same mapping, written again
    assert (shared_memory.read(store.shm_dir, "c" * 56) == 3).all()


def test_a_kept_mapping_of_a_removed_segment_is_dropped_after_the_next_write(store):
    _put(store, "a" * 56, np.full(2 * MIB, 1, dtype=np.uint8))
    store.free(["a" * 56])
    _put(store, "b" * 56, np.full(2 * MIB, 2, dtype=np.uint8))
    assert len(shared_memory._writer_mappings._kept) == 1
    store.free(["b" * 56])
    store.destroy()  # every file goes: only the kept mapping would hold the pages now
    os.makedirs(store.shm_dir)
    shared_memory.write(store.shm_dir, "c" * 56, serialize(b"small"))
    assert not shared_memory._writer_mappings._kept


def test_an_owner_recycles_its_freed_object_at_once_and_the_raylet_books_the_segment(store):
    first = _put(store, "a" * 56, np.full(2 * MIB, 1, dtype=np.uint8))
    size = os.stat(shared_memory.object_path(store.shm_dir, "a" * 56)).st_size
    name = shared_memory.recycle(store.shm_dir, "a" * 56, size)  # the owner's free, before the raylet hears
    assert name is not None and not shared_memory.exists(store.shm_dir, "a" * 56)

    second = _put(store, "b" * 56, np.full(2 * MIB, 2, dtype=np.uint8))  # the owner's next put
    assert second == first
    store.free(["a" * 56], {"a" * 56: name})  # the message arrives after the segment was claimed
    assert store.stats()["num_recycled"] == 0  # its books do not count a segment that is an object again
    assert store.used_bytes == size and (shared_memory.read(store.shm_dir, "b" * 56) == 2).all()

    store.free(["b" * 56], {"b" * 56: shared_memory.recycle(store.shm_dir, "b" * 56, size)})
    assert store.stats()["num_recycled"] == 1 and store.used_bytes == 0


def test_an_owner_does_not_recycle_small_spilled_or_missing_objects(store):
    _put(store, "s" * 56, np.zeros(1000))
    assert shared_memory.recycle(store.shm_dir, "s" * 56, 8000) is None  # small: the raylet unlinks it
    assert shared_memory.exists(store.shm_dir, "s" * 56)
    assert shared_memory.recycle(store.shm_dir, "m" * 56, 2 * MIB) is None  # not here (spilled, or gone)
    store.free(["s" * 56], {})
    assert os.listdir(store.shm_dir) == []


def test_a_segment_over_the_pool_limit_is_removed_when_its_owner_recycled_it(store):
    store.pool_limit = 16 * MIB  # a store whose pool may hold less than the capacity
    _put(store, "a" * 56, np.zeros(20 * MIB, dtype=np.uint8))  # over the 16 MiB pool limit
    size = os.stat(shared_memory.object_path(store.shm_dir, "a" * 56)).st_size
    store.free(["a" * 56], {"a" * 56: shared_memory.recycle(store.shm_dir, "a" * 56, size)})
    assert store.stats()["num_recycled"] == 0
    assert os.listdir(recycled_segments.pool_dir(store.shm_dir)) == []
