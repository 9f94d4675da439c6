"""Actors on a real local cluster: ordering, handles, async/threaded, names, kill, restarts, exit."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
import ray
from ray.exceptions import RayActorError
from threads import run_on_threads


@pytest.fixture(scope="module", autouse=True)
def cluster(tmp_path_factory):
    ray.init(num_cpus=4, include_dashboard=False, namespace="test-ns",
             runtime_env={"env_vars": {"counter_name": "test_counter"}},
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.value = start
        self.name = os.getenv("counter_name")

    def inc(self, by=1):
        self.value += by
        return self.value

    def get(self):
        return self.value

    def label(self):
        return f"{self.name} got {self.value}"

    def pid(self):
        return os.getpid()

    def die(self):
        os._exit(1)


def test_calls_run_in_submission_order_and_see_the_job_runtime_env():
    c = Counter.remote(10)
    refs = [c.inc.remote() for _ in range(50)]
    assert ray.get(refs) == list(range(11, 61))
    assert ray.get(c.label.remote()) == "test_counter got 60"


@ray.remote
class Recorder:
    def __init__(self):
        self.seen = []

    def record(self, caller, n, *unused):
        self.seen.append((caller, n))
        return n

    def calls_of(self, caller):
        return [n for c, n in self.seen if c == caller]


def test_calls_keep_each_callers_order_whether_the_caller_or_the_io_thread_pushes_them():
    # A sync call on an idle actor is pushed by the calling thread itself; a burst, or an argument still being
    # computed, goes through the io thread. Mixed, from several threads at once, each caller's calls still run in
    # the order it made them.
    recorder = Recorder.remote()
    ray.get(recorder.record.remote("warm-up", 0))
    pending_value = ray.put(b"x" * 10)

    def caller(name: str) -> None:
        n = 0
        for round_no in range(30):
            n += 1
            assert ray.get(recorder.record.remote(name, n), timeout=60) == n  # pushed by this thread
            burst = []
            for _ in range(3):
                n += 1
                burst.append(recorder.record.remote(name, n))
            n += 1
            burst.append(recorder.record.remote(name, n, pending_value if round_no % 2 else None))
            assert ray.get(burst, timeout=60) == list(range(n - 3, n + 1))

    run_on_threads(caller, [(f"caller-{i}",) for i in range(3)], timeout=300)
    for i in range(3):
        assert ray.get(recorder.calls_of.remote(f"caller-{i}")) == list(range(1, 151))


def test_actor_cannot_be_instantiated_directly():
    with pytest.raises(TypeError, match=r"Actors cannot be instantiated directly.*Counter.remote\(\)"):
        Counter()


def test_handles_can_be_passed_to_tasks_and_other_actors():
    c = Counter.remote()

    @ray.remote
    def bump(handle, n):
        return ray.get([handle.inc.remote() for _ in range(n)])[-1]

    assert ray.get(bump.remote(c, 5)) == 5
    assert ray.get(c.get.remote()) == 5


def test_async_actor_runs_calls_concurrently():
    @ray.remote
    class AsyncActor:
        def __init__(self):
            self.waiting = 0

        async def rendezvous(self, n):
            # Returns only once n calls are inside at the same time: impossible without concurrency.
            self.waiting += 1
            while self.waiting < n:
                await asyncio.sleep(0.01)
            return "met"

    a = AsyncActor.options(max_concurrency=10).remote()
    assert ray.get([a.rendezvous.remote(5) for _ in range(5)], timeout=60) == ["met"] * 5


def test_cancelling_async_actor_calls_running_or_waiting_for_a_slot():
    @ray.remote(max_concurrency=1)
    class Sleeper:
        def __init__(self):
            self.cancelled = 0

        async def sleep(self, seconds):
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                self.cancelled += 1  # the method sees the cancellation, as in Ray
                raise
            return "slept"

        async def count(self):
            return self.cancelled

    s = Sleeper.remote()
    running = s.sleep.remote(60)
    waiting = s.sleep.remote(60)  # max_concurrency=1: queued behind `running`
    time.sleep(1)
    ray.cancel(waiting)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(waiting, timeout=30)
    ray.cancel(running)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(running, timeout=30)
    assert ray.get(s.count.remote(), timeout=30) == 1  # only the running call had started
    assert ray.get(s.sleep.remote(0), timeout=30) == "slept"  # the actor goes on


def test_threaded_actor_runs_calls_in_parallel_threads():
    @ray.remote(max_concurrency=4)
    class Threaded:
        def __init__(self):
            self.barrier = threading.Barrier(4, timeout=30)

        def meet(self):
            self.barrier.wait()
            return threading.get_ident()

    t = Threaded.remote()
    idents = ray.get([t.meet.remote() for _ in range(4)], timeout=60)
    assert len(set(idents)) == 4


def test_named_actors_namespaces_and_get_if_exists():
    c = Counter.options(name="shared").remote(100)
    assert ray.get(ray.get_actor("shared").inc.remote()) == 101
    with pytest.raises(ValueError, match="The name shared .* is already taken"):
        Counter.options(name="shared").remote()
    same = Counter.options(name="shared", get_if_exists=True).remote()
    assert ray.get(same.get.remote()) == 101
    with pytest.raises(ValueError, match="Failed to look up actor with name 'shared'"):
        ray.get_actor("shared", namespace="another")
    other = Counter.options(name="shared", namespace="another").remote(7)
    assert ray.get(ray.get_actor("shared", namespace="another").get.remote()) == 7
    ray.kill(other)
    del c


def test_kill_makes_calls_raise_ray_actor_error():
    c = Counter.remote()
    assert ray.get(c.inc.remote()) == 1
    ray.kill(c)
    with pytest.raises(RayActorError, match="killed by `ray.kill`"):
        ray.get(c.inc.remote(), timeout=60)
    with pytest.raises(ValueError, match=r"ray.kill\(\) only supported for actors"):
        ray.kill("not an actor")


def test_max_restarts_and_max_task_retries():
    c = Counter.options(max_restarts=1, max_task_retries=1).remote()
    assert ray.get(c.inc.remote()) == 1
    first_pid = ray.get(c.pid.remote())
    with pytest.raises(RayActorError):
        ray.get(c.die.remote(), timeout=60)  # retried once after the restart, dies again: out of restarts
    with pytest.raises(RayActorError):
        ray.get(c.get.remote(), timeout=60)

    r = Counter.options(max_restarts=2).remote()
    ray.get(r.inc.remote())
    os.kill(ray.get(r.pid.remote()), 9)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # State is lost on restart: the counter starts again.
            assert ray.get(r.inc.remote(), timeout=60) == 1
            break
        except RayActorError:
            time.sleep(0.2)  # calls in flight while it died fail; new ones reach the restarted actor
    assert ray.get(r.pid.remote()) != first_pid


def test_an_actor_whose_method_kills_its_process_is_restarted_and_a_call_right_after_reaches_the_new_one():
    # Measured on Ray 2.60 (bench/workloads.py run by bench/run.py --ray-only, 2026-12-01): a method that kills
    # its process on every call, retried once (max_task_retries=1), kills the restarted actor too, and with
    # max_restarts=1 the actor is then dead: Ray raises ActorDiedError for that call and the next ones, as the
    # test above asserts. A method that kills it only the first time is restarted, retried, and later calls
    # reach the new process.
    @ray.remote(max_restarts=1, max_task_retries=1)
    class CrashOnce:
        def pid(self):
            return os.getpid()

        def crash_once(self):
            if not ray.get_runtime_context().was_current_actor_reconstructed:
                os._exit(1)
            return os.getpid()

    actor = CrashOnce.remote()
    first = ray.get(actor.pid.remote())
    crashed = actor.crash_once.remote()
    after = ray.get(actor.pid.remote(), timeout=60)
    assert after != first
    assert ray.get(crashed, timeout=60) == after  # retried once, on the restarted actor


def test_exit_actor_ends_the_actor_without_restart():
    @ray.remote(max_restarts=3)
    class Quitter:
        def quit(self):
            ray.actor.exit_actor()

        def ping(self):
            return "pong"

    q = Quitter.remote()
    assert ray.get(q.ping.remote()) == "pong"
    ray.get(q.quit.remote())
    with pytest.raises(RayActorError):
        ray.get(q.ping.remote(), timeout=60)


def test_constructor_error_is_reported_on_calls():
    @ray.remote
    class Broken:
        def __init__(self):
            raise ZeroDivisionError("bad init")

        def f(self):
            return 1

    b = Broken.remote()
    with pytest.raises(RayActorError, match="bad init"):
        ray.get(b.f.remote(), timeout=60)


def test_actor_runtime_context_and_resources():
    @ray.remote(num_cpus=1)
    class Ctx:
        def info(self):
            c = ray.get_runtime_context()
            return c.get_actor_id(), c.namespace, c.get_assigned_resources(), c.get_task_id()

    a = Ctx.remote()
    actor_id, namespace, resources, first_task = ray.get(a.info.remote())
    assert actor_id == a._ray_actor_id.hex() and namespace == "test-ns" and resources == {"CPU": 1.0}
    # Each call runs as its own task; the actor's part of the context stays (set once per thread).
    calls = ray.get([a.info.remote() for _ in range(3)])
    assert len({first_task, *(task for *_, task in calls)}) == 4
    assert all(call[:3] == (actor_id, "test-ns", {"CPU": 1.0}) for call in calls)
    threaded = Ctx.options(max_concurrency=4).remote()
    infos = ray.get([threaded.info.remote() for _ in range(8)])
    assert {info[0] for info in infos} == {threaded._ray_actor_id.hex()} and len({info[3] for info in infos}) == 8


def test_each_call_of_an_async_actor_runs_as_its_own_task_across_awaits():
    @ray.remote
    class AsyncCtx:
        async def task_ids(self, delay: float) -> tuple[str, str]:
            before = ray.get_runtime_context().get_task_id()
            await asyncio.sleep(delay)  # the other calls run meanwhile on the same thread
            return before, ray.get_runtime_context().get_task_id()

        def sync_method_task_id(self) -> str:
            return ray.get_runtime_context().get_task_id()

    a = AsyncCtx.remote()
    refs = [a.task_ids.remote(0.3 - i * 0.1) for i in range(3)]
    pairs = ray.get(refs, timeout=60)
    assert all(before == after for before, after in pairs)
    assert [before for before, _ in pairs] == [ref.task_id().hex() for ref in refs]
    sync_ref = a.sync_method_task_id.remote()
    assert ray.get(sync_ref, timeout=60) == sync_ref.task_id().hex()


def test_an_unnamed_actor_ends_when_its_handle_goes_away_after_its_calls():
    import psutil

    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    last = c.inc.remote(5)  # still runs although the handle is dropped right after
    del c
    assert ray.get(last) == 5
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def _exited(pid: int, timeout: float) -> bool:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie":
            return True
        time.sleep(0.1)
    return False


def test_an_actor_lives_while_any_process_holds_a_handle_to_it():
    @ray.remote
    class HandleKeeper:
        def keep(self, handle) -> None:
            self.handle = handle

        def call(self) -> int:
            return ray.get(self.handle.inc.remote())

        def drop(self) -> None:
            del self.handle

    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    keeper = HandleKeeper.remote()
    ray.get(keeper.keep.remote(c))
    del c  # the creator's handle is gone; the keeper's copy still counts
    assert not _exited(pid, 3)
    assert ray.get(keeper.call.remote()) == 1
    ray.get(keeper.drop.remote())
    assert _exited(pid, 30)
