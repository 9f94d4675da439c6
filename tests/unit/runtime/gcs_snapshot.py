"""A GCS's node table and autoscaler state service in this process (no server, no raylets): nodes register
and report as raylets do, and the service answers as it does over gRPC. For `ray status` and autoscaler tests."""

from __future__ import annotations

import asyncio

from ray.gcs.autoscaler_state_manager import AutoscalerStateManager
from ray.gcs.node_manager import NodeManager
from ray.gcs.pubsub import Publisher
from ray.gcs.storage import InMemoryStoreClient
from ray.protocol import autoscaler_pb2 as apb
from ray.protocol import gcs_pb2 as pb


class Gcs:
    def __init__(self) -> None:
        self.nodes = NodeManager(InMemoryStoreClient(), Publisher(), b"cluster", "test")
        self.placement_group_load: list[pb.PlacementGroupDemand] = []
        self.nodes.placement_group_load = lambda: self.placement_group_load
        self.state = AutoscalerStateManager(self, "session_test")

    def add_node(self, node_id: bytes, resources: dict[str, float], head: bool = False, node_type: str = "",
                 instance_id: str = "", ip: str = "127.0.0.1") -> pb.GcsNodeInfo:
        info = pb.GcsNodeInfo(node_id=node_id, node_manager_address=ip, is_head_node=head,
                              resources_total=resources, node_type_name=node_type, instance_id=instance_id)
        asyncio.run(self.nodes.RegisterNode(pb.RegisterNodeRequest(node_info=info), None))
        return info

    def report(self, node_id: bytes, total: dict[str, float], available: dict[str, float] | None = None,
               demands=(), idle_ms: int = 0, activity=(), draining: bool = False) -> None:
        req = pb.ReportResourceUsageRequest(
            node_id=node_id, resources_total=total, resources_available=total if available is None else available,
            demands=list(demands), idle_duration_ms=idle_ms, node_activity=list(activity), is_draining=draining)
        asyncio.run(self.nodes.ReportResourceUsage(req, None))

    def kill(self, node_id: bytes) -> None:
        asyncio.run(self.nodes.mark_dead(node_id, "The node was stopped."))

    def constrain(self, *bundles: dict[str, float]) -> None:
        counts: dict[tuple, int] = {}
        for b in bundles:  # grouped by shape, as GcsClient.request_cluster_resource_constraint sends them
            counts[tuple(sorted(b.items()))] = counts.get(tuple(sorted(b.items())), 0) + 1
        reqs = [apb.ResourceRequestByCount(request=apb.ResourceRequest(resources_bundle=dict(k)), count=n)
                for k, n in counts.items()]
        req = apb.RequestClusterResourceConstraintRequest(
            cluster_resource_constraint=apb.ClusterResourceConstraint(resource_requests=reqs))
        asyncio.run(self.state.RequestClusterResourceConstraint(req, None))

    def report_autoscaling(self, state: apb.AutoscalingState) -> None:
        asyncio.run(self.state.ReportAutoscalingState(apb.ReportAutoscalingStateRequest(autoscaling_state=state), None))

    def status(self) -> apb.GetClusterStatusReply:
        return asyncio.run(self.state.GetClusterStatus(apb.GetClusterStatusRequest(), None))

    def resource_state(self) -> apb.ClusterResourceState:
        return asyncio.run(self.state.GetClusterResourceState(apb.GetClusterResourceStateRequest(), None)
                           ).cluster_resource_state
