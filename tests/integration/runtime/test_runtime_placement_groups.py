"""Placement groups on a real three-node cluster (`ray.cluster_utils.Cluster`, shared by the module): each
strategy's placement, bundle resources as `ray.available_resources()` shows them, tasks and actors held to
their bundle, capture of child tasks, removal (actors killed, leases ended, resources back), bad input, and
detached groups outliving their driver. Nodes that come and go: test_runtime_placement_groups_nodes.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import ray
from polling import wait_for
from ray._common import process_registry
from ray._common.ids import PlacementGroupID
from ray.cluster_utils import Cluster
from ray.util import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy as InGroup

CPUS_PER_NODE = 2


def _hex(node) -> str:
    return node.node_id if isinstance(node.node_id, str) else node.node_id.hex()


def _dead_actor_error(actor) -> Exception:
    """Removal is asynchronous (as in Ray): a call made right after it may still reach the actor. The
    error its calls raise once it is gone."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ray.get(actor.node.remote(), timeout=30)
        except ray.exceptions.RayActorError as e:
            return e
        time.sleep(0.05)
    raise AssertionError("the actor is still alive 30 s after its group was removed")


def _group_keys(resources: dict) -> set[str]:
    return {k for k in resources if "_group_" in k}


def _all_back(total_cpus: float) -> bool:
    avail = ray.available_resources()
    return avail.get("CPU") == total_cpus and not _group_keys(avail)


@ray.remote(num_cpus=1)
def where() -> str:
    return ray.get_runtime_context().get_node_id()


@ray.remote(num_cpus=1)
class Where:
    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


# ---------------------------------------------------------------------------- a fixed three-node cluster
@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory):
    temp_dir = str(tmp_path_factory.mktemp("ray"))
    with pytest.MonkeyPatch.context() as env:
        env.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # the head's two (pretend) GPUs are ids 0 and 1
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": CPUS_PER_NODE, "num_gpus": 2, "_temp_dir": temp_dir})
    try:
        for zone in ("b", "c"):
            cluster.add_node(num_cpus=CPUS_PER_NODE, labels={"zone": zone})
        cluster.wait_for_nodes()
        cluster.connect(namespace="pg-tests")
        yield cluster
    finally:
        cluster.shutdown()
        process_registry.stop_all(temp_dir, force=True, grace_period_s=2)


@pytest.fixture
def cluster(three_nodes):
    yield three_nodes
    # Every test leaves the cluster as it found it: no group holds anything.
    for pg_id, entry in placement_group_table().items():
        if entry["state"] != "REMOVED":
            remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(pg_id)))
    wait_for(lambda: _all_back(3.0 * CPUS_PER_NODE), what="every group's resources to come back",
             interval=0.05)


def _nodes_of(pg) -> list[str]:
    table = placement_group_table(pg)
    return [table["bundles_to_node_id"][i] for i in range(len(table["bundles"]))]


def test_each_strategy_places_bundles_and_tasks_run_on_their_bundles_node(cluster):
    all_nodes = {_hex(n) for n in cluster.list_all_nodes()}
    strict_spread = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    assert ray.get(strict_spread.ready(), timeout=30) == strict_spread
    assert set(_nodes_of(strict_spread)) == all_nodes  # one bundle on each node
    for i, node in enumerate(_nodes_of(strict_spread)):
        assert ray.get(where.options(scheduling_strategy=InGroup(strict_spread, i)).remote(), timeout=30) == node
    # Actors too, also through the older `placement_group=` options.
    with pytest.warns(DeprecationWarning, match="placement_group parameter is deprecated"):
        actor = Where.options(placement_group=strict_spread, placement_group_bundle_index=2).remote()
    assert ray.get(actor.node.remote(), timeout=30) == _nodes_of(strict_spread)[2]

    remove_placement_group(strict_spread)
    assert isinstance(_dead_actor_error(actor), ray.exceptions.RayActorError)

    strict_pack = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert strict_pack.wait(30)
    assert len(set(_nodes_of(strict_pack))) == 1
    pack = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")  # best effort: fits one node here
    assert pack.wait(30)
    assert len(set(_nodes_of(pack))) == 1
    assert len(set(_nodes_of(pack) + _nodes_of(strict_pack))) == 2
    # One node is left with 2 free CPUs: one CPU of it taken, a STRICT_PACK of two cannot be placed...
    one = placement_group([{"CPU": 1}])
    assert one.wait(30)
    stuck = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert not stuck.wait(1)
    assert placement_group_table(stuck)["stats"]["scheduling_state"] == "NO_RESOURCES"  # busy, not infeasible
    # ... until a group gives its CPUs back.
    remove_placement_group(pack)
    assert stuck.wait(30)
    for group in (strict_pack, one, stuck):
        remove_placement_group(group)
    # SPREAD is best effort: it spreads over the nodes the GCS sees free. A raylet's report sent before it
    # handled a removal can still say its CPUs are taken (seen under load), so wait until they are back.
    wait_for(lambda: _all_back(3.0 * CPUS_PER_NODE), what="the removed groups' CPUs to come back",
             interval=0.05)
    spread = placement_group([{"CPU": 1}] * 3, strategy="SPREAD")
    assert spread.wait(30)
    assert set(_nodes_of(spread)) == all_nodes
    table = placement_group_table(spread)
    assert table["strategy"] == "SPREAD" and table["state"] == "CREATED"
    assert table["stats"]["scheduling_state"] == "FINISHED" and table["bundles"] == {i: {"CPU": 1.0} for i in range(3)}


def test_bundle_resources_show_in_available_resources_and_tasks_use_only_their_bundle(cluster, tmp_path):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert pg.wait(30)
    hex_id = pg.id.hex()
    avail = ray.available_resources()
    assert avail["CPU"] == 3.0 * CPUS_PER_NODE - 2
    assert {k: avail[k] for k in _group_keys(avail)} == {
        f"CPU_group_{hex_id}": 2.0, f"CPU_group_0_{hex_id}": 1.0, f"CPU_group_1_{hex_id}": 1.0,
        f"bundle_group_{hex_id}": 2000.0, f"bundle_group_0_{hex_id}": 1000.0, f"bundle_group_1_{hex_id}": 1000.0}
    total = ray.cluster_resources()
    assert total["CPU"] == 3.0 * CPUS_PER_NODE and total[f"CPU_group_{hex_id}"] == 2.0  # as Ray counts them
    assert pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 1.0}] and pg.bundle_count == 2
    assert get_current_placement_group() is None  # a driver is in no group

    @ray.remote(num_cpus=1)
    def hold(flag: str) -> dict:
        Path(flag).write_text("started")
        while Path(flag).read_text() != "go":
            time.sleep(0.02)
        return ray.get_runtime_context().get_assigned_resources()

    flag = tmp_path / "flag"
    running = hold.options(scheduling_strategy=InGroup(pg, 0)).remote(str(flag))
    wait_for(lambda: flag.exists(), what="the task to start", interval=0.05)

    def bundle_zero_in_use():
        a = ray.available_resources()
        return a.get(f"CPU_group_0_{hex_id}", 0) == 0 and a[f"CPU_group_{hex_id}"] == 1.0 and a["CPU"] == 4.0

    wait_for(bundle_zero_in_use, what="the task to hold bundle 0's CPU, not the node's", interval=0.05)
    flag.write_text("go")
    assert ray.get(running, timeout=30) == {"CPU": 1.0}
    with pytest.raises(ValueError, match=r"cannot fit into any bundles for the placement group"):
        where.options(num_cpus=2, scheduling_strategy=InGroup(pg)).remote()


def test_bundle_label_selectors_choose_the_nodes(cluster):
    zone_b = next(_hex(n) for n in cluster.worker_nodes if n.params.labels == {"zone": "b"})
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK",
                         bundle_label_selector=[{"zone": "b"}, {"zone": "!b"}])
    assert pg.wait(30)
    first, second = _nodes_of(pg)
    assert first == zone_b and second != zone_b
    nowhere = placement_group([{"CPU": 1}], bundle_label_selector=[{"zone": "in(x,y)"}])
    assert not nowhere.wait(1)
    assert placement_group_table(nowhere)["stats"]["scheduling_state"] == "INFEASIBLE"


def test_a_group_created_by_an_actor_dies_with_it_unless_detached(cluster):
    @ray.remote(num_cpus=0)
    class Creator:
        def make(self, detached: bool) -> str:
            pg = placement_group([{"CPU": 1}], lifetime="detached" if detached else None)
            assert pg.wait(30)
            return pg.id.hex()

    creator = Creator.remote()
    fate_shared, detached = ray.get([creator.make.remote(False), creator.make.remote(True)], timeout=60)
    ray.kill(creator)
    wait_for(lambda: placement_group_table()[fate_shared]["state"] == "REMOVED",
             what="the actor's group to be removed with it", interval=0.05)
    assert placement_group_table()[detached]["state"] == "CREATED"


def test_gpu_tasks_in_a_bundle_get_that_bundles_gpu_ids(cluster):
    pg = placement_group([{"GPU": 1}, {"GPU": 1}], strategy="STRICT_PACK")
    assert pg.wait(30)

    @ray.remote(num_cpus=0, num_gpus=1)
    def gpus():
        import os

        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    first = ray.get(gpus.options(scheduling_strategy=InGroup(pg, 0)).remote(), timeout=30)
    second = ray.get(gpus.options(scheduling_strategy=InGroup(pg, 1)).remote(), timeout=30)
    assert sorted([first, second]) == [([0], "0"), ([1], "1")]
    assert ray.get(gpus.options(scheduling_strategy=InGroup(pg, 0)).remote(), timeout=30) == first


def test_child_tasks_are_captured_only_when_asked(cluster):
    pg = placement_group([{"CPU": 2}], strategy="STRICT_PACK")
    assert pg.wait(30)

    @ray.remote(num_cpus=0)
    def child():
        current = get_current_placement_group()
        return None if current is None else current.id.hex(), ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=1)
    def parent():
        return get_current_placement_group().id.hex(), ray.get(child.remote())

    bundle_node = _nodes_of(pg)[0]
    mine, (childs, _) = ray.get(parent.options(scheduling_strategy=InGroup(pg)).remote(), timeout=30)
    assert mine == pg.id.hex() and childs is None
    captured = parent.options(scheduling_strategy=InGroup(pg, placement_group_capture_child_tasks=True)).remote()
    mine, (childs, child_node) = ray.get(captured, timeout=30)
    assert childs == pg.id.hex() and child_node == bundle_node


def test_removing_a_group_kills_its_actors_ends_its_tasks_and_frees_its_resources(cluster, tmp_path):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    assert pg.wait(30)
    actor = Where.options(scheduling_strategy=InGroup(pg, 0)).remote()
    assert ray.get(actor.node.remote(), timeout=30)
    flag = tmp_path / "started"

    @ray.remote(num_cpus=1, max_retries=0)
    def long_running(path: str):
        Path(path).write_text("x")
        time.sleep(300)

    task = long_running.options(scheduling_strategy=InGroup(pg, 1)).remote(str(flag))
    wait_for(flag.exists, what="the task to start", interval=0.05)
    remove_placement_group(pg)
    remove_placement_group(pg)  # again: nothing happens
    assert "actor died" in str(_dead_actor_error(actor))
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(task, timeout=30)
    assert placement_group_table(pg)["state"] == "REMOVED"
    wait_for(lambda: _all_back(3.0 * CPUS_PER_NODE), what="the group's resources to come back", interval=0.05)
    # A removed group in a strategy: Ray's errors, and the cluster goes on.
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved,
                       match="The placement group corresponding to this task has been removed."):
        ray.get(where.options(scheduling_strategy=InGroup(pg)).remote(), timeout=30)
    late = Where.options(scheduling_strategy=InGroup(pg)).remote()
    with pytest.raises(ray.exceptions.ActorUnschedulableError, match="placement group was removed"):
        ray.get(late.node.remote(), timeout=30)
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved):
        ray.get(pg.ready(), timeout=30)
    with pytest.raises(Exception, match="does not exist"):
        pg.wait(1)
    assert ray.get(where.remote(), timeout=30)


def test_max_cpu_fraction_counts_the_cpus_groups_committed_a_moment_before(cluster):
    # A 2-CPU node lets fraction-limited groups hold 1 CPU (Ray's rule keeps one out). Created back to back,
    # the GCS places them in one pass, before any node reports: it must count what it has just committed.
    groups = [placement_group([{"CPU": 1}], strategy="STRICT_PACK", _max_cpu_fraction_per_node=0.5)
              for _ in range(4)]
    ready = [pg.wait(30) for pg in groups[:3]]
    assert ready == [True, True, True]
    assert len({_nodes_of(pg)[0] for pg in groups[:3]}) == 3  # one per node
    assert not groups[3].wait(2)  # 3 CPUs are free, but none a fraction-limited group may take
    assert placement_group_table(groups[3])["stats"]["scheduling_state"] == "NO_RESOURCES"
    assert ray.available_resources()["CPU"] == 3.0
    remove_placement_group(groups[0])
    assert groups[3].wait(30)


def test_bad_input_gets_rays_errors_and_the_cluster_keeps_working(cluster):
    with pytest.raises(ValueError, match="Bundles must be a non-empty list"):
        placement_group([])
    with pytest.raises(ValueError, match="Bundles cannot be an empty dictionary"):
        placement_group([{}])
    with pytest.raises(ValueError, match="Bundles cannot be an empty dictionary or resources with only 0 values"):
        placement_group([{"CPU": 0}])
    with pytest.raises(ValueError, match="cannot be negative"):
        placement_group([{"CPU": -1}])
    with pytest.raises(ValueError, match="Invalid placement group strategy BEST"):
        placement_group([{"CPU": 1}], strategy="BEST")
    with pytest.raises(ValueError, match="Failed to look up placement group with name: nope"):
        get_placement_group("nope")
    pg = placement_group([{"CPU": 1}], name="only-one")
    assert pg.wait(30)
    with pytest.raises(ray.exceptions.RaySystemError, match="because name 'only-one' already exists"):
        placement_group([{"CPU": 1}], name="only-one")
    with pytest.raises(ValueError, match=r"placement group bundle index 1 is invalid. Valid placement group "
                                         r"indexes: 0-1"):
        where.options(scheduling_strategy=InGroup(pg, 1)).remote()
    with pytest.raises(ValueError, match="Placement groups should be specified via the scheduling_strategy"):
        where.options(placement_group=pg, scheduling_strategy="SPREAD").remote()
    assert get_placement_group("only-one") == pg
    assert ray.get(where.options(scheduling_strategy=InGroup(pg, 0)).remote(), timeout=30)


def _driver(cluster, code: str) -> subprocess.CompletedProcess:
    script = f"import ray\nray.init(address={cluster.address!r}, namespace='pg-tests')\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_a_detached_group_outlives_its_driver_and_a_second_driver_finds_it_by_name(cluster):
    first = _driver(cluster, """
        from ray.util import placement_group
        kept = placement_group([{"CPU": 1}], name="kept", lifetime="detached")
        temp = placement_group([{"CPU": 1}], name="temp")
        assert kept.wait(30) and temp.wait(30)
        print(kept.id.hex())
    """)
    assert first.returncode == 0, first.stderr
    kept_id = first.stdout.split()[-1]
    wait_for(lambda: placement_group_table().get(kept_id) and not any(
        e["name"] == "temp" and e["state"] != "REMOVED" for e in placement_group_table().values()),
        what="the first driver's job to end and its non-detached group to go", interval=0.05)
    second = _driver(cluster, """
        import ray
        from ray.util import get_placement_group, placement_group_table, remove_placement_group
        kept = get_placement_group("kept")
        print(kept.id.hex(), placement_group_table(kept)["state"])
        try:
            get_placement_group("temp")
        except ValueError as e:
            print("temp:", e)
        remove_placement_group(kept)
    """)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [f"{kept_id} CREATED",
                                          "temp: Failed to look up placement group with name: temp"]
