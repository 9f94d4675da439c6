"""Placement groups without processes: bundle resource names, a raylet's two-phase bundle accounting (with GPU
ids kept per bundle), the GCS's four bundle policies, leases placed in bundles, and `ray status`'s lines.

The raylet side runs the real lease manager, resources and bundle handler through the raylet's dispatcher,
with the lease manager tests' in-process worker pool (`test_runtime_lease_manager.Raylet`).
"""

from __future__ import annotations

import asyncio

import pytest
from gcs_snapshot import Gcs
from ray._common import placement_groups as pgs
from ray._common.cluster_status import format_cluster_status
from ray._common.ids import JobID, PlacementGroupID
from ray._common.resources import GRANULARITY, ResourceSet
from ray.gcs import bundle_policy
from ray.gcs.bundle_policy import BundleRequest, NodeCapacity
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher
from ray.raylet.scheduling.local_resources import LocalResourceManager
from ray.raylet.scheduling.placement_groups import PlacementGroupBundles
from ray.raylet.worker_pool import DEAD
from ray.util.placement_group import validate_placement_group
from test_runtime_lease_manager import (
    NODE,
    REMOTE,
    REMOTE_INFO,
    Raylet,
    _granted,
    _remote_node,
    _run,
    _still_waiting,
)

PG = "ab" * 18


def test_group_ids_have_rays_size_and_resource_names_round_trip():
    pg = PlacementGroupID.of(JobID.from_int(3))
    assert len(pg.hex()) == 36 and pg.job_id() == JobID.from_int(3) and not pg.is_nil()
    assert PlacementGroupID.nil().is_nil()
    request = pgs.task_resources({"CPU": 1.0, "GPU": 0.5}, PG, 2)
    assert request == {f"CPU_group_{PG}": 1.0, f"CPU_group_2_{PG}": 1.0, f"GPU_group_{PG}": 0.5,
                       f"GPU_group_2_{PG}": 0.5, f"bundle_group_{PG}": 0.001, f"bundle_group_2_{PG}": 0.001}
    assert pgs.original_resources(request) == {"CPU": 1.0, "GPU": 0.5}
    assert set(pgs.task_resources({"CPU": 1.0}, PG, -1)) == {f"CPU_group_{PG}", f"bundle_group_{PG}"}
    assert pgs.parse_resource(f"CPU_group_2_{PG}") == ("CPU", PG, 2)
    assert pgs.parse_resource(f"my_group_x_group_{PG}") == ("my_group_x", PG, None)
    assert pgs.parse_resource("CPU") == ("CPU", None, None)
    assert pgs.bundle_label_matches({"zone": "a", "gpu": "!none", "tier": "in(x,y)"},
                                    {"zone": "a", "gpu": "t4", "tier": "y"})
    assert not pgs.bundle_label_matches({"tier": "!in(x,y)"}, {"tier": "x"})


def test_bad_placement_groups_are_refused_with_rays_messages():
    with pytest.raises(ValueError, match=r"Bundles must be a non-empty list .* Got empty list instead\."):
        validate_placement_group([])
    with pytest.raises(ValueError, match=r"Bundles cannot be an empty dictionary or resources with only 0 values\. "
                                         r"Bundles: \[\{\}\]"):
        validate_placement_group([{}])
    with pytest.raises(ValueError, match="only 0 values"):
        validate_placement_group([{"CPU": 0}])
    with pytest.raises(ValueError, match="The quantity of resource CPU cannot be negative"):
        validate_placement_group([{"CPU": -1}])
    with pytest.raises(ValueError, match="Invalid placement group strategy FOO. Supported strategies are: "):
        validate_placement_group([{"CPU": 1}], "FOO")
    with pytest.raises(ValueError, match="Placement group bundles must be a list, got <class 'dict'>."):
        validate_placement_group({"CPU": 1})
    with pytest.raises(ValueError, match="`lifetime` argument must be either `None` or 'detached'. Got x."):
        validate_placement_group([{"CPU": 1}], lifetime="x")
    with pytest.raises(ValueError, match="_max_cpu_fraction_per_node must be a float between 0 and 1"):
        validate_placement_group([{"CPU": 1}], max_cpu_fraction_per_node=0)
    with pytest.raises(ValueError, match="length of `bundle_label_selector` should equal"):
        validate_placement_group([{"CPU": 1}], bundle_label_selector=[{}, {}])


# ---------------------------------------------------------------------------- a raylet's bundles
def test_prepare_is_all_or_nothing_and_commit_turns_bundles_into_renamed_resources():
    res = LocalResourceManager({"CPU": 4, "memory": 100})
    assert not res.prepare_bundles([(PG, 0, {"CPU": 2}), (PG, 1, {"CPU": 3})])
    assert res.available.to_dict() == {"CPU": 4.0, "memory": 100.0}  # nothing kept
    assert res.prepare_bundles([(PG, 0, {"CPU": 2}), (PG, 1, {"CPU": 1, "memory": 50})])
    assert res.prepare_bundles([(PG, 0, {"CPU": 2})])  # asked again: already there
    assert res.available.to_dict() == {"CPU": 1.0, "memory": 50.0}
    assert res.commit_bundles([(PG, 0), (PG, 1)])
    assert res.available.to_dict() == {
        "CPU": 1.0, "memory": 50.0, f"CPU_group_{PG}": 3.0, f"CPU_group_0_{PG}": 2.0, f"CPU_group_1_{PG}": 1.0,
        f"memory_group_{PG}": 50.0, f"memory_group_1_{PG}": 50.0, f"bundle_group_{PG}": 2000.0,
        f"bundle_group_0_{PG}": 1000.0, f"bundle_group_1_{PG}": 1000.0}
    assert res.total.get(f"CPU_group_{PG}") == 3.0
    assert not res.commit_bundles([(PG, 7)])  # never prepared here
    assert res.return_bundle(PG, 0) and res.return_bundle(PG, 1) and not res.return_bundle(PG, 1)
    assert res.available.to_dict() == res.total.to_dict() == {"CPU": 4.0, "memory": 100.0}


def test_gpu_leases_in_a_bundle_get_the_bundles_own_gpu_ids():
    res = LocalResourceManager({"CPU": 4, "GPU": 4}, visible_gpus="4,5,6,7")
    res.allocate(ResourceSet({"GPU": 1}))  # a plain lease takes GPU 4
    assert res.prepare_bundles([(PG, 0, {"GPU": 2}), (PG, 1, {"GPU": 1})])
    assert res.commit_bundles([(PG, 0), (PG, 1)])
    first = res.allocate(ResourceSet(pgs.task_resources({"GPU": 1}, PG, 0)))
    second = res.allocate(ResourceSet(pgs.task_resources({"GPU": 1}, PG, 0)))
    third = res.allocate(ResourceSet(pgs.task_resources({"GPU": 1}, PG, 1)))
    assert sorted(first + second) == ["5", "6"] and third == ["7"]
    held = ResourceSet(pgs.task_resources({"GPU": 1}, PG, 0))
    res.free(held, first)
    assert res.allocate(held) == first  # given back to its bundle
    # A lease still holding a returned bundle's resources gives back only what still exists.
    res.return_bundle(PG, 1)
    res.free(ResourceSet(pgs.task_resources({"GPU": 1}, PG, 1)), third)
    assert f"GPU_group_1_{PG}" not in res.available.to_dict()


# ---------------------------------------------------------------------------- the GCS's bundle policies
def _nodes(*cpus, labels=None) -> list[NodeCapacity]:
    return [NodeCapacity(bytes([i + 1]) * 28, ResourceSet({"CPU": c}), ResourceSet({"CPU": c}),
                         (labels or {}).get(i, {})) for i, c in enumerate(cpus)]


def _bundles(*cpus, selectors=None) -> list[BundleRequest]:
    return [BundleRequest(i, ResourceSet({"CPU": c}), (selectors or {}).get(i, {})) for i, c in enumerate(cpus)]


def test_bundle_policies_place_like_rays_four_strategies():
    nodes = _nodes(4, 4, 4)
    spread = bundle_policy.schedule("STRICT_SPREAD", _bundles(1, 1, 1), nodes)
    assert len(set(spread.values())) == 3
    assert bundle_policy.schedule("STRICT_SPREAD", _bundles(1, 1, 1, 1), nodes) is None
    assert not bundle_policy.feasible("STRICT_SPREAD", _bundles(1, 1, 1, 1), nodes)
    pack = bundle_policy.schedule("STRICT_PACK", _bundles(2, 2), nodes)
    assert len(set(pack.values())) == 1
    assert bundle_policy.schedule("STRICT_PACK", _bundles(3, 3), nodes) is None
    assert not bundle_policy.feasible("STRICT_PACK", _bundles(3, 3), nodes)
    # Best effort: PACK spills over to a second node, SPREAD shares nodes when it must.
    assert len(set(bundle_policy.schedule("PACK", _bundles(1, 1), nodes).values())) == 1
    assert len(set(bundle_policy.schedule("PACK", _bundles(3, 3), nodes).values())) == 2
    assert len(set(bundle_policy.schedule("SPREAD", _bundles(1, 1, 1), nodes).values())) == 3
    assert len(set(bundle_policy.schedule("SPREAD", _bundles(1, 1, 1, 1, 1, 1), nodes).values())) == 3
    # Busy now but not too big: no placement, yet feasible (it waits instead of being reported).
    busy = [NodeCapacity(n.node_id, n.total, ResourceSet({"CPU": 0})) for n in nodes]
    assert bundle_policy.schedule("PACK", _bundles(1), busy) is None and bundle_policy.feasible("PACK", _bundles(1), busy)
    assert not bundle_policy.feasible("PACK", _bundles(5), nodes)


def test_rescheduled_bundles_keep_the_strategy_against_those_still_placed():
    nodes = _nodes(2, 2, 2)
    placed = {0: nodes[0].node_id, 1: nodes[1].node_id}
    again = bundle_policy.schedule("STRICT_SPREAD", [BundleRequest(2, ResourceSet({"CPU": 1}))], nodes, placed)
    assert again == {2: nodes[2].node_id}
    assert bundle_policy.schedule("STRICT_SPREAD", [BundleRequest(2, ResourceSet({"CPU": 1}))], nodes[:2], placed) is None


def test_label_selectors_and_the_cpu_fraction_limit_where_bundles_may_go():
    nodes = _nodes(4, 4, labels={1: {"zone": "b"}})
    placed = bundle_policy.schedule("PACK", _bundles(1, selectors={0: {"zone": "b"}}), nodes)
    assert placed == {0: nodes[1].node_id}
    assert bundle_policy.schedule("PACK", _bundles(1, selectors={0: {"zone": "c"}}), nodes) is None
    # At most half of each node's CPUs (and always one left out): 2 of 4.
    assert bundle_policy.schedule("STRICT_PACK", _bundles(2), nodes, max_cpu_fraction_per_node=0.5) is not None
    assert bundle_policy.schedule("STRICT_PACK", _bundles(3), nodes, max_cpu_fraction_per_node=0.5) is None
    assert not bundle_policy.feasible("STRICT_PACK", _bundles(4), nodes, max_cpu_fraction_per_node=0.99)
    # CPUs other groups already hold count against the limit.
    node = bundle_policy.node_capacity(nodes[0].node_id, {"CPU": 4, f"CPU_group_{PG}": 2, f"CPU_group_0_{PG}": 2},
                                       {"CPU": 2, f"CPU_group_{PG}": 2, f"CPU_group_0_{PG}": 2}, {})
    assert node.total == ResourceSet({"CPU": 4}) and node.available == ResourceSet({"CPU": 2})
    assert node.group_cpus == 2 * GRANULARITY
    assert bundle_policy.schedule("STRICT_PACK", _bundles(1), [node], max_cpu_fraction_per_node=0.5) is None


# ---------------------------------------------------------------------------- leases in bundles
def _bundle(index: int, resources: dict) -> msg.Bundle:
    return {"placement_group_id": PG, "bundle_index": index, "resources": resources}


def _with_bundles(raylet: Raylet, lookups: dict) -> PlacementGroupBundles:
    async def lookup(pg_hex):
        return lookups.get(pg_hex)

    bundles = PlacementGroupBundles(NODE, raylet.resources, lookup, raylet.leases.schedule,
                                    raylet.leases.end_placement_group_leases)
    raylet.leases.placement_groups = bundles
    raylet.dispatch.add(bundles)
    return bundles


def _in_group(index: int = -1) -> dict:
    return {"type": pgs.STRATEGY_TYPE, "placement_group_id": PG, "bundle_index": index}


def test_a_lease_in_a_bundle_uses_only_the_bundles_share_and_ends_when_the_group_is_removed():
    async def run(raylet: Raylet):
        _with_bundles(raylet, {PG: ("CREATED", {0: NODE})})
        assert raylet.dispatch(None, msg.PREPARE_BUNDLES, {"bundles": [_bundle(0, {"CPU": 1})]})
        assert raylet.dispatch(None, msg.COMMIT_BUNDLES, {"bundles": [_bundle(0, {"CPU": 1})]})
        request = pgs.task_resources({"CPU": 1}, PG, 0)
        grant = await _granted(raylet.request(request, strategy=_in_group(0)))
        assert raylet.available["CPU"] == 2.0 and f"CPU_group_0_{PG}" not in raylet.available
        queued = raylet.request(request, strategy=_in_group(0))
        assert await _still_waiting(queued)  # the bundle is busy even though the node has 2 CPUs free
        plain = await _granted(raylet.request({"CPU": 2}))  # ... which other work may use
        assert plain["worker_id"] != grant["worker_id"]
        raylet.dispatch(None, msg.CANCEL_BUNDLES, {"bundles": [_bundle(0, {"CPU": 1})], "removed": True})
        reply = await asyncio.wait_for(queued, 5)
        assert reply == {"cancelled": {"type": msg.CANCELLED_PLACEMENT_GROUP_REMOVED,
                                      "message": f"Required placement group {PG} is removed."}}
        worker = raylet.pool.workers[grant["worker_id"]]
        assert worker.state == DEAD  # its lease ended with the group
        assert raylet.available == {"CPU": 1.0}  # the bundle's CPU is back, the plain lease still holds 2
        later = await asyncio.wait_for(raylet.request(request, strategy=_in_group(0)), 5)
        assert later["cancelled"]["type"] == msg.CANCELLED_PLACEMENT_GROUP_REMOVED

    _run({"CPU": 3}, run)


def test_a_lease_for_a_bundle_elsewhere_waits_for_the_group_then_spills_to_its_node():
    async def run(raylet: Raylet):
        lookups = {PG: ("PENDING", {})}
        _with_bundles(raylet, lookups)
        request = pgs.task_resources({"CPU": 1}, PG, -1)
        fut = raylet.request(request, strategy=_in_group())
        assert await _still_waiting(fut)
        assert raylet.leases.num_infeasible == 0  # waiting for its group is not infeasible
        # The group is created on the remote node; the cluster view shows its bundle there.
        lookups[PG] = ("CREATED", {0: REMOTE})
        indexed, wildcard = pgs.bundle_node_resources(PG, 0, {"CPU": 1})
        raylet.cluster.update([_remote_node({"CPU": 1, **indexed, **wildcard}, {**indexed, **wildcard})])
        raylet.cluster.fill_addresses([REMOTE_INFO])
        raylet.leases.on_cluster_update()
        reply = await asyncio.wait_for(fut, 5)
        assert reply == {"spillback": "127.0.0.2:7001", "node_id": REMOTE}
        # A group the GCS does not know (or removed) fails the request at once.
        other = "cd" * 18
        gone = raylet.request(pgs.task_resources({"CPU": 1}, other, -1),
                              strategy={**_in_group(), "placement_group_id": other})
        assert (await asyncio.wait_for(gone, 5))["cancelled"]["type"] == msg.CANCELLED_PLACEMENT_GROUP_REMOVED

    _run({"CPU": 2}, run)


def test_the_raylet_receives_the_gcss_bundle_messages_through_its_bundle_handler():
    res = LocalResourceManager({"CPU": 1})
    bundles = PlacementGroupBundles(NODE, res, None, lambda: None, lambda pg, removed: None)
    assert Dispatcher(msg.RAYLET, bundles).handled() == {msg.PREPARE_BUNDLES, msg.COMMIT_BUNDLES,
                                                         msg.CANCEL_BUNDLES}


# ---------------------------------------------------------------------------- ray status
def test_status_shows_pending_groups_and_what_groups_reserve_in_rays_format():
    gcs = Gcs()
    node = gcs.add_node(b"\x01" * 28, {"CPU": 4.0}, head=True)
    indexed, wildcard = pgs.bundle_node_resources(PG, 0, {"CPU": 2.0})
    gcs.report(node.node_id, {"CPU": 4.0, **indexed, **wildcard},
               {"CPU": 2.0, **wildcard, f"CPU_group_{PG}": 1.0, f"CPU_group_0_{PG}": 1.0},
               demands=[pb.ResourceDemand(shape=pgs.task_resources({"CPU": 1.0}, PG, 0), num_ready_requests_queued=3)])
    gcs.placement_group_load = [pb.PlacementGroupDemand(placement_group_id=b"\x02" * 18, strategy="PACK", bundles=[
        pb.ResourceDemand(shape={"CPU": 1.0}, num_ready_requests_queued=1)] * 2)]
    lines = format_cluster_status(gcs.status()).splitlines()
    usage_lines = lines[lines.index("Total Usage:") + 1: lines.index("From request_resources:") - 1]
    assert usage_lines == [" 1.0/4.0 CPU (1.0 used of 2.0 reserved in placement groups)"]
    demand_lines = lines[lines.index("Pending Demands:") + 1:]
    assert demand_lines == [" {'CPU': 1.0}: 3+ pending tasks/actors (3+ using placement groups)",
                            " {'CPU': 1.0} * 2 (PACK): 1+ pending placement groups"]
