"""`ray status` (Ray 2.60's autoscaler v2 layout) from the GCS's autoscaler state service: node states, usage,
demands, request_resources constraints, and what the autoscaler reported. The expected texts are what Ray
2.60's own `ClusterStatusFormatter` prints for the same `GetClusterStatusReply` bytes."""

from __future__ import annotations

from gcs_snapshot import Gcs
from ray._common import placement_groups as pgs
from ray._common.cluster_status import format_cluster_status
from ray.protocol import autoscaler_pb2 as apb
from ray.protocol import gcs_pb2 as pb

PG = "ab" * 9
HEAD, GPU, CPU = b"\x01" * 28, b"\x03" * 28, b"\x04" * 28
TS = 1700000200.5  # what the header shows, in this machine's time zone

HEAD_TOTAL = {"CPU": 4.0, "memory": 8 * 2**30, "object_store_memory": 2 * 2**30, "node:10.0.0.1": 1.0}


def _cluster() -> Gcs:
    gcs = Gcs()
    gcs.placement_group_load = [pb.PlacementGroupDemand(
        placement_group_id=b"\x02" * 18, strategy="STRICT_SPREAD", state="PENDING",
        bundles=[pb.ResourceDemand(shape={"CPU": 1.0}, num_ready_requests_queued=1)] * 2)]
    gcs.add_node(HEAD, HEAD_TOTAL, head=True, node_type="headgroup", instance_id="head-pod", ip="10.0.0.1")
    gpu_total = {"CPU": 2.0, "GPU": 1.0, "accelerator_type:A100": 1.0}
    gcs.add_node(GPU, gpu_total, node_type="gpu-group", instance_id="w-1", ip="10.0.0.2")
    gcs.add_node(CPU, {"CPU": 2.0}, node_type="cpu", instance_id="w-2", ip="10.0.0.3")
    indexed, wildcard = pgs.bundle_node_resources(PG, 0, {"CPU": 2.0})
    gcs.report(HEAD, {**HEAD_TOTAL, **indexed, **wildcard},
               {**HEAD_TOTAL, "CPU": 1.0, "object_store_memory": 2 * 2**30 - 5000, **wildcard,
                f"CPU_group_{PG}": 1.0, f"CPU_group_0_{PG}": 1.0},
               demands=[pb.ResourceDemand(shape={"CPU": 1.0}, num_ready_requests_queued=3),
                        pb.ResourceDemand(shape=pgs.task_resources({"CPU": 1.0}, PG, 0), num_ready_requests_queued=2),
                        pb.ResourceDemand(shape={"GPU": 8.0}, num_infeasible_requests_queued=1)],
               activity=["Resource: CPU currently in use.", "Busy workers on node."])
    gcs.report(GPU, gpu_total, idle_ms=12345)
    gcs.kill(CPU)
    gcs.constrain({"CPU": 4.0}, {"CPU": 4.0})
    gcs.report_autoscaling(apb.AutoscalingState(
        autoscaler_state_version=3,
        pending_instance_requests=[apb.PendingInstanceRequest(ray_node_type_name="cpu", count=1)] * 2,
        pending_instances=[apb.PendingInstance(instance_id="w-9", ray_node_type_name="cpu", details="Starting Ray")],
        failed_instance_requests=[apb.FailedInstanceRequest(ray_node_type_name="gpu-group", count=1,
                                                            reason="quota exceeded", start_ts=1700000100)]))
    return gcs


def _clock(ts: float) -> str:
    import datetime

    return str(datetime.datetime.fromtimestamp(ts))


def _hms(ts: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def test_status_is_rays_text_for_the_same_cluster():
    text = format_cluster_status(_cluster().status(), request_ts_s=TS, gcs_request_time_s=0.0123)
    assert text == f"""======== Autoscaler status: {_clock(TS)} ========
Node status
---------------------------------------------------------------
Active:
 1 headgroup
Idle:
 1 gpu-group
Pending:
 cpu, 2 launching
 w-9: cpu, starting ray
Recent failures:
 gpu-group: LaunchFailed (latest_attempt: {_hms(1700000100)})
 cpu: NodeTerminated (instance_id: w-2)

Resources
---------------------------------------------------------------
Total Usage:
 2.0/6.0 CPU (1.0 used of 2.0 reserved in placement groups)
 0.0/1.0 GPU
 0B/8.00GiB memory
 4.88KiB/2.00GiB object_store_memory

From request_resources:
 {{'CPU': 4.0}}: 2 from request_resources()
Pending Demands:
 {{'CPU': 1.0}}: 5+ pending tasks/actors (2+ using placement groups)
 {{'GPU': 8.0}}: 1+ pending tasks/actors
 {{'CPU': 1.0}} * 2 (STRICT_SPREAD): 1+ pending placement groups"""


def test_verbose_status_adds_failure_reasons_accelerators_and_each_nodes_usage_and_activity():
    text = format_cluster_status(_cluster().status(), verbose=True, request_ts_s=TS, gcs_request_time_s=0.0123)
    assert text.startswith(f"======== Autoscaler status: {_clock(TS)} ========\nGCS request time: 0.012300s\n\n"
                           "Node status\n")
    assert f" gpu-group: LaunchFailed (latest_attempt: {_hms(1700000100)}) - quota exceeded" in text
    assert " 0.0/1.0 accelerator_type:A100\n" in text
    assert text.endswith(f""" {{'CPU': 1.0}} * 2 (STRICT_SPREAD): 1+ pending placement groups

Node: head-pod (headgroup)
 Id: {HEAD.hex()}
 Usage:
  2.0/4.0 CPU (1.0 used of 2.0 reserved in placement groups)
  0B/8.00GiB memory
  4.88KiB/2.00GiB object_store_memory
 Activity:
  Resource: CPU currently in use.
  Busy workers on node.

Node: w-1 (gpu-group)
 Id: {GPU.hex()}
 Idle: 12345 ms
 Usage:
  0.0/2.0 CPU
  0.0/1.0 GPU
  0.0/1.0 accelerator_type:A100
 Activity:
  (no activity)""")


def test_a_cluster_without_autoscaler_names_nodes_by_id_and_says_nothing_is_pending():
    gcs = Gcs()
    gcs.add_node(HEAD, {"CPU": 1.0}, head=True)
    lines = format_cluster_status(gcs.status(), request_ts_s=TS).splitlines()
    assert lines[3:10] == ["Active:", f" 1 node_{HEAD.hex()}", "Idle:", " (no idle nodes)", "Pending:",
                           " (no pending nodes)", "Recent failures:"]
    assert lines[10] == " (no failures)"
    assert lines[lines.index("From request_resources:") + 1:] == [" (none)", "Pending Demands:",
                                                                  " (no resource demands)"]


def test_node_states_follow_the_raylets_reports_and_draining():
    gcs = Gcs()
    gcs.add_node(HEAD, {"CPU": 1.0}, head=True)
    gcs.add_node(GPU, {"CPU": 1.0}, node_type="w", instance_id="i-1")
    gcs.report(HEAD, {"CPU": 1.0}, {"CPU": 0.0}, activity=["Resource: CPU currently in use."])
    gcs.report(GPU, {"CPU": 1.0}, idle_ms=500)
    states = {n.node_id: n for n in gcs.resource_state().node_states}
    assert states[HEAD].status == apb.RUNNING and states[HEAD].is_head_node
    assert (states[GPU].status, states[GPU].idle_duration_ms, states[GPU].instance_id,
            states[GPU].ray_node_type_name) == (apb.IDLE, 500, "i-1", "w")
    gcs.report(GPU, {"CPU": 1.0}, idle_ms=600, draining=True)
    assert {n.node_id: n.status for n in gcs.resource_state().node_states}[GPU] == apb.DRAINING
    assert gcs.nodes.usage()[GPU].is_draining and not gcs.nodes.schedulable(GPU)
    gcs.kill(GPU)
    assert {n.node_id: n.status for n in gcs.resource_state().node_states}[GPU] == apb.DEAD


def test_request_resources_is_one_standing_constraint_replaced_by_the_next_and_cleared_by_an_empty_one():
    gcs = Gcs()
    gcs.constrain({"CPU": 1.0})
    gcs.constrain({"CPU": 4.0}, {"GPU": 1.0})
    (constraint,) = gcs.resource_state().cluster_resource_constraints
    assert sorted(((dict(r.request.resources_bundle), r.count) for r in constraint.resource_requests), key=str) == [
        ({"CPU": 4.0}, 1), ({"GPU": 1.0}, 1)]
    gcs.constrain()
    assert list(gcs.resource_state().cluster_resource_constraints) == []


def test_pending_groups_are_gang_requests_with_rays_placement_constraints():
    gcs = Gcs()
    gcs.placement_group_load = [
        pb.PlacementGroupDemand(placement_group_id=b"\x05" * 18, strategy=strategy, state="PENDING",
                                bundles=[pb.ResourceDemand(shape={"CPU": 1.0}, num_ready_requests_queued=1)] * 2)
        for strategy in ("STRICT_SPREAD", "STRICT_PACK", "PACK")]
    spread, pack, plain = gcs.resource_state().pending_gang_resource_requests
    assert spread.details == f"{'05' * 18}:STRICT_SPREAD|PENDING"
    assert spread.requests[0].placement_constraints[0].anti_affinity.label_name == "_PG_" + "05" * 18
    assert pack.requests[1].placement_constraints[0].affinity.label_name == "_PG_" + "05" * 18
    assert [len(r.placement_constraints) for r in plain.requests] == [0, 0]


def test_an_older_autoscaler_report_does_not_replace_a_newer_one():
    gcs = Gcs()
    gcs.report_autoscaling(apb.AutoscalingState(autoscaler_state_version=5))
    gcs.report_autoscaling(apb.AutoscalingState(autoscaler_state_version=4, pending_instances=[apb.PendingInstance()]))
    assert gcs.status().autoscaling_state.autoscaler_state_version == 5


def test_demands_sum_each_shape_over_the_nodes_queued_and_infeasible():
    gcs = Gcs()
    gcs.add_node(HEAD, {"CPU": 1.0}, head=True)
    gcs.add_node(GPU, {"CPU": 1.0})
    gcs.report(HEAD, {"CPU": 1.0}, demands=[pb.ResourceDemand(shape={"CPU": 1.0}, num_ready_requests_queued=3),
                                            pb.ResourceDemand(shape={"CPU": 8.0}, num_infeasible_requests_queued=1)])
    gcs.report(GPU, {"CPU": 1.0}, demands=[pb.ResourceDemand(shape={"CPU": 1.0}, num_ready_requests_queued=1,
                                                             num_infeasible_requests_queued=1)])
    lines = format_cluster_status(gcs.status()).splitlines()
    assert lines[lines.index("Pending Demands:") + 1:] == [" {'CPU': 1.0}: 5+ pending tasks/actors",
                                                           " {'CPU': 8.0}: 1+ pending tasks/actors"]
