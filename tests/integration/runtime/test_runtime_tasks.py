"""Tasks, objects and errors on a real local cluster started by `ray.init()`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import ray
from ray.exceptions import GetTimeoutError, RayTaskError, TaskCancelledError, WorkerCrashedError


@pytest.fixture(scope="module", autouse=True)
def cluster(tmp_path_factory):
    ray.init(num_cpus=4, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote
def double(x):
    return 2 * x


@ray.remote(num_returns=3)
def three():
    return 1, 2, 3


def test_remote_call_and_lists():
    assert ray.get(double.remote(21)) == 42
    assert ray.get([double.remote(i) for i in range(20)]) == [2 * i for i in range(20)]
    assert ray.get(three.remote()) == [1, 2, 3]
    assert ray.get(double.options(num_returns=1).remote(x=5)) == 10


def test_calling_a_remote_function_directly_is_an_error():
    with pytest.raises(TypeError, match=r"Remote functions cannot be called directly.*double.remote\(\)"):
        double(1)


def test_top_level_refs_are_resolved_and_nested_refs_stay_refs():
    @ray.remote
    def inspect_args(a, nested):
        return a, isinstance(nested[0], ray.ObjectRef), ray.get(nested[0])

    ref = ray.put(10)
    a, is_ref, nested_value = ray.get(inspect_args.remote(ref, [double.remote(4)]))
    assert (a, is_ref, nested_value) == (10, True, 8)
    chained = double.remote(double.remote(double.remote(1)))
    assert ray.get(chained) == 8


def test_get_timeout_raises_get_timeout_error_which_is_a_timeout_error():
    @ray.remote
    def slow():
        time.sleep(30)

    ref = slow.remote()
    with pytest.raises(GetTimeoutError) as info:
        ray.get(ref, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    ray.cancel(ref, force=True)


def test_wait_keeps_order_and_respects_num_returns_and_timeout():
    @ray.remote
    def sleep_then(x, s):
        time.sleep(s)
        return x

    fast = [double.remote(i) for i in range(3)]
    slow = sleep_then.remote(0, 30)
    ready, not_ready = ray.wait([slow, *fast], num_returns=3, timeout=20)
    assert ready == fast and not_ready == [slow]
    ready, not_ready = ray.wait([slow], timeout=0.1)
    assert ready == [] and not_ready == [slow]
    with pytest.raises(ValueError, match="num_returns cannot be greater"):
        ray.wait(fast, num_returns=4)
    with pytest.raises(ValueError, match="Wait requires a list of unique object refs"):
        ray.wait([fast[0], fast[0]])
    pending = sleep_then.remote(7, 0.5)
    assert ray.get([pending, pending], timeout=30) == [7, 7]  # the same ref twice is fine for get
    ray.cancel(slow, force=True)


def test_task_errors_are_ray_task_errors_and_the_users_exception():
    class MyError(Exception):
        pass

    @ray.remote
    def fail():
        raise MyError("boom from the task")

    with pytest.raises(MyError) as info:
        ray.get(fail.remote())
    err = info.value
    assert isinstance(err, RayTaskError)
    text = str(err)
    assert text.startswith("ray::fail() (pid=")
    assert "boom from the task" in text and 'in fail' in text
    # A task given a failed argument fails with the same error without running.
    with pytest.raises(MyError):
        ray.get(double.remote(fail.remote()))


def test_large_objects_live_in_shared_memory_and_come_back_zero_copy():
    arr = np.arange(2_000_000, dtype=np.float64)
    ref = ray.put(arr)
    out = ray.get(ref)
    assert np.array_equal(out, arr)
    assert not out.flags.writeable and not out.flags.owndata  # a read-only view of shared memory
    assert ray.get(double.remote(ref))[-1] == arr[-1] * 2
    big = ray.get(double.remote(np.ones(500_000)))
    assert big.sum() == 1_000_000


def test_put_of_an_object_ref_is_refused():
    with pytest.raises(TypeError, match="Calling 'put' on an ray.ObjectRef is not allowed"):
        ray.put(ray.put(1))


def test_max_retries_reruns_a_task_whose_worker_died(tmp_path):
    marker = tmp_path / "died-once"

    @ray.remote(max_retries=2)
    def die_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(1)
        return "survived"

    assert ray.get(die_once.remote(str(marker))) == "survived"

    @ray.remote(max_retries=0)
    def always_die():
        os._exit(1)

    with pytest.raises(WorkerCrashedError):
        ray.get(always_die.remote())


def test_retry_exceptions_retries_application_errors(tmp_path):
    counter = tmp_path / "attempts"

    @ray.remote(max_retries=3, retry_exceptions=[KeyError])
    def flaky(path):
        n = int(open(path).read()) if os.path.exists(path) else 0
        open(path, "w").write(str(n + 1))
        if n < 2:
            raise KeyError("not yet")
        return n

    assert ray.get(flaky.remote(str(counter))) == 2

    @ray.remote(max_retries=3, retry_exceptions=[KeyError])
    def wrong_kind():
        raise ValueError("not retried")

    with pytest.raises(ValueError):
        ray.get(wrong_kind.remote())


def test_cancel_queued_and_running_tasks():
    @ray.remote(num_cpus=4)
    def hog():
        time.sleep(60)

    @ray.remote
    def spin():
        while True:
            time.sleep(0.01)

    running = hog.remote()
    queued = hog.remote()
    time.sleep(0.5)
    ray.cancel(queued)
    with pytest.raises(TaskCancelledError):
        ray.get(queued, timeout=30)
    ray.cancel(running, force=True)
    with pytest.raises((TaskCancelledError, WorkerCrashedError)):
        ray.get(running, timeout=30)
    spinning = spin.remote()
    time.sleep(1)
    ray.cancel(spinning)
    with pytest.raises(TaskCancelledError):
        ray.get(spinning, timeout=30)


def test_cancel_interrupts_a_blocking_call_and_reaches_the_tasks_it_submitted(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    @ray.remote
    def child(marks: str) -> None:
        open(os.path.join(marks, "child-started"), "w").close()
        try:
            time.sleep(120)  # blocked in C: only a signal wakes it
        except KeyboardInterrupt:
            open(os.path.join(marks, "child-interrupted"), "w").close()
            raise

    @ray.remote
    def parent(marks: str) -> None:
        ray.get(child.remote(marks))  # blocked in ray.get

    ref = parent.remote(str(marks))
    deadline = time.monotonic() + 60
    while not (marks / "child-started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    ray.cancel(ref)  # recursive=True is Ray's default
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=30)
    deadline = time.monotonic() + 30
    while not (marks / "child-interrupted").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (marks / "child-interrupted").exists()


def test_nested_tasks_and_blocked_get_lends_the_cpu_back():
    @ray.remote
    def parent(depth):
        if depth == 0:
            return 1
        return sum(ray.get([parent.remote(depth - 1) for _ in range(2)])) + 1

    # 4 CPUs, 15 tasks all blocked in ray.get at some point: only works if blocked tasks lend their CPU.
    assert ray.get(parent.remote(3), timeout=120) == 15


def test_runtime_context_and_resources():
    ctx = ray.get_runtime_context()
    assert len(ctx.get_job_id()) == 8 and ctx.get_task_id() is None

    @ray.remote(num_cpus=2, resources={})
    def context():
        c = ray.get_runtime_context()
        return c.get_task_id(), c.get_node_id(), c.get_assigned_resources(), ray.get_gpu_ids()

    task_id, node_id, assigned, gpus = ray.get(context.remote())
    assert task_id and node_id == ctx.get_node_id() and assigned == {"CPU": 2.0} and gpus == []
    total = ray.cluster_resources()
    assert total["CPU"] == 4.0 and "memory" in total and "object_store_memory" in total
    assert any(k.startswith("node:") for k in total)
    (node,) = ray.nodes()
    assert node["Alive"] and node["Resources"]["CPU"] == 4.0 and node["NodeID"] == ctx.get_node_id()
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU") != 4.0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources()["CPU"] == 4.0


def test_invalid_options_have_clear_errors():
    with pytest.raises(ValueError, match="Invalid option keyword bogus for remote functions"):
        double.options(bogus=1)
    with pytest.raises(ValueError, match="Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU'"):
        double.options(resources={"CPU": 1}).remote(1)


def test_a_script_s_remote_function_used_by_the_driver_can_be_called_from_its_actors_and_tasks(tmp_path):
    # Functions and classes of `__main__` travel by value: one the driver has already called must not
    # drag the driver's connection along (it did: "TypeError: no default __reduce__" from a gRPC channel).
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import ray
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir={str(tmp_path / "ray")!r})

        @ray.remote
        def small_value():
            return b"ok"

        @ray.remote
        class Batcher:
            def batch(self, n):
                return ray.get([small_value.remote() for _ in range(n)])

        @ray.remote
        def make_and_call():
            return ray.get(Batcher.remote().batch.remote(2))

        assert ray.get(small_value.remote()) == b"ok"
        assert ray.get(Batcher.remote().batch.remote(3)) == [b"ok"] * 3
        assert ray.get(make_and_call.remote()) == [b"ok"] * 2
        print("all calls returned")
        ray.shutdown()
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "all calls returned" in out.stdout
