"""Scheduling on a real three-node cluster (`ray.cluster_utils.Cluster`), as a user sees it: node ids as Ray gives
them, node affinity (hard, soft, to unknown and dying nodes), SPREAD for tasks and actors, data locality,
accelerator types, the lease states in the raylets' debug state, the demand snapshot and `ray status`, and bad
input. One cluster for the module: head (1 CPU), node B (2 CPUs, an A100 accelerator type), node C (2 CPUs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from polling import wait_for
from ray._common import process_registry
from ray._common.cluster_status import status_text
from ray._common.gcs_client import GcsClient
from ray.cluster_utils import Cluster
from ray.exceptions import ActorUnschedulableError, RuntimeEnvSetupError, TaskUnschedulableError
from ray.protocol import messages as msg
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

UNSCHEDULABLE = ("The node specified via NodeAffinitySchedulingStrategy doesn't exist any more or is infeasible, "
                 "and soft=False was specified.")


class Nodes:
    def __init__(self, cluster: Cluster, b, c):
        self.cluster = cluster
        self.head, self.b, self.c = cluster.head_node.node_id, b.node_id, c.node_id
        self.b_node, self.c_node = b, c

    @property
    def all(self) -> set[str]:
        return {self.head, self.b, self.c}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    temp_dir = str(tmp_path_factory.mktemp("ray"))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "_temp_dir": temp_dir,
        "_system_config": {"health_check_period_ms": 200, "health_check_failure_threshold": 25,
                           "debug_dump_period_milliseconds": 200},
    })
    try:
        b = cluster.add_node(num_cpus=2, resources={"accelerator_type:A100": 1})
        c = cluster.add_node(num_cpus=2, resources={"c": 1})
        cluster.wait_for_nodes()
        cluster.connect()
        yield Nodes(cluster, b, c)
    finally:
        cluster.shutdown()
        process_registry.stop_all(temp_dir, force=True, grace_period_s=2)


@ray.remote
def where() -> str:
    return ray.get_runtime_context().get_node_id()


@ray.remote
def together(barrier_dir: str, me: int, count: int) -> str:
    """Returns its node once `count` of these tasks are running at the same time."""
    Path(barrier_dir, f"started-{me}").write_text("")
    deadline = time.monotonic() + 60
    while len(list(Path(barrier_dir).glob("started-*"))) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return ray.get_runtime_context().get_node_id()


@ray.remote
def where_with(data) -> str:
    return ray.get_runtime_context().get_node_id()


@ray.remote
def hold(flag: str, seconds: float) -> str:
    Path(flag).write_text("started")
    time.sleep(seconds)
    return ray.get_runtime_context().get_node_id()


@ray.remote
class Where:
    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


def _affinity(node_id, soft: bool = False, **flags) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id, soft=soft, **flags)


def _wait_started(flag: Path, timeout: float = 60) -> None:
    wait_for(flag.exists, timeout, f"{flag.name} to start")


def _wait_idle(node_id: str) -> None:
    """Until `node_id`'s raylet sees every CPU of the cluster free (leases of finished tasks are returned a moment
    after their last task, and the other nodes' reports take a moment to arrive)."""
    def idle() -> bool:
        view = _raylet_stats(node_id)["cluster_view"]
        return len(view) == 3 and all(n["available"].get("CPU") == n["total"]["CPU"] for n in view.values())

    wait_for(idle, 30, "idle CPUs")


def _raylet_stats(node_id: str) -> dict:
    """The raylet's GET_NODE_STATS reply (its debug state), asked over its TCP port like any peer does."""
    info = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    cw = ray._private.worker.global_worker.core_worker

    async def call():
        conn = await cw.pool.get(f"{info['NodeManagerAddress']}:{info['NodeManagerPort']}")
        return await conn.request(msg.GET_NODE_STATS, None)

    return cw.run_sync(call(), timeout=10)


def _lease_records(node_id: str) -> list[tuple]:
    return [(r["state"], r.get("node_id"), r.get("cancel_type")) for r in _raylet_stats(node_id)["leases"]["recent"]]


def _demand_lines(gcs_address: str) -> list[str]:
    client = GcsClient(gcs_address)
    try:
        lines = status_text(client).splitlines()
    finally:
        client.close()
    return lines[lines.index("Pending Demands:") + 1:]


def test_node_ids_are_hex_strings_as_ray_gives_them(nodes):
    assert all(isinstance(n, str) and len(n) == 56 and int(n, 16) >= 0 for n in nodes.all)
    assert {n["NodeID"] for n in ray.nodes() if n["Alive"]} == nodes.all
    assert ray.get_runtime_context().get_node_id() == nodes.head


def test_hard_node_affinity_runs_on_the_node_given_as_a_hex_string_or_a_node_id(nodes):
    assert ray.get(where.options(scheduling_strategy=_affinity(nodes.b)).remote()) == nodes.b
    assert ray.get(where.options(scheduling_strategy=_affinity(ray.NodeID.from_hex(nodes.c))).remote()) == nodes.c
    actor = Where.options(scheduling_strategy=_affinity(nodes.c)).remote()
    assert ray.get(actor.node.remote()) == nodes.c
    # Soft affinity to a live node also runs there.
    assert ray.get(where.options(scheduling_strategy=_affinity(nodes.b, soft=True)).remote()) == nodes.b


def test_hard_affinity_to_an_unknown_or_too_small_node_fails_at_once_and_soft_runs_elsewhere(nodes):
    unknown = ray.NodeID.from_random().hex()
    start = time.monotonic()
    with pytest.raises(TaskUnschedulableError) as failed:
        ray.get(where.options(scheduling_strategy=_affinity(unknown)).remote(), timeout=30)
    assert time.monotonic() - start < 10
    assert str(failed.value).startswith(f"The task is not schedulable: {UNSCHEDULABLE}")
    actor = Where.options(scheduling_strategy=_affinity(unknown)).remote()
    with pytest.raises(ActorUnschedulableError) as actor_failed:
        ray.get(actor.node.remote(), timeout=30)
    assert str(actor_failed.value) == f"The actor is not schedulable: {UNSCHEDULABLE}"
    with pytest.raises(TaskUnschedulableError):  # alive but too small for it
        ray.get(where.options(num_cpus=8, scheduling_strategy=_affinity(nodes.b)).remote(), timeout=30)
    assert ray.get(where.options(scheduling_strategy=_affinity(unknown, soft=True)).remote(), timeout=30) in nodes.all
    # No request of these is left waiting anywhere.
    assert wait_for(lambda: _demand_lines(nodes.cluster.address) == [" (no resource demands)"], 10,
                    "no demand")


def test_tasks_waiting_for_a_node_that_dies_fail_as_unschedulable(nodes, tmp_path):
    doomed = nodes.cluster.add_node(num_cpus=1)
    nodes.cluster.wait_for_nodes()
    strategy = _affinity(doomed.node_id)
    flag = tmp_path / "running"
    running = hold.options(scheduling_strategy=strategy, max_retries=0).remote(str(flag), 120)
    _wait_started(flag)
    queued = where.options(scheduling_strategy=strategy).remote()
    assert ray.wait([queued], timeout=0.5)[0] == []  # waits for its busy node
    nodes.cluster.remove_node(doomed)
    with pytest.raises(TaskUnschedulableError, match=re.escape(UNSCHEDULABLE)):
        ray.get(queued, timeout=60)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(running, timeout=60)
    # The driver's raylet cancelled its lease request: the requested node died.
    assert ("cancelled", None, msg.CANCELLED_UNSCHEDULABLE) in _lease_records(nodes.head)


def test_spread_puts_tasks_and_actors_on_every_node(nodes, tmp_path):
    # Three small tasks that all run at once (each waits for the others): the default strategy would keep two
    # of them on the idle head (a quarter CPU each stays under the spread threshold); SPREAD takes turns.
    _wait_idle(nodes.head)
    small = together.options(num_cpus=0.25, scheduling_strategy="SPREAD")
    assert set(ray.get([small.remote(str(tmp_path), i, 3) for i in range(3)], timeout=60)) == nodes.all
    _wait_idle(nodes.head)
    actors = [Where.options(scheduling_strategy="SPREAD").remote() for _ in range(3)]
    assert {ray.get(a.node.remote()) for a in actors} == nodes.all
    # The driver's raylet spilled the leases it did not keep to the other nodes.
    records = _lease_records(nodes.head)
    assert ("rescheduled", nodes.b, None) in records and ("rescheduled", nodes.c, None) in records


def test_a_task_runs_where_its_large_argument_lives(nodes, tmp_path):
    @ray.remote(resources={"accelerator_type:A100": 0.001})
    def make():
        return np.ones(1_000_000)  # 8 MB: lives in node B's store

    data = make.remote()
    ray.wait([data], timeout=60)
    # The driver's node (1 CPU, idle) would win on load alone; the data pulls the task to node B.
    assert ray.get(where_with.remote(data), timeout=60) == nodes.b
    # Node B busy: the task is scheduled from there to a node with room.
    flags = [tmp_path / f"busy{i}" for i in range(2)]
    busy = [hold.options(scheduling_strategy=_affinity(nodes.b)).remote(str(f), 10) for f in flags]
    for f in flags:
        _wait_started(f)
    assert ray.get(where_with.remote(data), timeout=60) in {nodes.head, nodes.c}
    ray.cancel(busy[0], force=True)
    ray.cancel(busy[1], force=True)


def test_accelerator_type_runs_on_a_node_that_has_it_and_otherwise_waits_as_demand(nodes):
    assert ray.get(where.options(accelerator_type="A100").remote(), timeout=60) == nodes.b
    assert ray.get(Where.options(accelerator_type="A100").remote().node.remote(), timeout=60) == nodes.b
    missing = where.options(accelerator_type="T4").remote()
    assert ray.wait([missing], timeout=1)[0] == []
    line = " {'CPU': 1.0, 'accelerator_type:T4': 0.001}: 1+ pending tasks/actors"
    wait_for(lambda: line in _demand_lines(nodes.cluster.address), 10, "the T4 demand")
    # The owner cancels it: its lease request is withdrawn and the demand goes.
    ray.cancel(missing)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(missing, timeout=30)
    wait_for(lambda: line not in _demand_lines(nodes.cluster.address), 10, "the T4 demand to go")
    assert ("cancelled", None, msg.CANCELLED_INTENDED) in _lease_records(nodes.head)


def test_lease_states_are_observable_in_the_raylets_debug_state(nodes):
    before = _raylet_stats(nodes.head)["leases"]
    assert ray.get(where.options(scheduling_strategy=_affinity(nodes.head)).remote()) == nodes.head  # granted
    assert ray.get(where.options(scheduling_strategy=_affinity(nodes.c)).remote()) == nodes.c  # rescheduled
    with pytest.raises(RuntimeEnvSetupError):
        ray.get(where.options(runtime_env={"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"},
                              scheduling_strategy=_affinity(nodes.head)).remote(), timeout=120)
    after = _raylet_stats(nodes.head)["leases"]
    assert after["num_granted"] > before["num_granted"]
    assert after["num_rescheduled"] > before["num_rescheduled"]
    assert after["cancelled_by_type"].get(msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED, 0) \
        > before["cancelled_by_type"].get(msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED, 0)
    newest = after["recent"][-3:]
    assert [(r["state"], r.get("node_id"), r.get("cancel_type")) for r in newest] == [
        ("granted", nodes.head, None), ("rescheduled", nodes.c, None),
        ("cancelled", None, msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED)]
    assert "_ray_pkg_0123456789abcdef" in newest[-1]["message"]
    # ... and in each node's debug_state.txt, as Ray's raylet writes it.
    head_file = Path(nodes.cluster.head_node.session_dir, "logs", "debug_state.txt")
    c_file = Path(nodes.c_node.session_dir, "logs", "debug_state.txt")

    def written() -> bool:
        head = head_file.read_text() if head_file.exists() else ""
        c = c_file.read_text() if c_file.exists() else ""
        return (f"rescheduled node={nodes.c}" in head and msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED in head
                and f"granted node={nodes.c}" in c)

    wait_for(written, 10, "debug_state.txt")
    text = head_file.read_text()
    assert f"Node ID: {nodes.head}" in text and "Num leases granted: " in text


def test_a_finished_burst_withdraws_its_other_lease_requests(nodes):
    """Ray's CancelWorkerLeaseIfNeeded: once nothing of a class is queued, its owner withdraws the lease requests
    still waiting, so the raylet does not go on granting them (each held idle for a while) ahead of other work,
    such as a new actor (the GCS-restart bench row waited ~1 s for those)."""
    burst = where.options(scheduling_strategy=_affinity(nodes.head))  # the head's 1 CPU: one lease at a time
    assert set(ray.get([burst.remote() for _ in range(30)], timeout=120)) == {nodes.head}
    leases = wait_for(lambda: (s := _raylet_stats(nodes.head)["leases"])["num_pending"] == 0 and s, 2,
                      "the burst's other lease requests to be withdrawn")
    assert leases["cancelled_by_type"].get(msg.CANCELLED_INTENDED, 0) > 0
    time.sleep(1)
    assert _raylet_stats(nodes.head)["leases"]["num_granted"] == leases["num_granted"], "leftover requests granted"


def test_the_demand_snapshot_counts_queued_and_infeasible_shapes_and_forgets_a_driver_that_exits(nodes):
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        import ray
        ray.init(address="{nodes.cluster.address}")

        @ray.remote(num_cpus=8)
        def too_big():
            return 1

        @ray.remote(num_cpus=8)
        class TooBig:
            pass

        @ray.remote(resources={{"c": 1}})
        def one_at_a_time():
            time.sleep(120)

        refs = [too_big.remote() for _ in range(3)] + [one_at_a_time.remote() for _ in range(3)]
        actors = [TooBig.remote() for _ in range(2)]
        print("SUBMITTED", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "RAY_ADDRESS": ""})
    try:
        assert driver.stdout.readline().strip() == "SUBMITTED"
        expected = [" {'CPU': 8.0}: 5+ pending tasks/actors", " {'CPU': 1.0, 'c': 1.0}: 2+ pending tasks/actors"]
        wait_for(lambda: sorted(_demand_lines(nodes.cluster.address)) == sorted(expected), 20, "the demand")
        # Per node: totals, availability and the shapes queued there.
        client = GcsClient(nodes.cluster.address)
        try:
            per_node = {n.node_id.hex(): n for n in client.get_all_resource_usage()}
        finally:
            client.close()
        assert set(per_node) == nodes.all
        assert per_node[nodes.c].resources_total["CPU"] == 2.0 and per_node[nodes.c].resources_available["c"] == 0
        infeasible = sum(d.num_infeasible_requests_queued for n in per_node.values() for d in n.demands)
        assert infeasible == 5
        # `ray status` prints the same, in Ray's layout.
        status = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "status", "--address",
                                 nodes.cluster.address], capture_output=True, text=True, timeout=60)
        assert all(line in status.stdout.splitlines() for line in expected), status.stdout
    finally:
        driver.kill()
        driver.wait()
    wait_for(lambda: _demand_lines(nodes.cluster.address) == [" (no resource demands)"], 20,
             "the exited driver's demand to go")


def test_bad_scheduling_input_is_refused_with_rays_errors_and_the_cluster_keeps_working(nodes):
    valid = '["DEFAULT" | "SPREAD" | PlacementGroupSchedulingStrategy | NodeAffinitySchedulingStrategy]'
    with pytest.raises(ValueError, match=re.escape(f"Invalid scheduling_strategy value FOO. Valid values are {valid}")):
        where.options(scheduling_strategy="FOO").remote()
    with pytest.raises(ValueError, match=re.escape("Invalid scheduling_strategy value spread.")):
        Where.options(scheduling_strategy="spread").remote()
    with pytest.raises(TypeError, match="The type of keyword 'scheduling_strategy' must be .*, but received type "
                                        "<class 'int'>"):
        where.options(scheduling_strategy=42)
    for bad in ("xyz", "ff" * 28, nodes.head[:-2]):
        with pytest.raises(ValueError, match=re.escape(f"Invalid node_id '{bad}'. Node ID must be a valid hex string. "
                                                       "To get a list of all nodes and their IDs in your cluster, "
                                                       "use ray.nodes().")):
            NodeAffinitySchedulingStrategy(bad, soft=False)
    with pytest.raises(ValueError, match="_spill_on_unavailable cannot be set when soft is False"):
        NodeAffinitySchedulingStrategy(nodes.head, soft=False, _spill_on_unavailable=True)
    with pytest.raises(ValueError, match="_fail_on_unavailable cannot be set when soft is True"):
        NodeAffinitySchedulingStrategy(nodes.head, soft=True, _fail_on_unavailable=True)
    for make_bad in (lambda: ray.remote(num_cpus=-1)(lambda: 1), lambda: where.options(num_cpus=-1),
                     lambda: Where.options(num_cpus=-1)):
        with pytest.raises(ValueError, match=re.escape("The quantity of resource num_cpus cannot be negative")):
            make_bad()
    with pytest.raises(ValueError, match=re.escape("The quantity of resource num_gpus cannot be negative")):
        where.options(num_gpus=-1)
    with pytest.raises(ValueError, match=re.escape("The quantity of resource memory cannot be negative")):
        where.options(memory=-5)
    with pytest.raises(ValueError, match=re.escape("The quantity of resource custom cannot be negative")):
        where.options(resources={"custom": -1})
    with pytest.raises(ValueError, match=re.escape("The precision of the fractional quantity of resource num_cpus "
                                                   "cannot go beyond 0.0001")):
        where.options(num_cpus=0.00001)
    with pytest.raises(TypeError, match=re.escape("The type of keyword 'num_cpus' must be (<class 'float'>, "
                                                  "<class 'int'>, <class 'NoneType'>), but received type "
                                                  "<class 'str'>")):
        where.options(num_cpus="1")
    with pytest.raises(ValueError, match=re.escape("The keyword 'max_retries' only accepts None, 0, -1 or a positive "
                                                   "integer, where -1 represents infinity.")):
        where.options(max_retries=-2)
    # The cluster keeps working.
    assert ray.get([where.remote() for _ in range(3)], timeout=60)
    assert ray.get(where.options(scheduling_strategy="SPREAD").remote(), timeout=60) in nodes.all
