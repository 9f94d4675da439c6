"""`ray status` text and the store's spilling bookkeeping (no processes); the policies have their own file."""

from ray._common.status import format_status
from ray.protocol import gcs_pb2 as pb
from ray.raylet.object_store import LocalObjectStore


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


def test_status_demands_sum_each_shape_over_the_nodes_queued_and_infeasible():
    a = pb.NodeResources(node_id=b"\x01" * 28, resources_total={"CPU": 1.0}, demands=[
        pb.ResourceDemand(shape={"CPU": 1.0}, num_ready_requests_queued=3),
        pb.ResourceDemand(shape={"CPU": 8.0}, num_infeasible_requests_queued=1)])
    b = pb.NodeResources(node_id=b"\x02" * 28, resources_total={"CPU": 1.0}, demands=[
        pb.ResourceDemand(shape={"CPU": 1.0}, num_ready_requests_queued=1, num_infeasible_requests_queued=1)])
    lines = format_status([], [a, b]).splitlines()
    assert lines[lines.index("Demands:") + 1:] == [" {'CPU': 1.0}: 5+ pending tasks/actors",
                                                   " {'CPU': 8.0}: 1+ pending tasks/actors"]
    empty = format_status([], [pb.NodeResources(node_id=b"\x01" * 28, resources_total={"CPU": 1.0})]).splitlines()
    assert empty[empty.index("Demands:") + 1:] == [" (no resource demands)"]


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
