"""Objects of any size come back intact: over 2 GiB through put/get, task arguments and returns (a single
pwrite stops at 2,147,479,552 bytes), 5 GiB numpy arrays, spilled to disk and restored, and values pulled
from another node in chunks (once per node, into its store)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import ray
from ray._common import process_registry
from ray.cluster_utils import Cluster

OVER_2_GIB = 2**31 + 4096


@pytest.fixture
def local_ray(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=7 * 2**30, _temp_dir=str(tmp_path / "ray"))
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote
def length(value) -> int:
    return len(value)


@ray.remote
def make_bytes(n: int) -> bytes:
    return b"r" * (n - 1) + b"!"


@ray.remote
def checksum(array: np.ndarray) -> tuple[int, int]:
    return array.nbytes, int(array[:: 2**20].sum())


def test_bytes_over_2_gib_survive_put_get_arguments_and_returns(local_ray):
    value = b"x" * (OVER_2_GIB - 1) + b"$"
    back = ray.get(ray.put(value))
    assert len(back) == OVER_2_GIB and back[-1:] == b"$" and back == value
    del back
    assert ray.get(length.remote(value)) == OVER_2_GIB  # by value: put once, read by the worker
    del value
    returned = ray.get(make_bytes.remote(OVER_2_GIB))
    assert len(returned) == OVER_2_GIB and returned[:1] == b"r" and returned[-1:] == b"!"


def test_a_bytearray_over_2_gib_round_trips(local_ray):
    value = bytearray(OVER_2_GIB)
    value[-1] = 7
    back = ray.get(ray.put(value))
    assert type(back) is bytearray and len(back) == OVER_2_GIB and back[-1] == 7 and back[0] == 0


def test_a_5_gib_numpy_array_round_trips_and_reaches_a_task(local_ray):
    array = np.full(5 * 2**30, 3, dtype=np.uint8)
    array[-1] = 9
    ref = ray.put(array)
    back = ray.get(ref)
    assert back.nbytes == array.nbytes and back[-1] == 9 and bool((back[:: 2**20] == 3).all())
    expected = int(array[:: 2**20].sum())
    del back, array
    assert ray.get(checksum.remote(ref)) == (5 * 2**30, expected)


def _node_stats() -> dict:
    cw = ray._private.worker.global_worker.core_worker

    async def stats():
        return await cw.raylet.request("get_node_stats", None)

    return cw.run_sync(stats())


def test_objects_over_2_gib_spill_to_disk_and_restore_intact(tmp_path):
    # A 3 GiB store spills past 2.4 GiB: the second object pushes the first out, reading the first brings
    # it back and pushes the second out.
    ray.init(num_cpus=1, include_dashboard=False, object_store_memory=3 * 2**30, _temp_dir=str(tmp_path / "ray"))
    try:
        first = np.full(OVER_2_GIB, 1, dtype=np.uint8)
        first[-1] = 11
        first_ref = ray.put(first)
        del first
        second_ref = ray.put(b"s" * (OVER_2_GIB - 1) + b"#")
        assert _node_stats()["spilled_bytes_total"] >= OVER_2_GIB

        back = ray.get(first_ref)
        assert back.nbytes == OVER_2_GIB and back[-1] == 11 and bool((back[: -1 : 2**20] == 1).all())
        del back
        assert _node_stats()["restored_bytes_total"] >= OVER_2_GIB
        assert ray.get(length.remote(second_ref)) == OVER_2_GIB  # a task reads the one spilled second
        second = ray.get(second_ref)
        assert second[:1] == b"s" and second[-1:] == b"#" and len(second) == OVER_2_GIB
    finally:
        ray.shutdown()


@pytest.fixture
def two_nodes(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_temp_dir": str(tmp_path / "ray")})
    cluster.add_node(num_cpus=1, resources={"far": 1})
    try:
        ray.init(address=cluster.address)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        process_registry.stop_all(str(tmp_path / "ray"), force=True, grace_period_s=2)


def test_values_cross_nodes_in_chunks_intact(two_nodes):
    size = 300 * 2**20 + 12345  # several 64 MiB chunks and a short last one

    @ray.remote(resources={"far": 1})
    def make_array(n: int) -> np.ndarray:
        a = np.arange(n, dtype=np.uint64) % 251
        return a.astype(np.uint8)

    @ray.remote(resources={"far": 1})
    def last_bytes(value: bytes) -> tuple[int, bytes]:
        return len(value), value[-8:]

    far = ray.get(make_array.remote(size))  # pulled from the other node's store
    assert far.nbytes == size and bool((far == (np.arange(size, dtype=np.uint64) % 251).astype(np.uint8)).all())
    mine = ray.put(b"k" * (size - 8) + b"12345678")  # pulled by the other node from this one
    assert ray.get(last_bytes.remote(mine)) == (size, b"12345678")


def test_an_object_over_2_gib_crosses_nodes_intact(two_nodes):
    @ray.remote(resources={"far": 1})
    def make_far(n: int) -> np.ndarray:
        a = np.full(n, 5, dtype=np.uint8)
        a[-1] = 77
        return a

    far = ray.get(make_far.remote(OVER_2_GIB))  # 33 chunks, the last one short
    assert far.nbytes == OVER_2_GIB and far[-1] == 77 and bool((far[: -1 : 2**20] == 5).all())


def _stats_of(node_id: str) -> dict:
    """GET_NODE_STATS of any node's raylet, over its framed TCP port (the cluster's token)."""
    cw = ray._private.worker.global_worker.core_worker
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)

    async def stats():
        conn = await cw.pool.get(f"{node['NodeManagerAddress']}:{node['RayletTcpPort']}")
        return await conn.request("get_node_stats", None)

    return cw.run_sync(stats(), timeout=30)


def test_readers_on_one_node_share_one_pull_and_its_copy_goes_with_the_object(two_nodes):
    """Two tasks on the far node read the driver's 96 MiB object at once, a third after them: the far raylet
    pulls it once into its store and all three map that copy. When the driver drops the ref the copy is freed
    there too."""
    far_id = next(iter(two_nodes.worker_nodes)).node_id
    size = 96 * 2**20

    @ray.remote(num_cpus=0, resources={"far": 0.4})
    def read(array: np.ndarray) -> tuple[int, int, bool]:
        return array.nbytes, int(array[-1]), bool(array.flags.writeable)

    array = np.full(size, 3, dtype=np.uint8)
    array[-1] = 99
    ref = ray.put(array)
    assert ray.get([read.remote(ref), read.remote(ref)]) == [(size, 99, False)] * 2
    assert ray.get(read.remote(ref)) == (size, 99, False)
    stats = _stats_of(far_id)
    assert stats["num_pulls"] == 1, stats
    assert stats["num_pull_requests"] >= 1 and stats["num_copies"] == 1
    assert size <= stats["pulled_bytes_total"] < size + 2**20 and stats["object_store_used_bytes"] >= size
    del ref
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = _stats_of(far_id)
        if stats["num_copies"] == 0 and stats["object_store_used_bytes"] == 0:
            break
        time.sleep(0.2)
    assert stats["num_copies"] == 0 and stats["object_store_used_bytes"] == 0, stats
