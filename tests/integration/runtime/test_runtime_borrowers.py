"""Refs that travel inside values: the object lives while anyone holds a ref and goes when the last one does.

Each test watches the node's shared-memory store (bytes in use, as the raylet reports them to the GCS):
an object of 8 MB is there while some process holds a ref to it, and the bytes return to zero after the
last holder lets go, wherever that holder is.
"""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
import ray
from ray._common.gcs_client import GcsClient

MB8 = 1_000_000  # float64 elements: 8 MB, far above the inline limit


@pytest.fixture
def store(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path / "ray"))
    client = GcsClient(ray.get_runtime_context().gcs_address)
    try:
        yield _Store(client)
    finally:
        client.close()
        ray.shutdown()


class _Store:
    def __init__(self, client: GcsClient):
        self.client = client

    def used(self) -> int:
        return sum(n.object_store_used_bytes for n in self.client.get_all_resource_usage())

    def settles_at(self, predicate, timeout: float = 20) -> int:
        """Wait until the used bytes satisfy `predicate` (the raylet reports every 100 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            gc.collect()
            time.sleep(0.3)
            used = self.used()
            if predicate(used) or time.monotonic() > deadline:
                return used

    def stays(self, predicate, seconds: float = 2.0) -> bool:
        """The used bytes come to satisfy `predicate` and still do `seconds` later."""
        if not predicate(self.settles_at(predicate)):
            return False
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            gc.collect()
            if not predicate(self.used()):
                return False
            time.sleep(0.3)
        return True


@ray.remote
class Keeper:
    def __init__(self):
        self.kept = []

    def keep(self, refs: list) -> int:
        self.kept.extend(refs)
        return len(self.kept)

    def total(self) -> float:
        return float(sum(ray.get(r).sum() for r in self.kept))

    def drop(self) -> None:
        self.kept.clear()
        gc.collect()


def test_a_ref_kept_by_an_actor_outlives_the_drivers_ref_and_goes_with_the_actors(store):
    ref = ray.put(np.ones(MB8))
    keeper = Keeper.remote()
    assert ray.get(keeper.keep.remote([ref])) == 1  # nested in a list: the actor gets the ref itself
    del ref
    # The driver holds nothing now; the actor's ref keeps the object in the store.
    assert store.stays(lambda used: used >= 8_000_000)
    assert ray.get(keeper.total.remote()) == MB8
    ray.get(keeper.drop.remote())
    assert store.settles_at(lambda used: used == 0) == 0


def test_a_borrower_letting_go_leaves_the_owners_object_alone(store):
    ref = ray.put(np.ones(MB8))
    keeper = Keeper.remote()
    ray.get(keeper.keep.remote([ref]))
    assert ray.get(keeper.total.remote()) == MB8  # the actor read it: a copy of the location is cached there
    ray.get(keeper.drop.remote())
    assert store.stays(lambda used: used >= 8_000_000)
    assert ray.get(ref).sum() == MB8


def test_a_ref_returned_inside_a_value_lives_with_the_value(store):
    @ray.remote
    def make() -> list:
        return [ray.put(np.full(MB8, 2.0))]  # owned by the worker, held by the caller's value

    outer = make.remote()
    inner = ray.get(outer)[0]
    del outer
    gc.collect()
    assert store.stays(lambda used: used >= 8_000_000)
    assert ray.get(inner).sum() == 2 * MB8
    del inner
    assert store.settles_at(lambda used: used == 0) == 0


def test_a_put_value_holding_refs_keeps_them_until_the_value_goes(store):
    inner = ray.put(np.full(MB8, 3.0))
    outer = ray.put({"payload": inner})
    del inner
    assert store.stays(lambda used: used >= 8_000_000)

    @ray.remote
    def total(box: dict) -> float:
        return float(ray.get(box["payload"]).sum())

    assert ray.get(total.remote(outer)) == 3 * MB8
    del outer
    assert store.settles_at(lambda used: used == 0) == 0


def test_refs_passed_through_a_chain_of_tasks_are_freed_at_the_end(store):
    @ray.remote
    def forward(refs: list) -> list:
        return refs  # the same ref goes back out inside the return value

    ref = ray.put(np.ones(MB8))
    back = ray.get(forward.remote([ref]))
    del ref
    assert store.stays(lambda used: used >= 8_000_000)
    assert ray.get(back[0]).sum() == MB8
    del back
    assert store.settles_at(lambda used: used == 0) == 0


def test_a_borrower_that_dies_lets_go(store):
    ref = ray.put(np.ones(MB8))
    keeper = Keeper.remote()
    ray.get(keeper.keep.remote([ref]))
    del ref
    assert store.stays(lambda used: used >= 8_000_000)
    ray.kill(keeper)
    assert store.settles_at(lambda used: used == 0) == 0


def test_large_actor_constructor_arguments_reach_the_actor(store):
    @ray.remote
    class Holder:
        def __init__(self, array):
            self.total = float(array.sum())

        def get(self) -> float:
            return self.total

    @ray.remote
    def busy(seconds: float) -> None:
        time.sleep(seconds)

    # Both CPUs are taken, so the actor starts a few seconds after `.remote()` has returned.
    running = [busy.remote(4) for _ in range(2)]
    time.sleep(1)
    holder = Holder.options(num_cpus=1).remote(np.ones(MB8))
    gc.collect()
    assert ray.get(holder.get.remote(), timeout=60) == MB8
    ray.get(running)
