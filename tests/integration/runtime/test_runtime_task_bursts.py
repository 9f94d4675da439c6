"""Bursts of task submissions (the driver hands them to its io thread in batches) on a real local cluster."""

from __future__ import annotations

import time

import pytest
import ray
from ray.exceptions import TaskCancelledError
from threads import run_on_threads


@pytest.fixture(scope="module", autouse=True)
def cluster(tmp_path_factory):
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote
def add(x, y=0):
    return x + y


@ray.remote
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


def test_bursts_from_several_threads_all_complete_with_their_own_results():
    base = ray.put(1000)
    results: dict[int, list] = {}

    def submit_burst(thread_no: int) -> None:
        # Plain values, a ref owned here (resolved before pushing) and a chained result, interleaved.
        refs = [add.remote(thread_no * 10_000 + i, base if i % 3 == 0 else 0) for i in range(300)]
        chained = [add.remote(ref, 1) for ref in refs[:50]]
        results[thread_no] = ray.get(refs + chained, timeout=300)

    run_on_threads(submit_burst, [(n,) for n in range(4)], timeout=400)
    for n in range(4):
        expected = [n * 10_000 + i + (1000 if i % 3 == 0 else 0) for i in range(300)]
        assert results[n] == expected + [v + 1 for v in expected[:50]]


def test_cancel_right_after_submitting_a_burst():
    busy = [sleepy.remote(2) for _ in range(2)]  # both CPUs taken: the next ones wait at the driver
    queued = [sleepy.remote(0) for _ in range(20)]
    for ref in queued[::2]:
        ray.cancel(ref)
    for i, ref in enumerate(queued):
        if i % 2 == 0:
            with pytest.raises(TaskCancelledError):
                ray.get(ref, timeout=60)
        else:
            assert ray.get(ref, timeout=60) == 0
    assert ray.get(busy, timeout=60) == [2, 2]
