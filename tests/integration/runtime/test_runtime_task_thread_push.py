"""A user thread pushes a normal task itself to an idle leased worker of its class (core_worker/task_submitter.py,
`submit_threadsafe`): what it pushes runs, is reported, retried and cancelled as if the io thread had pushed it,
threads racing the io thread lose nothing, and idle leases still go back."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import ray
from local_ray import local_ray_with_dashboard
from polling import wait_for
from ray.exceptions import TaskCancelledError
from ray.util import state


@pytest.fixture(scope="module", autouse=True)
def dashboard(tmp_path_factory):
    with local_ray_with_dashboard(tmp_path_factory.mktemp("ray"), num_cpus=2) as c:
        yield c["url"]


@ray.remote
def plus_one(x):
    return x + 1


@ray.remote
def pid_of():
    return os.getpid()


@ray.remote(max_retries=2)
def dies_once(marker: str):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "second attempt"


@ray.remote
def sleeps(s):
    time.sleep(s)
    return s


def _inbox_puts(submitter) -> list:
    """Counts what goes through the io thread's inbox from now on (a wrapper that calls the real put)."""
    seen: list = []
    put = submitter._inbox.put

    def counting_put(*item):
        seen.append(item)
        put(*item)

    submitter._inbox.put = counting_put
    return seen


def _submitter():
    return ray._private.worker.global_worker.core_worker.submitter


def test_a_sync_task_with_an_idle_leased_worker_is_pushed_by_the_calling_thread():
    assert ray.get(plus_one.remote(0)) == 1  # the first one leases a worker and sends the function
    submitter = _submitter()
    seen = _inbox_puts(submitter)
    try:
        assert [ray.get(plus_one.remote(n)) for n in range(50)] == list(range(1, 51))
    finally:
        del submitter._inbox.put
    assert len(seen) <= 2, f"{len(seen)} of 50 sync tasks went through the io thread"


def test_a_task_pushed_by_a_thread_is_reported_like_any_other(dashboard):
    ray.get(plus_one.remote(0))
    ref = plus_one.options(name="pushed_by_thread").remote(41)
    assert ray.get(ref) == 42
    task_id = ref.task_id().hex()

    def finished():
        rows = state.list_tasks(address=dashboard, filters=[("task_id", "=", task_id)], detail=True)
        return rows if rows and rows[0]["state"] == "FINISHED" else None

    row = wait_for(finished, timeout=60, what="the task FINISHED in the state API", ignore_errors=True)[0]
    assert row["name"] == "pushed_by_thread"
    times = {e["state"]: e["created_ms"] for e in row["events"]}
    for st in ("PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "RUNNING", "FINISHED"):
        assert st in times, (st, row["events"])
    assert times["PENDING_NODE_ASSIGNMENT"] <= times["SUBMITTED_TO_WORKER"] <= times["RUNNING"] <= times["FINISHED"]


def test_threads_racing_the_io_thread_lose_no_task_and_idle_leases_go_back():
    total_cpus = ray.cluster_resources()["CPU"]
    errors: list = []
    results: dict[int, list] = {}

    def sync_caller(k: int) -> None:
        try:
            results[k] = [ray.get(plus_one.remote(k * 1000 + n)) for n in range(200)]
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=sync_caller, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    bursts = [ray.get([plus_one.remote(n) for n in range(500)]) for _ in range(4)]  # the io thread pumps meanwhile
    for t in threads:
        t.join(120)
    assert not errors
    assert all(b == list(range(1, 501)) for b in bursts)
    for k in range(6):
        assert results[k] == [k * 1000 + n + 1 for n in range(200)]
    # Nothing queued any more: the leases go back once idle (the timer is never cancelled, only looks again).
    wait_for(lambda: ray.available_resources().get("CPU") == total_cpus, timeout=30)


def test_a_worker_dying_under_a_thread_pushed_task_retries_it(tmp_path):
    ray.get(plus_one.remote(0))
    ray.get(dies_once.remote(str(tmp_path / "warm")))  # leased, function sent, died once and retried
    assert ray.get(dies_once.remote(str(tmp_path / "marker")), timeout=60) == "second attempt"


def test_cancel_reaches_a_task_a_thread_pushed():
    ray.get(sleeps.remote(0))
    ref = sleeps.remote(60)
    time.sleep(0.5)
    ray.cancel(ref, force=True)
    with pytest.raises((TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        ray.get(ref, timeout=30)
    assert ray.get(pid_of.remote(), timeout=30) > 0  # the class gets a worker again
