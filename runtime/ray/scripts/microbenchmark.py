"""`ray microbenchmark`: Ray's microbenchmark rows, measured the way Ray measures them.

Users compare clusters and releases by these lines, so each row keeps Ray's name, workload and multiplier
and prints `<name> per second <mean> +- <sd>`. As in Ray, each row first sleeps (neighbours settle), runs
its workload for 1 s to warm up, then reports the mean and spread of four 2 s rounds; `TESTS_TO_RUN`
keeps only rows whose name contains it and `TESTS_TO_SKIP` drops those that do.
`RAY_MICROBENCHMARK_WARMUP_S` (ours; default Ray's 10 s) shortens the sleep, e.g. for a quick look.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

import ray

Row = tuple[str, float, float]


def _selected(name: str) -> bool:
    wanted, skipped = os.environ.get("TESTS_TO_RUN", ""), os.environ.get("TESTS_TO_SKIP", "")
    return (not wanted or wanted in name) and not (skipped and skipped in name)


def timeit(name: str, fn: Callable[[], object], multiplier: float = 1) -> list[Row]:
    """Run `fn` repeatedly and print Ray's line for it; `multiplier` counts operations per call."""
    if not _selected(name):
        return []
    time.sleep(float(os.environ.get("RAY_MICROBENCHMARK_WARMUP_S", "10")))
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1:
        fn()
        calls += 1
    step = calls // 10 + 1  # check the clock every ~0.1 s worth of calls, not after each one
    rates = []
    for _ in range(4):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < 2:
            for _ in range(step):
                fn()
            calls += step
        rates.append(multiplier * calls / (time.perf_counter() - start))
    mean, sd = statistics.fmean(rates), statistics.pstdev(rates)
    print(name, "per second", round(mean, 2), "+-", round(sd, 2), flush=True)
    return [(name, mean, sd)]


@ray.remote
def small_value() -> bytes:
    return b"ok"


@ray.remote
def create_object_containing_ref() -> list:
    return [ray.put(1) for _ in range(10000)]


@ray.remote(num_cpus=0)
class Actor:
    def small_value(self) -> bytes:
        return b"ok"

    def small_value_arg(self, x: object) -> bytes:
        return b"ok"

    def small_value_batch(self, n: int) -> None:
        ray.get([small_value.remote() for _ in range(n)])


@ray.remote
class AsyncActor:
    async def small_value(self) -> bytes:
        return b"ok"

    async def small_value_with_arg(self, x: object) -> bytes:
        return b"ok"

    async def small_value_batch(self, n: int) -> None:
        await asyncio.gather(*[small_value.remote() for _ in range(n)])


@ray.remote(num_cpus=0)
class Client:
    """Calls other actors from inside the cluster (the 1:n and n:n rows)."""

    def __init__(self, servers: list | object):
        self.servers = servers if isinstance(servers, list) else [servers]

    def small_value_batch(self, n: int) -> None:
        ray.get([s.small_value.remote() for s in self.servers for _ in range(n)])

    def small_value_batch_arg(self, n: int) -> None:
        x = ray.put(0)
        ray.get([s.small_value_arg.remote(x) for s in self.servers for _ in range(n)])


def _object_rows() -> list[Row]:
    results: list[Row] = []
    value = ray.put(0)
    results += timeit("single client get calls (Plasma Store)", lambda: ray.get(value))
    results += timeit("single client put calls (Plasma Store)", lambda: ray.put(0))

    @ray.remote
    def do_put_small() -> None:
        for _ in range(100):
            ray.put(0)

    results += timeit("multi client put calls (Plasma Store)",
                      lambda: ray.get([do_put_small.remote() for _ in range(10)]), 1000)
    arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)  # 800 MiB
    results += timeit("single client put gigabytes", lambda: ray.put(arr), 8 * 0.1)
    results += timeit("single client tasks and get batch",
                      lambda: ray.get([small_value.remote() for _ in range(1000)]))

    @ray.remote
    def do_put() -> None:
        for _ in range(10):
            ray.put(np.zeros(10 * 1024 * 1024, dtype=np.int64))

    results += timeit("multi client put gigabytes", lambda: ray.get([do_put.remote() for _ in range(10)]),
                      10 * 8 * 0.1)
    containing = create_object_containing_ref.remote()
    results += timeit("single client get object containing 10k refs", lambda: ray.get(containing))

    def wait_multiple_refs() -> None:
        not_ready = [small_value.remote() for _ in range(1000)]
        for _ in range(1000):
            _, not_ready = ray.wait(not_ready)

    results += timeit("single client wait 1k refs", wait_multiple_refs)
    return results


def _task_and_actor_rows() -> list[Row]:
    results: list[Row] = []
    results += timeit("single client tasks sync", lambda: ray.get(small_value.remote()))
    results += timeit("single client tasks async", lambda: ray.get([small_value.remote() for _ in range(1000)]),
                      1000)
    n, m = 10000, 4
    batchers = [Actor.remote() for _ in range(m)]
    results += timeit("multi client tasks async", lambda: ray.get([a.small_value_batch.remote(n) for a in batchers]),
                      n * m)

    a = Actor.remote()
    results += timeit("1:1 actor calls sync", lambda: ray.get(a.small_value.remote()))
    b = Actor.remote()
    results += timeit("1:1 actor calls async", lambda: ray.get([b.small_value.remote() for _ in range(1000)]), 1000)
    c = Actor.options(max_concurrency=16).remote()
    results += timeit("1:1 actor calls concurrent", lambda: ray.get([c.small_value.remote() for _ in range(1000)]),
                      1000)

    n, n_cpu = 5000, max(multiprocessing.cpu_count() // 2, 1)
    servers = [Actor.remote() for _ in range(n_cpu)]
    client = Client.remote(servers)
    results += timeit("1:n actor calls async", lambda: ray.get(client.small_value_batch.remote(n)), n * n_cpu)

    spread = [Actor.remote() for _ in range(n_cpu)]

    @ray.remote
    def work(actors: list) -> None:
        ray.get([actors[i % n_cpu].small_value.remote() for i in range(n)])

    results += timeit("n:n actor calls async", lambda: ray.get([work.remote(spread) for _ in range(m)]), m * n)

    n = 1000
    clients = [Client.remote(Actor.remote()) for _ in range(n_cpu)]
    results += timeit("n:n actor calls with arg async",
                      lambda: ray.get([cl.small_value_batch_arg.remote(n) for cl in clients]), n * n_cpu)
    return results


def _async_actor_rows() -> list[Row]:
    results: list[Row] = []
    a = AsyncActor.remote()
    results += timeit("1:1 async-actor calls sync", lambda: ray.get(a.small_value.remote()))
    b = AsyncActor.remote()
    results += timeit("1:1 async-actor calls async", lambda: ray.get([b.small_value.remote() for _ in range(1000)]),
                      1000)
    c = AsyncActor.remote()
    results += timeit("1:1 async-actor calls with args async",
                      lambda: ray.get([c.small_value_with_arg.remote(i) for i in range(1000)]), 1000)

    n, m, n_cpu = 5000, 4, max(multiprocessing.cpu_count() // 2, 1)
    client = Client.remote([AsyncActor.remote() for _ in range(n_cpu)])
    results += timeit("1:n async-actor calls async", lambda: ray.get(client.small_value_batch.remote(n)), n * n_cpu)
    servers = [AsyncActor.remote() for _ in range(n_cpu)]

    @ray.remote
    def async_actor_work(actors: list) -> None:
        ray.get([actors[i % n_cpu].small_value.remote() for i in range(n)])

    results += timeit("n:n async-actor calls async",
                      lambda: ray.get([async_actor_work.remote(servers) for _ in range(m)]), m * n)
    return results


def _placement_group_rows() -> list[Row]:
    num_pgs = 100

    def create_and_remove() -> None:
        pgs = [ray.util.placement_group(bundles=[{"custom": 0.001}]) for _ in range(num_pgs)]
        for pg in pgs:
            pg.wait(timeout_seconds=30)
        for pg in pgs:
            ray.util.remove_placement_group(pg)

    return timeit("placement group create/removal", create_and_remove, num_pgs)


def main(results: list[Row] | None = None) -> list[Row]:
    results = results if results is not None else []
    print("Tip: set TESTS_TO_RUN='pattern' to run a subset of benchmarks", flush=True)
    ray.init()
    try:
        results += _object_rows()
        results += _task_and_actor_rows()
        results += _async_actor_rows()
    finally:
        ray.shutdown()
    if _selected("placement group create/removal"):
        ray.init(resources={"custom": 100})
        try:
            results += _placement_group_rows()
        finally:
            ray.shutdown()
    return results
