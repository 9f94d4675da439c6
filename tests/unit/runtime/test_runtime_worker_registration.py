"""A forked worker's registration and the raylet's record of its start, in either order.

The fork server answers the raylet with the child's pid only after `fork()`; on a loaded machine the child can
run, connect and send REGISTER_CLIENT before the raylet has read that answer and recorded the worker. That
registration used to be dropped: the worker ran, idle and never leased, and its lease failed after
`worker_register_timeout_seconds` ("Could not start a worker: it did not register with its raylet within 60 s"),
which stopped the 10,000-actor scale row after 1,300-8,000 actors.

Real node manager (built, not started: no sockets, workers or GCS calls), its dispatcher and worker pool; the
worker is a real framed connection (a socket pair in this process) sending the registration a worker sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket

from ray._common import config as config_module
from ray._common import framing
from ray._common.config import config
from ray.protocol import messages as msg
from ray.raylet.node_manager import NodeManager
from ray.raylet.worker_pool import DEAD, LEASED, Worker

NODE = "aa" * 28
JOB = "01000000"
WORKER_ID = "cc" * 28


class _Process:
    pid = os.getpid()

    def poll(self) -> int | None:
        return None

    def send_signal(self, sig: int) -> None:
        pass


async def _connect_worker(node: NodeManager) -> tuple[framing.Connection, framing.Connection]:
    """(the raylet's end, the worker's end) of one connection."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    _, raylet_end = await loop.create_unix_connection(
        lambda: framing.Connection(node._dispatch, on_close=node._on_conn_closed), sock=a)
    _, worker_end = await loop.create_unix_connection(lambda: framing.Connection(None), sock=b)
    return raylet_end, worker_end


def _register(worker_end: framing.Connection) -> asyncio.Future:
    return worker_end.request(msg.REGISTER_CLIENT, {
        "kind": "worker", "worker_id": WORKER_ID, "job_id": JOB, "pid": os.getpid(), "runtime_env": {},
        "address": {"worker_id": WORKER_ID, "node_id": NODE, "unix": "@unused", "tcp": "127.0.0.1:1"},
        "num_prestart": 0})


def _started_worker(loop: asyncio.AbstractEventLoop) -> Worker:
    """What `start_worker` records once the fork server has named the child's pid."""
    worker = Worker(WORKER_ID, f"{JOB}|{{}}", JOB, _Process(), registered=loop.create_future())
    worker.state = LEASED
    return worker


def test_a_worker_that_registers_before_its_start_is_recorded_is_registered_once_it_is(tmp_path):
    async def main():
        node = NodeManager(NODE, "127.0.0.1", "127.0.0.1:1", str(tmp_path), {"CPU": 1}, {}, is_head=False)
        raylet_end, worker_end = await _connect_worker(node)
        try:
            reply = _register(worker_end)
            await asyncio.sleep(0.05)  # the registration has arrived; the fork server's answer has not
            worker = _started_worker(asyncio.get_running_loop())
            node.pool.record(worker)
            # The lease manager now waits for this worker's registration: it must come, not time out.
            registered = await asyncio.wait_for(asyncio.shield(worker.registered), 5)
            assert registered is worker and worker.conn is raylet_end
            assert worker.address["worker_id"] == WORKER_ID
            assert (await asyncio.wait_for(reply, 5))["node_id"] == NODE
            assert not node.pool._unrecorded
        finally:
            worker_end.close()
            raylet_end.close()

    asyncio.run(main())


def test_a_worker_that_registered_early_and_went_away_is_dead_once_recorded(tmp_path):
    async def main():
        node = NodeManager(NODE, "127.0.0.1", "127.0.0.1:1", str(tmp_path), {"CPU": 1}, {}, is_head=False)
        raylet_end, worker_end = await _connect_worker(node)
        try:
            _register(worker_end)
            await asyncio.sleep(0.05)
            worker_end.close()
            await raylet_end.wait_closed()
            worker = _started_worker(asyncio.get_running_loop())
            node.pool.record(worker)
            for _ in range(100):
                if worker.state == DEAD:
                    break
                await asyncio.sleep(0.01)
            assert worker.state == DEAD  # not left waiting for a registration that came and went
        finally:
            worker_end.close()
            raylet_end.close()

    asyncio.run(main())


def test_a_worker_the_raylet_never_started_gets_its_answer_after_the_registration_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "_config", dataclasses.replace(config(), worker_register_timeout_seconds=1))

    async def main():
        node = NodeManager(NODE, "127.0.0.1", "127.0.0.1:1", str(tmp_path), {"CPU": 1}, {}, is_head=False)
        raylet_end, worker_end = await _connect_worker(node)
        try:
            reply = await asyncio.wait_for(_register(worker_end), 5)
            assert reply["node_id"] == NODE
            assert WORKER_ID not in node.pool.workers and not node.pool._unrecorded
        finally:
            worker_end.close()
            raylet_end.close()

    asyncio.run(main())
