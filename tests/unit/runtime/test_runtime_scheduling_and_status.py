"""The hybrid/affinity/spread policies, `ray status` text and the store's spilling bookkeeping (no processes)."""

from ray._common.resources import ResourceSet
from ray._private.status import format_status
from ray.protocol import gcs_pb2 as pb
from ray.raylet.object_store import LocalObjectStore
from ray.raylet.scheduling import policy


def _node(node_id: str, total: dict, available: dict | None = None) -> policy.NodeView:
    return policy.NodeView(node_id, ResourceSet(total), ResourceSet(available or total), f"{node_id}:1")


def test_hybrid_prefers_the_local_node_until_the_spread_threshold():
    local, remote = _node("local", {"CPU": 4}), _node("remote", {"CPU": 4})
    assert policy.hybrid(ResourceSet({"CPU": 1}), [local, remote], "local").node_id == "local"
    busy_local = _node("local", {"CPU": 4}, {"CPU": 1})
    decision = policy.hybrid(ResourceSet({"CPU": 1}), [busy_local, remote], "local")
    assert decision.node_id == "remote" and decision.available_now


def test_hybrid_queues_locally_when_feasible_but_busy_and_reports_infeasible():
    full_local = _node("local", {"CPU": 2}, {"CPU": 0})
    decision = policy.hybrid(ResourceSet({"CPU": 1}), [full_local], "local")
    assert decision.node_id == "local" and not decision.available_now
    assert policy.hybrid(ResourceSet({"GPU": 1}), [full_local], "local").node_id is None
    special = _node("special", {"CPU": 1, "bob": 5})
    assert policy.hybrid(ResourceSet({"bob": 1}), [full_local, special], "local").node_id == "special"


def test_node_affinity_hard_and_soft():
    a, b = _node("a", {"CPU": 1}), _node("b", {"CPU": 1})
    assert policy.node_affinity(ResourceSet({"CPU": 1}), [a, b], "b", soft=False, local_id="a").node_id == "b"
    assert policy.node_affinity(ResourceSet({"CPU": 1}), [a], "gone", soft=False, local_id="a").node_id is None
    assert policy.node_affinity(ResourceSet({"CPU": 1}), [a], "gone", soft=True, local_id="a").node_id == "a"


def test_spread_round_robins_over_available_nodes():
    nodes = [_node(n, {"CPU": 1}) for n in ("a", "b", "c")]
    picked = {policy.spread(ResourceSet({"CPU": 1}), nodes, i).node_id for i in range(3)}
    assert picked == {"a", "b", "c"}


def test_status_text_has_rays_layout():
    node = pb.GcsNodeInfo(node_id=b"\x01" * 28, node_manager_address="127.0.0.1", state=pb.GcsNodeInfo.ALIVE)
    dead = pb.GcsNodeInfo(node_id=b"\x02" * 28, node_manager_address="127.0.0.2", state=pb.GcsNodeInfo.DEAD)
    usage = pb.NodeResources(
        node_id=node.node_id,
        resources_total={"CPU": 5.0, "bob": 5.0, "memory": 2 * 1024**3, "node:127.0.0.1": 1.0},
        resources_available={"CPU": 4.0, "bob": 5.0, "memory": 2 * 1024**3, "node:127.0.0.1": 1.0},
        demands=[pb.ResourceDemand(shape={"CPU": 8.0}, num_infeasible_requests_queued=2)],
    )
    text = format_status([node, dead], [usage])
    lines = text.splitlines()
    assert lines[0].startswith("======== Autoscaler status: ")
    assert lines[1:4] == ["Node status", "-" * 63, "Healthy:"]
    assert f" 1 node_{'01' * 28}" in lines
    assert f" node_{'02' * 28}: NodeTerminated (ip: 127.0.0.2)" in lines
    usage_lines = lines[lines.index("Usage:") + 1 : lines.index("Demands:") - 1]
    assert usage_lines == [" 1.0/5.0 CPU", " 0.0/5.0 bob", " 0.00/2.000 GiB memory"]
    assert " {'CPU': 8.0}: 2+ pending tasks/actors" in lines


def test_store_spills_oldest_objects_past_the_threshold_and_restores(tmp_path):
    shm, spill = tmp_path / "shm", tmp_path / "spill"
    shm.mkdir()
    store = LocalObjectStore(str(shm), str(spill), capacity=100)
    for i in range(5):
        (shm / f"o{i}").write_bytes(b"x" * 30)
        store.on_created(f"o{i}", 30)
    assert store.used_bytes <= 80  # object_spilling_threshold 0.8 of 100
    assert not (shm / "o0").exists() and (spill / "o0").exists()
    assert store.read("o0", 0, 30) == b"x" * 30 and store.read("o0", 10, 5) == b"x" * 5
    assert store.restore("o0") and (shm / "o0").exists()
    store.free([f"o{i}" for i in range(5)])
    assert store.used_bytes == 0 and store.num_objects == 0
    assert not any(shm.iterdir()) and not any(spill.iterdir())
