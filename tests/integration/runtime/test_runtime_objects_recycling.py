"""Large puts reuse the shared memory of freed objects, and never under a view that a process still holds."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import ray
from ray.core_worker import shared_memory

SIZE = 4 * 1024 * 1024


@pytest.fixture
def cluster(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path / "ray"))
    try:
        yield ray._private.worker.global_worker.core_worker
    finally:
        ray.shutdown()


def _node_stats(cw) -> dict:
    async def stats():
        return await cw.raylet.request("get_node_stats", None)

    return cw.run_sync(stats(), timeout=60)


def _wait_recycled(cw, at_least: int) -> None:
    """The owner's free reaches the raylet asynchronously; wait until it has pooled the file."""
    deadline = time.monotonic() + 30
    while _node_stats(cw)["num_recycled"] < at_least:
        assert time.monotonic() < deadline, f"no recycled segment after 30 s: {_node_stats(cw)}"
        time.sleep(0.05)


def _inode(cw, ref) -> int:
    return os.stat(shared_memory.object_path(cw.shm_dir, ref.hex())).st_ino


def test_a_put_reuses_the_pages_of_a_freed_object(cluster):
    ref = ray.put(np.full(SIZE, 1, dtype=np.uint8))
    freed_inode = _inode(cluster, ref)
    del ref
    _wait_recycled(cluster, 1)

    ref = ray.put(np.full(SIZE, 2, dtype=np.uint8))
    assert _inode(cluster, ref) == freed_inode
    assert (ray.get(ref) == 2).all()
    assert _node_stats(cluster)["num_recycled"] == 0


def test_a_put_right_after_a_free_reuses_its_pages_without_waiting_for_the_raylet(cluster):
    # The owner moves a freed object's file into the pool itself: a put in a loop reuses the same pages each time.
    inodes = []
    for i in range(5):
        ref = ray.put(np.full(SIZE, i, dtype=np.uint8))
        inodes.append(_inode(cluster, ref))
        assert (ray.get(ref) == i).all()
        del ref
    assert len(set(inodes[1:])) == 1 and inodes[1] == inodes[0]


def test_a_large_task_argument_reuses_the_pages_of_the_previous_one(cluster):
    @ray.remote
    def first_byte(array):
        return int(array[0])

    pool = os.path.join(cluster.shm_dir, "free")
    segments = []
    for i in range(4):
        assert ray.get(first_byte.remote(np.full(SIZE, i, dtype=np.uint8)), timeout=60) == i
        # The argument was back in the pool before its result came back; the next call's argument takes it.
        names = os.listdir(pool)
        assert len(names) == 1, names
        segments.append(os.stat(os.path.join(pool, names[0])).st_ino)
    assert len(set(segments)) == 1, segments


def test_a_view_from_ray_get_keeps_its_bytes_after_its_object_is_freed(cluster):
    view = ray.get(ray.put(np.full(SIZE, 1, dtype=np.uint8)))  # the ref is gone at once: freed
    _wait_recycled(cluster, 1)

    refs = [ray.put(np.full(SIZE, 2, dtype=np.uint8)) for _ in range(3)]
    assert (view == 1).all(), "a later put wrote over a live ray.get view"
    assert all((ray.get(r) == 2).all() for r in refs)


def test_an_actor_holding_an_argument_array_keeps_its_bytes_after_the_driver_frees_it(cluster):
    @ray.remote
    class Holder:
        def keep(self, array):
            self.array = array  # a view of the argument's shared memory, kept past the call
            return int(array[0])

        def bounds(self):
            return int(self.array.min()), int(self.array.max())

    holder = Holder.remote()
    assert ray.get(holder.keep.remote(np.full(SIZE, 7, dtype=np.uint8)), timeout=60) == 7
    _wait_recycled(cluster, 1)  # the argument's object, freed by the driver when the call ended

    refs = [ray.put(np.full(SIZE, 9, dtype=np.uint8)) for _ in range(3)]
    assert ray.get(holder.bounds.remote(), timeout=60) == (7, 7)
    del refs
