"""Placement groups on a cluster whose nodes come and go: a reservation that fails on one node leaves nothing
on the others (two-phase commit), a group waits until a node joins, an infeasible group is reported (the
driver's warning, `placement_group_table()`, `ray status`), and the bundles of a dead node are rescheduled
(RESCHEDULING, then CREATED) with the actor in them restarted there.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import ray
from polling import wait_for
from ray._common import process_registry
from ray.cluster_utils import Cluster
from ray.util import placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy as InGroup


def _hex(node) -> str:
    return node.node_id if isinstance(node.node_id, str) else node.node_id.hex()


def _nodes_of(pg) -> list[str]:
    table = placement_group_table(pg)
    return [table["bundles_to_node_id"][i] for i in range(len(table["bundles"]))]


@ray.remote(num_cpus=1)
class Where:
    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


@pytest.fixture
def changing(tmp_path):
    temp_dir = str(tmp_path / "ray")
    # The GCS notices a dead node after 0.2 s x 10 = 2 s.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "_temp_dir": temp_dir,
        "_system_config": {"health_check_period_ms": 200, "health_check_failure_threshold": 10}})
    try:
        yield cluster
    finally:
        cluster.shutdown()
        process_registry.stop_all(temp_dir, force=True, grace_period_s=2)


def _alive(node) -> bool:
    return any(n["NodeID"] == _hex(node) and n["Alive"] for n in ray.nodes())


def _status(cluster) -> str:
    return subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "status", "--address", cluster.address],
                          capture_output=True, text=True, timeout=60).stdout


def test_reservation_is_atomic_groups_wait_for_nodes_and_dead_nodes_bundles_are_rescheduled(changing, capfd):
    cluster = changing
    head = cluster.head_node
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    cluster.connect()
    # The doomed node's raylet dies; the GCS still counts it for 2 s. A STRICT_SPREAD group needs both nodes:
    # the head prepares its bundle, the doomed node cannot, so the head must give its bundle back.
    cluster.remove_node(doomed, allow_graceful=False)
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD", name="pair")
    assert not pg.wait(1)
    assert placement_group_table(pg)["state"] == "PENDING"
    wait_for(lambda: not _alive(doomed), what="the GCS to declare the doomed node dead", interval=0.05)
    time.sleep(0.3)  # a few resource reports: the head reports what it really has
    assert ray.available_resources().get("CPU") == 1.0  # nothing of the group stayed reserved on the head
    # One node left for two STRICT_SPREAD bundles: infeasible, reported, and still waiting.
    wait_for(lambda: placement_group_table(pg)["stats"]["scheduling_state"] == "INFEASIBLE",
             what="the group to be reported infeasible", interval=0.05)
    assert " {'CPU': 1.0} * 2 (STRICT_SPREAD): 1+ pending placement groups" in _status(cluster)
    big = placement_group([{"CPU": 64}])
    assert "No available node types can fulfill placement group requests" in capfd.readouterr().err
    # A node joins: the group is created across the head and it.
    joined = cluster.add_node(num_cpus=1)
    assert pg.wait(30)
    assert sorted(_nodes_of(pg)) == sorted([_hex(head), _hex(joined)])
    remove_placement_group(big)
    # An actor in the joined node's bundle; then that node dies.
    bundle = _nodes_of(pg).index(_hex(joined))
    actor = Where.options(scheduling_strategy=InGroup(pg, bundle), max_restarts=1, max_task_retries=-1).remote()
    assert ray.get(actor.node.remote(), timeout=30) == _hex(joined)
    cluster.remove_node(joined, allow_graceful=False)
    wait_for(lambda: placement_group_table(pg)["state"] == "RESCHEDULING", what="the group to be rescheduled",
             interval=0.05)
    assert placement_group_table(pg)["bundles_to_node_id"][1 - bundle] == _hex(head)  # the other bundle stays
    replacement = cluster.add_node(num_cpus=1)
    wait_for(lambda: placement_group_table(pg)["state"] == "CREATED", what="the group to be created again",
             interval=0.05)
    assert sorted(_nodes_of(pg)) == sorted([_hex(head), _hex(replacement)])
    # The actor is restarted in its rescheduled bundle.
    assert ray.get(actor.node.remote(), timeout=60) == _hex(replacement)
