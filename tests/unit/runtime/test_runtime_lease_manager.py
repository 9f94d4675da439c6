"""The raylet's lease manager without processes: grants, GPU ids, CPU lending, spillback, infeasible requests,
demand shapes, owners that go away, the lease states (granted, rescheduled, cancelled) and their records, the
strategies as the lease manager applies them, and the node manager's dispatcher that routes lease messages to it.

Real lease manager, resources, cluster view, runtime-env provider and dispatcher. The owner is a real framed
connection (a socket pair in this process): the raylet's notifications reach it, and its closing is noticed;
its messages go through the dispatcher as the connection would pass them. Only the worker pool's
`start_worker` is replaced: the real one starts processes, here a worker is a record that registers on the
next loop turn.
"""

from __future__ import annotations

import asyncio
import signal
import socket

from ray._common import framing
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher
from ray.raylet.node_manager import NodeManager
from ray.raylet.runtime_envs import RuntimeEnvProvider
from ray.raylet.scheduling.cluster_view import ClusterResourceView
from ray.raylet.scheduling.lease_manager import LeaseManager
from ray.raylet.scheduling.local_resources import LocalResourceManager
from ray.raylet.worker_pool import DEAD, Worker, WorkerPool

NODE = "aa" * 28
REMOTE = "bb" * 28
JOB = "01000000"


class _Process:
    """What the pool does to a worker's process: signal it, poll it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[int] = []

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)

    def poll(self) -> int | None:
        return -signal.SIGKILL if signal.SIGKILL in self.signals else None


class InProcessWorkerPool(WorkerPool):
    """The real pool (idle lists, kill, the death callback); its workers start without a process."""

    def __init__(self, on_worker_dead) -> None:
        super().__init__("unix:@unused", NODE, "127.0.0.1", "127.0.0.1:1", "/nonexistent", "/nonexistent",
                         on_worker_dead)

    async def start_worker(self, key: str, job_id: str, runtime_env: dict | None, ctx: dict | None = None) -> Worker:
        n = len(self.workers) + 1
        loop = asyncio.get_running_loop()
        worker = Worker(f"worker-{n}", key, job_id, _Process(1000 + n), registered=loop.create_future())
        self.workers[worker.worker_id] = worker
        # A real worker connects back and registers a moment later.
        loop.call_soon(self.on_registered, worker.worker_id, None, {"worker_id": worker.worker_id})
        return worker


class Raylet:
    """The scheduling half of one raylet, and one owner connected to it."""

    def __init__(self, resources: dict, visible_gpus: str | None = None) -> None:
        self.resources = LocalResourceManager(resources, visible_gpus)
        self.cluster = ClusterResourceView(NODE, self.resources)
        self.cluster.local_address = "127.0.0.1:7000"
        self.pool = InProcessWorkerPool(lambda worker: self.leases.on_worker_dead(worker))
        self.node_table: list = []  # what the GCS node table holds, for refresh_node_table
        self.table_reads = 0
        self._read_scheduled = False
        self.leases = LeaseManager(NODE, self.resources, self.cluster, self.pool, RuntimeEnvProvider(""),
                                   asyncio.Semaphore(4), refresh_node_table=self._read_node_table)
        self.dispatch = Dispatcher(msg.RAYLET, self.leases)
        self.notified: asyncio.Queue = asyncio.Queue()

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        _, self.conn = await loop.create_unix_connection(
            lambda: framing.Connection(self.dispatch, on_close=self.leases.on_owner_closed), sock=a)
        _, self.owner = await loop.create_unix_connection(
            lambda: framing.Connection(lambda conn, method, body: self.notified.put_nowait((method, body))), sock=b)

    def _read_node_table(self) -> None:
        """What the node manager does: one read of the GCS node table begun after the asks, then schedule."""
        if self._read_scheduled:
            return
        self._read_scheduled = True

        def read():
            self._read_scheduled = False
            self.table_reads += 1
            self.cluster.fill_addresses(self.node_table)
            self.leases.schedule()

        asyncio.get_running_loop().call_soon(read)

    def request(self, resources: dict, **extra) -> asyncio.Future:
        return self.dispatch(self.conn, msg.REQUEST_LEASE, {"resources": resources, "job_id": JOB, **extra})

    def send(self, message: str, body: dict) -> None:
        self.dispatch(self.conn, message, body)

    @property
    def available(self) -> dict:
        return self.resources.available.to_dict()


async def _granted(fut: asyncio.Future) -> msg.LeaseGrant:
    reply = await asyncio.wait_for(fut, 5)
    assert set(reply) == {"granted"}, reply
    return reply["granted"]


async def _still_waiting(fut: asyncio.Future) -> bool:
    await asyncio.sleep(0.02)
    return not fut.done()


def _run(resources: dict, scenario, visible_gpus: str | None = None) -> None:
    async def main():
        raylet = Raylet(resources, visible_gpus)
        await raylet.connect()
        try:
            await scenario(raylet)
        finally:
            raylet.owner.close()
            raylet.conn.close()

    asyncio.run(main())


def _remote_node(total: dict, available: dict) -> pb.NodeResources:
    return pb.NodeResources(node_id=bytes.fromhex(REMOTE), resources_total=total, resources_available=available)


REMOTE_INFO = pb.GcsNodeInfo(node_id=bytes.fromhex(REMOTE), node_manager_address="127.0.0.2", raylet_tcp_port=7001)


def test_a_lease_holds_its_resources_until_returned_and_its_worker_is_reused():
    async def run(raylet: Raylet):
        grant = await _granted(raylet.request({"CPU": 1}))
        assert grant["node_id"] == NODE and grant["worker_id"] == "worker-1" and grant["gpu_ids"] == []
        assert raylet.available == {"CPU": 1.0}
        raylet.send(msg.RETURN_LEASE, {"lease_id": grant["lease_id"]})
        assert raylet.available == {"CPU": 2.0}
        again = await _granted(raylet.request({"CPU": 1}))
        assert again["worker_id"] == "worker-1" and again["lease_id"] != grant["lease_id"]

    _run({"CPU": 2}, run)


def test_gpu_ids_are_given_whole_or_shared_by_fractions_and_come_back_on_return():
    async def run(raylet: Raylet):
        first = await _granted(raylet.request({"CPU": 1, "GPU": 1}))
        halves = [await _granted(raylet.request({"CPU": 1, "GPU": 0.5})) for _ in range(2)]
        assert first["gpu_ids"] == ["4"]  # the node's own CUDA_VISIBLE_DEVICES numbering
        assert [h["gpu_ids"] for h in halves] == [["6"], ["6"]]  # two halves share one GPU
        waiting = raylet.request({"CPU": 1, "GPU": 1})
        assert await _still_waiting(waiting)
        raylet.send(msg.RETURN_LEASE, {"lease_id": first["lease_id"]})
        assert (await _granted(waiting))["gpu_ids"] == ["4"]
        for h in halves:
            raylet.send(msg.RETURN_LEASE, {"lease_id": h["lease_id"]})
        assert (await _granted(raylet.request({"GPU": 1})))["gpu_ids"] == ["6"]

    _run({"CPU": 8, "GPU": 2}, run, visible_gpus="4,6")


def test_a_blocked_worker_lends_its_cpus_and_takes_them_back_even_if_that_overcommits():
    async def run(raylet: Raylet):
        blocked = await _granted(raylet.request({"CPU": 1}))
        waiting = raylet.request({"CPU": 1})
        assert await _still_waiting(waiting)
        raylet.send(msg.NOTIFY_BLOCKED, {"lease_id": blocked["lease_id"]})
        nested = await _granted(waiting)  # runs on the CPU the blocked task lent
        raylet.send(msg.NOTIFY_UNBLOCKED, {"lease_id": blocked["lease_id"]})
        assert raylet.available == {"CPU": -1.0}
        assert raylet.resources.reported_available() == {"CPU": 0.0}  # the GCS never sees a negative
        raylet.send(msg.RETURN_LEASE, {"lease_id": nested["lease_id"]})
        raylet.send(msg.RETURN_LEASE, {"lease_id": blocked["lease_id"]})
        assert raylet.available == {"CPU": 1.0}

    _run({"CPU": 1}, run)


def test_a_lease_returned_while_blocked_does_not_give_its_cpus_back_twice():
    async def run(raylet: Raylet):
        grant = await _granted(raylet.request({"CPU": 1}))
        raylet.send(msg.NOTIFY_BLOCKED, {"lease_id": grant["lease_id"]})
        raylet.send(msg.NOTIFY_BLOCKED, {"lease_id": grant["lease_id"]})  # a repeat lends nothing more
        assert raylet.available == {"CPU": 2.0}
        raylet.send(msg.RETURN_LEASE, {"lease_id": grant["lease_id"]})
        assert raylet.available == {"CPU": 2.0}

    _run({"CPU": 2}, run)


def test_a_busy_node_spills_back_to_a_node_with_room_once_it_knows_its_address():
    async def run(raylet: Raylet):
        await _granted(raylet.request({"CPU": 1}))
        assert raylet.cluster.update([_remote_node({"CPU": 2}, {"CPU": 1})])  # no address yet
        raylet.leases.on_cluster_update()
        waiting = raylet.request({"CPU": 1})
        assert await _still_waiting(waiting)  # nowhere to send it yet
        raylet.cluster.fill_addresses([REMOTE_INFO])
        raylet.leases.schedule()
        assert await asyncio.wait_for(waiting, 5) == {"spillback": "127.0.0.2:7001", "node_id": REMOTE}
        # The spilled request counts against the remote node until its next report: the next one queues here.
        assert await _still_waiting(raylet.request({"CPU": 1}))
        assert raylet.leases.num_pending == 1

    _run({"CPU": 1}, run)


def test_a_spilled_back_request_is_never_spilled_again_but_rejected_when_it_cannot_run_here():
    async def run(raylet: Raylet):
        raylet.cluster.update([_remote_node({"CPU": 4}, {"CPU": 4})])
        raylet.cluster.fill_addresses([REMOTE_INFO])
        assert await asyncio.wait_for(raylet.request({"CPU": 2}), 5) == {"spillback": "127.0.0.2:7001",
                                                                         "node_id": REMOTE}
        assert await asyncio.wait_for(raylet.request({"CPU": 2}, grant_or_reject=True), 5) == {"rejected": True}

    _run({"CPU": 1}, run)


def test_an_infeasible_request_warns_its_owner_once_and_runs_when_a_node_that_fits_joins():
    async def run(raylet: Raylet):
        waiting = raylet.request({"GPU": 1})
        assert await asyncio.wait_for(raylet.notified.get(), 5) == (msg.LEASE_INFEASIBLE, {"resources": {"GPU": 1.0}})
        assert raylet.leases.num_infeasible == 1
        raylet.leases.on_cluster_update()  # another report, still no GPU anywhere: no second warning
        assert await _still_waiting(waiting) and raylet.notified.empty()
        raylet.cluster.update([_remote_node({"CPU": 1, "GPU": 1}, {"CPU": 1, "GPU": 1})])
        raylet.cluster.fill_addresses([REMOTE_INFO])
        raylet.leases.on_cluster_update()
        assert await asyncio.wait_for(waiting, 5) == {"spillback": "127.0.0.2:7001", "node_id": REMOTE}
        assert raylet.leases.num_infeasible == 0

    _run({"CPU": 2}, run)


def test_demand_shapes_count_queued_and_infeasible_requests_per_shape():
    async def run(raylet: Raylet):
        await _granted(raylet.request({"CPU": 1}))
        for _ in range(2):
            raylet.request({"CPU": 1})
        raylet.request({"CPU": 1, "GPU": 1})
        demands = {tuple(sorted(d.shape.items())): (d.num_ready_requests_queued, d.num_infeasible_requests_queued)
                   for d in raylet.leases.demands()}
        assert demands == {(("CPU", 1.0),): (2, 0), (("CPU", 1.0), ("GPU", 1.0)): (0, 1)}

    _run({"CPU": 1}, run)


def test_an_actor_is_placed_with_its_placement_resources_and_its_worker_dies_with_the_lease():
    async def run(raylet: Raylet):
        grant = await _granted(raylet.request({"CPU": 1}, is_actor=True, running_resources={}))
        assert raylet.available == {"CPU": 1.0}  # placed with 1 CPU, holds none while it runs
        worker = raylet.pool.workers[grant["worker_id"]]
        raylet.send(msg.RETURN_LEASE, {"lease_id": grant["lease_id"]})
        assert worker.state == DEAD and worker.proc.signals == [signal.SIGKILL]

    _run({"CPU": 1}, run)


def test_an_owner_that_goes_away_loses_its_leases_and_queued_requests():
    async def run(raylet: Raylet):
        grant = await _granted(raylet.request({"CPU": 1}))
        raylet.request({"CPU": 1})
        raylet.request({"GPU": 1})
        raylet.owner.close()
        await raylet.conn.wait_closed()
        assert raylet.pool.workers[grant["worker_id"]].state == DEAD
        assert raylet.leases.num_pending == raylet.leases.num_infeasible == 0 and raylet.leases.demands() == []
        await asyncio.sleep(0.05)
        assert raylet.available == {"CPU": 1.0}
        # The freed CPU did not start a worker for the gone owner's queued request.
        assert list(raylet.pool.workers) == [grant["worker_id"]]

    _run({"CPU": 1}, run)


def test_an_owner_that_goes_away_while_its_worker_starts_leaves_nothing_behind():
    async def run(raylet: Raylet):
        starting = asyncio.Event()
        proceed = asyncio.Event()
        start_worker = raylet.pool.start_worker

        async def slow_start(*args, **kwargs):
            starting.set()
            await proceed.wait()
            return await start_worker(*args, **kwargs)

        raylet.pool.start_worker = slow_start
        raylet.request({"CPU": 1})
        await asyncio.wait_for(starting.wait(), 5)
        raylet.request({"CPU": 1})  # queued behind it
        raylet.owner.close()
        await raylet.conn.wait_closed()  # its close callback must not fail on the worker-less lease...
        assert raylet.leases.num_pending == 0  # ... and so drops the queued request
        proceed.set()
        for _ in range(100):
            if raylet.available == {"CPU": 1.0}:
                break
            await asyncio.sleep(0.01)
        assert raylet.available == {"CPU": 1.0}
        assert [w.state for w in raylet.pool.workers.values()] == [DEAD]

    _run({"CPU": 1}, run)


def test_the_raylet_handles_every_message_sent_to_it_with_leases_in_the_lease_manager(tmp_path):
    async def main():
        # Building a node manager starts nothing (no sockets, no workers, no GCS calls).
        node = NodeManager(NODE, "127.0.0.1", "127.0.0.1:1", str(tmp_path), {"CPU": 1}, {}, is_head=False)
        to_raylet = {name for name, m in msg.MESSAGES.items() if m.receiver == msg.RAYLET}
        assert node._dispatch.handled() == to_raylet
        lease_messages = {msg.REQUEST_LEASE, msg.CANCEL_LEASE, msg.RETURN_LEASE, msg.NOTIFY_BLOCKED,
                          msg.NOTIFY_UNBLOCKED}
        assert Dispatcher(msg.RAYLET, node.leases).handled() == lease_messages

    asyncio.run(main())


# ---------------------------------------------------------------------------- lease states and strategies
def _states(raylet: Raylet) -> list[tuple]:
    return [(r["state"], r.get("node_id"), r.get("cancel_type")) for r in raylet.leases.debug_state()["recent"]]


def _with_remote(raylet: Raylet, total: dict, available: dict | None = None) -> None:
    raylet.cluster.update([_remote_node(total, total if available is None else available)])
    raylet.cluster.fill_addresses([REMOTE_INFO])


def _affinity(node_id: str, **flags) -> dict:
    return {"strategy": {"type": "NODE_AFFINITY", "node_id": node_id, "soft": False, **flags}}


def test_granted_and_rescheduled_leases_are_counted_and_recorded_with_their_node():
    async def run(raylet: Raylet):
        _with_remote(raylet, {"CPU": 2})
        grant = await _granted(raylet.request({"CPU": 1}))
        assert await asyncio.wait_for(raylet.request({"CPU": 1}), 5) == {"spillback": "127.0.0.2:7001",
                                                                         "node_id": REMOTE}
        state = raylet.leases.debug_state()
        assert (state["num_granted"], state["num_rescheduled"], state["num_cancelled"]) == (1, 1, 0)
        assert _states(raylet) == [("granted", NODE, None), ("rescheduled", REMOTE, None)]
        assert state["recent"][0]["lease_id"] == grant["lease_id"] and state["recent"][0]["job_id"] == JOB

    _run({"CPU": 1}, run)


def test_an_owner_cancels_a_queued_request_and_its_shape_leaves_the_demand():
    async def run(raylet: Raylet):
        await _granted(raylet.request({"CPU": 1}))
        queued = raylet.request({"CPU": 1}, request_id=7)
        assert await _still_waiting(queued) and raylet.leases.demands()
        raylet.send(msg.CANCEL_LEASE, {"request_id": 8})  # another request id: nothing happens
        assert await _still_waiting(queued)
        raylet.send(msg.CANCEL_LEASE, {"request_id": 7})
        reply = await asyncio.wait_for(queued, 5)
        assert reply["cancelled"]["type"] == msg.CANCELLED_INTENDED
        assert raylet.leases.demands() == [] and raylet.leases.num_pending == 0
        assert _states(raylet)[-1] == ("cancelled", None, msg.CANCELLED_INTENDED)
        assert raylet.leases.debug_state()["cancelled_by_type"] == {msg.CANCELLED_INTENDED: 1}

    _run({"CPU": 1}, run)


def test_a_request_cancelled_while_its_worker_starts_gives_the_worker_back_idle():
    async def run(raylet: Raylet):
        starting, proceed = asyncio.Event(), asyncio.Event()
        start_worker = raylet.pool.start_worker

        async def slow_start(*args, **kwargs):
            starting.set()
            await proceed.wait()
            return await start_worker(*args, **kwargs)

        raylet.pool.start_worker = slow_start
        fut = raylet.request({"CPU": 1}, request_id=1)
        await asyncio.wait_for(starting.wait(), 5)
        raylet.send(msg.CANCEL_LEASE, {"request_id": 1})
        assert (await asyncio.wait_for(fut, 5))["cancelled"]["type"] == msg.CANCELLED_INTENDED
        proceed.set()
        for _ in range(100):
            if raylet.available == {"CPU": 1.0}:
                break
            await asyncio.sleep(0.01)
        assert raylet.available == {"CPU": 1.0}
        assert [w.state for w in raylet.pool.workers.values()] == ["IDLE"]

    _run({"CPU": 1}, run)


def test_hard_affinity_to_a_node_that_died_is_cancelled_at_once():
    async def run(raylet: Raylet):
        _with_remote(raylet, {"CPU": 1}, {"CPU": 0})
        waiting_there = raylet.request({"CPU": 1}, **_affinity(REMOTE))  # busy: it waits for that node
        assert await asyncio.wait_for(waiting_there, 5) == {"spillback": "127.0.0.2:7001", "node_id": REMOTE}
        raylet.cluster.update([])  # the next report no longer has it: dead
        reply = await asyncio.wait_for(raylet.request({"CPU": 1}, **_affinity(REMOTE)), 5)
        assert reply == {"cancelled": {"type": msg.CANCELLED_UNSCHEDULABLE, "message": (
            "The node specified via NodeAffinitySchedulingStrategy doesn't exist any more or is infeasible, and "
            "soft=False was specified.")}}
        assert raylet.table_reads == 0  # a node known dead needs no look at the node table
        assert _states(raylet)[-1] == ("cancelled", None, msg.CANCELLED_UNSCHEDULABLE)

    _run({"CPU": 1}, run)


def test_hard_affinity_to_an_unknown_node_reads_the_node_table_once_then_is_cancelled():
    async def run(raylet: Raylet):
        unknown = "cc" * 28
        first = raylet.request({"CPU": 1}, **_affinity(unknown))
        second = raylet.request({"CPU": 1}, **_affinity(unknown))
        for fut in (first, second):
            assert (await asyncio.wait_for(fut, 5))["cancelled"]["type"] == msg.CANCELLED_UNSCHEDULABLE
        assert raylet.table_reads == 1
        # Too small a node fails the same way, without a look at the table.
        too_big = await asyncio.wait_for(raylet.request({"CPU": 4}, **_affinity(NODE)), 5)
        assert too_big["cancelled"]["type"] == msg.CANCELLED_UNSCHEDULABLE and raylet.table_reads == 1

    _run({"CPU": 1}, run)


def test_hard_affinity_to_a_node_that_just_joined_waits_for_its_first_report():
    async def run(raylet: Raylet):
        raylet.node_table = [pb.GcsNodeInfo(node_id=bytes.fromhex(REMOTE), state=pb.GcsNodeInfo.ALIVE,
                                            node_manager_address="127.0.0.2", raylet_tcp_port=7001)]
        waiting = raylet.request({"CPU": 1}, **_affinity(REMOTE))
        await asyncio.sleep(0.05)
        assert not waiting.done() and raylet.table_reads == 1  # the GCS says it is alive: wait for its report
        _with_remote(raylet, {"CPU": 1})
        raylet.leases.on_cluster_update()
        assert await asyncio.wait_for(waiting, 5) == {"spillback": "127.0.0.2:7001", "node_id": REMOTE}

    _run({"CPU": 1}, run)


def test_hard_affinity_with_fail_on_unavailable_is_cancelled_while_its_node_is_busy():
    async def run(raylet: Raylet):
        await _granted(raylet.request({"CPU": 1}))
        reply = await asyncio.wait_for(raylet.request({"CPU": 1}, **_affinity(NODE, fail_on_unavailable=True)), 5)
        assert reply["cancelled"]["type"] == msg.CANCELLED_UNSCHEDULABLE
        assert await _still_waiting(raylet.request({"CPU": 1}, **_affinity(NODE)))  # without it: waits

    _run({"CPU": 1}, run)


def test_a_runtime_env_that_cannot_be_created_cancels_the_lease_with_the_reason():
    async def run(raylet: Raylet):
        reply = await asyncio.wait_for(raylet.request({"CPU": 1}, runtime_env={"pip": ["nothing-here"]}), 5)
        assert reply["cancelled"]["type"] == msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED
        assert "needs the node agent" in reply["cancelled"]["message"]
        assert raylet.available == {"CPU": 1.0}
        assert _states(raylet) == [("cancelled", None, msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED)]

    _run({"CPU": 1}, run)


def test_spread_leases_take_turns_between_the_nodes():
    async def run(raylet: Raylet):
        _with_remote(raylet, {"CPU": 4})
        spread = {"strategy": {"type": "SPREAD"}}
        replies = [await asyncio.wait_for(raylet.request({"CPU": 1}, **spread), 5) for _ in range(4)]
        assert [("granted" in r, r.get("node_id")) for r in replies] == [
            (True, None), (False, REMOTE), (True, None), (False, REMOTE)]
        # The default strategy keeps the same work on the local node until it is half busy.
        for r in replies:
            if "granted" in r:
                raylet.send(msg.RETURN_LEASE, {"lease_id": r["granted"]["lease_id"]})
        _with_remote(raylet, {"CPU": 4})
        default = [await asyncio.wait_for(raylet.request({"CPU": 1}), 5) for _ in range(3)]
        assert [("granted" in r) for r in default] == [True, True, False]

    _run({"CPU": 4}, run)


def test_a_spilled_back_request_is_rejected_when_another_node_is_better_now():
    async def run(raylet: Raylet):
        await _granted(raylet.request({"CPU": 1}))
        _with_remote(raylet, {"CPU": 1})
        assert await asyncio.wait_for(raylet.request({"CPU": 1}, grant_or_reject=True), 5) == {"rejected": True}
        assert _states(raylet)[-1] == ("rejected", None, None)
        # With nothing better anywhere it queues here instead.
        _with_remote(raylet, {"CPU": 1}, {"CPU": 0})
        assert await _still_waiting(raylet.request({"CPU": 1}, grant_or_reject=True))

    _run({"CPU": 1}, run)


def test_a_request_sent_for_its_data_runs_on_the_data_node_when_it_fits_there():
    async def run(raylet: Raylet):
        for _ in range(3):
            await _granted(raylet.request({"CPU": 1}))  # 75 % busy: hybrid would send more work away
        _with_remote(raylet, {"CPU": 4})
        assert "spillback" in await asyncio.wait_for(raylet.request({"CPU": 1}), 5)
        assert "granted" in await asyncio.wait_for(raylet.request({"CPU": 1}, locality=True), 5)
        # No room left here: it is scheduled from here like any other request.
        assert "spillback" in await asyncio.wait_for(raylet.request({"CPU": 1}, locality=True), 5)

    _run({"CPU": 4}, run)


def test_an_owner_that_goes_away_has_its_queued_requests_recorded_as_cancelled():
    async def run(raylet: Raylet):
        await _granted(raylet.request({"CPU": 1}))
        raylet.request({"CPU": 1})
        raylet.owner.close()
        await raylet.conn.wait_closed()
        assert _states(raylet)[-1] == ("cancelled", None, msg.CANCELLED_INTENDED)
        assert raylet.leases.debug_state()["recent"][-1]["message"] == "The lease request's owner exited."

    _run({"CPU": 1}, run)


def test_a_node_shutting_down_grants_nothing_to_the_requests_still_waiting():
    async def run(raylet: Raylet):
        grant = await _granted(raylet.request({"CPU": 1}))
        waiting = raylet.request({"CPU": 1})
        raylet.leases.stop()
        raylet.send(msg.RETURN_LEASE, {"lease_id": grant["lease_id"]})  # its worker killed: the CPU is free
        assert await _still_waiting(waiting)
        assert len(raylet.pool.workers) == 1  # no worker started for it

    _run({"CPU": 1}, run)


# ---------------------------------------------------------------------------- draining
def _drain(node: NodeManager, reason: int) -> msg.DrainReply:
    return node._dispatch(None, msg.DRAIN_RAYLET, {"reason": reason, "reason_message": "test", "deadline_ms": 0})


def test_an_idle_termination_drain_is_refused_by_a_busy_node_and_accepted_once_it_is_idle(tmp_path):
    from ray.protocol import autoscaler_pb2 as apb

    async def main():
        node = NodeManager(NODE, "127.0.0.1", "127.0.0.1:1", str(tmp_path), {"CPU": 2}, {}, is_head=False)
        raylet = Raylet({"CPU": 2})  # its lease manager stands in for the node manager's
        raylet.pool = node.pool = raylet.pool
        node.leases = raylet.leases
        await raylet.connect()
        grant = await _granted(raylet.request({"CPU": 1}))
        assert node.activity() == ["Resource: CPU currently in use.", "Busy workers on node."]
        assert node._idle_ms(node.activity()) == 0
        refused = _drain(node, apb.DRAIN_NODE_REASON_IDLE_TERMINATION)
        assert refused == {"accepted": False, "rejection_reason": "The node is not idle: Resource: CPU currently in "
                                                                  "use. Busy workers on node."}
        assert not raylet.leases.draining
        raylet.send(msg.RETURN_LEASE, {"lease_id": grant["lease_id"]})
        assert node.activity() == [] and node._idle_ms([]) >= 1
        assert _drain(node, apb.DRAIN_NODE_REASON_IDLE_TERMINATION) == {"accepted": True, "rejection_reason": ""}
        assert raylet.leases.draining and not raylet.cluster.nodes()[0].alive
        raylet.owner.close()
        raylet.conn.close()

    asyncio.run(main())


def test_a_draining_node_grants_nothing_new_and_sends_requests_to_other_nodes():
    async def run(raylet: Raylet):
        running = await _granted(raylet.request({"CPU": 1}))
        raylet.leases.set_draining()  # a preemption drain (ray stop): accepted while busy
        # Nothing else can hold it: it waits as demand (the autoscaler sees it), even though the CPU is free.
        waiting = raylet.request({"CPU": 1})
        assert await _still_waiting(waiting)
        assert [(d.num_ready_requests_queued, d.num_infeasible_requests_queued) for d in raylet.leases.demands()] == [
            (0, 1)]
        assert await asyncio.wait_for(raylet.request({"CPU": 1}, grant_or_reject=True), 5) == {"rejected": True}
        _with_remote(raylet, {"CPU": 2})  # a node that can take it joins: the waiting request goes there
        raylet.leases.on_cluster_update()
        assert await asyncio.wait_for(waiting, 5) == {"spillback": "127.0.0.2:7001", "node_id": REMOTE}
        # What was running here goes on until it is returned.
        assert raylet.leases.activity() == ["Resource: CPU currently in use.", "Busy workers on node."]
        raylet.send(msg.RETURN_LEASE, {"lease_id": running["lease_id"]})
        assert raylet.leases.activity() == []

    _run({"CPU": 2}, run)


def test_the_view_counts_draining_nodes_as_not_schedulable():
    async def run(raylet: Raylet):
        raylet.cluster.update([pb.NodeResources(node_id=bytes.fromhex(REMOTE), resources_total={"CPU": 4},
                                                resources_available={"CPU": 4}, is_draining=True)])
        raylet.cluster.fill_addresses([REMOTE_INFO])
        raylet.leases.on_cluster_update()
        await _granted(raylet.request({"CPU": 1}))
        assert await _still_waiting(raylet.request({"CPU": 1}))  # not spilled to the draining node

    _run({"CPU": 1}, run)
