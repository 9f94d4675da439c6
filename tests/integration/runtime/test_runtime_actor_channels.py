"""A thread's sync actor calls on a connection of its own (core_worker/actor_channels.py): the thread that waits
reads the answer itself, and every other way of needing that answer still gets it, in order.

Each test first makes three sync calls from its thread (`_warm`), so that its next call to that actor goes on the
thread's channel (opened at its second direct call)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import ray
from local_ray import local_ray_with_dashboard
from polling import wait_for
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util import state


@pytest.fixture(scope="module", autouse=True)
def dashboard(tmp_path_factory):
    with local_ray_with_dashboard(tmp_path_factory.mktemp("ray"), num_cpus=4) as c:
        yield c["url"]


@ray.remote
class Log:
    def __init__(self):
        self.seen = []

    def add(self, n, delay_s=0.0):
        time.sleep(delay_s)
        self.seen.append(n)
        return n

    def all(self):
        return list(self.seen)


@ray.remote
def plus_one(x):
    return x + 1


def _open_channels() -> int:
    return len(ray._private.worker.global_worker.core_worker.actor_submitter.channels._open)


def _warm(actor) -> None:
    """The first call waits for the actor's creation (the io thread sends it); the next two are direct."""
    for n in (-1, -2, -3):
        assert ray.get(actor.add.remote(n)) == n


def test_sync_calls_go_on_the_thread_s_channel_and_calls_after_an_unread_one_keep_their_order():
    log = Log.remote()
    before = _open_channels()
    _warm(log)
    assert _open_channels() == before + 1
    for n in range(20):
        assert ray.get(log.add.remote(n)) == n  # each read by this thread
    # Not read before the next calls: the sender waits for its answer (read by the io thread) before it pushes on.
    first = log.add.remote(100, 0.2)
    rest = [log.add.remote(101 + i) for i in range(5)]
    assert ray.get(rest + [first], timeout=60) == [101, 102, 103, 104, 105, 100]
    assert ray.get(log.all.remote())[3:] == list(range(20)) + list(range(100, 106))


def test_a_get_that_times_out_leaves_the_answer_for_a_later_get_or_another_thread():
    log = Log.remote()
    _warm(log)
    slow = log.add.remote(7, 1.0)
    with pytest.raises(GetTimeoutError):
        ray.get(slow, timeout=0.1)
    assert ray.get(slow, timeout=60) == 7

    other = log.add.remote(8, 0.3)
    got: list = []
    reader = threading.Thread(target=lambda: got.append(ray.get(other, timeout=60)))
    reader.start()
    reader.join(60)
    assert got == [8]


def test_an_answer_nobody_reads_is_still_stored_booked_and_usable_as_an_argument(dashboard):
    log = Log.remote()
    _warm(log)
    unread = log.add.remote(41)
    assert ray.get(plus_one.remote(unread), timeout=60) == 42  # the owner resolves it for the task

    unread_too = log.add.remote(5)
    task_id = unread_too.task_id().hex()
    time.sleep(0.5)  # nobody asks: the io thread's sweep reads it

    def finished():
        rows = state.list_tasks(address=dashboard, filters=[("task_id", "=", task_id)])
        return rows if rows and rows[0].state == "FINISHED" else None

    assert wait_for(finished, timeout=30, interval=0.3)[0].type == "ACTOR_TASK"

    async def awaited(ref):
        return await ref

    pending = log.add.remote(6, 0.2)
    assert asyncio.run(awaited(pending)) == 6
    ready, _ = ray.wait([log.add.remote(9, 0.1), log.add.remote(10)], num_returns=2, timeout=60)
    assert len(ready) == 2


def test_calls_read_by_their_thread_are_listed_as_finished(dashboard):
    log = Log.remote()
    _warm(log)
    refs = [log.add.remote(n) for n in (1, 2)]  # the first on the channel, read below by this thread
    task_ids = {ref.task_id().hex() for ref in refs}
    assert ray.get(refs[0]) == 1 and ray.get(refs[1]) == 2

    def finished():
        rows = [r for r in state.list_tasks(address=dashboard, filters=[("type", "=", "ACTOR_TASK")]) if r.task_id in task_ids]
        return rows if len(rows) == 2 and all(r.state == "FINISHED" for r in rows) else None

    assert wait_for(finished, timeout=30, interval=0.3)


def test_kill_while_the_caller_reads_its_channel_raises_ray_actor_error():
    log = Log.remote()
    _warm(log)
    stuck = log.add.remote(1, 60)
    threading.Timer(0.5, ray.kill, args=(log,)).start()
    started = time.monotonic()
    with pytest.raises(RayActorError):
        ray.get(stuck, timeout=60)
    assert time.monotonic() - started < 30


def test_a_call_in_flight_on_a_channel_when_the_actor_dies_is_retried_on_the_restarted_actor():
    @ray.remote(max_restarts=1, max_task_retries=1)
    class DiesOnce:
        def pid(self):
            import os

            return os.getpid()

        def die_once(self):
            import os

            if not ray.get_runtime_context().was_current_actor_reconstructed:
                os._exit(1)
            return os.getpid()

    actor = DiesOnce.remote()
    first = ray.get(actor.pid.remote())
    assert ray.get(actor.pid.remote()) == first
    second = ray.get(actor.die_once.remote(), timeout=60)  # on the channel; read by this thread, then retried
    assert second != first
    assert ray.get(actor.pid.remote(), timeout=60) == second  # a new channel, to the new process


def test_a_process_opens_at_most_max_open_channels_and_calls_beyond_go_the_usual_way(monkeypatch):
    from ray.core_worker import actor_channels

    monkeypatch.setattr(actor_channels, "MAX_OPEN_CHANNELS", _open_channels() + 1)
    first, second = Log.remote(), Log.remote()
    _warm(first)
    _warm(second)
    assert _open_channels() == actor_channels.MAX_OPEN_CHANNELS
    for n in range(5):
        assert ray.get(first.add.remote(n)) == n and ray.get(second.add.remote(n)) == n
    assert ray.get(second.all.remote()) == [-1, -2, -3, 0, 1, 2, 3, 4]


def test_channels_to_actors_that_are_gone_are_closed():
    channels = ray._private.worker.global_worker.core_worker.actor_submitter.channels
    gone, killed, kept = Log.remote(), Log.remote(), Log.remote()
    ids = {gone._actor_id, killed._actor_id, kept._actor_id}
    for actor in (gone, killed, kept):
        _warm(actor)

    def open_to() -> set[bytes]:
        return {ch.st.actor_id for ch in list(channels._open)} & ids

    assert open_to() == ids
    kept_id = kept._actor_id
    del gone  # out of scope: the actor ends
    ray.kill(killed)
    assert ray.get(kept.add.remote(1)) == 1  # a call on a channel: the io thread sweeps for a while after it
    assert wait_for(lambda: open_to() == {kept_id} or None, timeout=30, interval=0.1)
