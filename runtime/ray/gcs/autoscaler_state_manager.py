"""Ray's autoscaler state service on the GCS (`autoscaler.proto`, gcs_autoscaler_state_manager.cc).

- `GetClusterResourceState`: every node (alive ones RUNNING, IDLE with how long, or DRAINING; dead ones DEAD)
  with its instance id and node type, the tasks and actors waiting for resources (the raylets' queued and
  infeasible shapes, summed), the placement groups waiting for bundles (as gang requests with Ray's
  placement constraints) and the standing `request_resources()` constraint.
- `ReportAutoscalingState`: the autoscaler's own state (pending launches and instances, failures, infeasible
  demand), kept for `ray status` (`GetClusterStatus`); an older version than the one kept is ignored.
- `RequestClusterResourceConstraint`: `request_resources()`; the next call replaces it, an empty one clears it.
- `DrainNode`: forwarded to the node's raylet (`DRAIN_RAYLET`); an idle-termination drain is refused by a busy
  node. An accepted drain makes the node DRAINING: the GCS's schedulers and, through the report replies, every
  raylet stop placing new work there. A dead or unknown node counts as drained.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from ray._common import framing
from ray._common import placement_groups as pgs
from ray.protocol import autoscaler_pb2 as apb
from ray.protocol import autoscaler_pb2_grpc
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher

logger = logging.getLogger(__name__)

RAYLET_TIMEOUT_S = 10
# Ray's label for placement-group (anti-)affinity in the autoscaler's requests.
PG_LABEL_PREFIX = "_PG_"


def _request(shape: dict[str, float], constraints: list[apb.PlacementConstraint] = ()) -> apb.ResourceRequest:
    return apb.ResourceRequest(resources_bundle=shape, placement_constraints=list(constraints))


class AutoscalerStateManager(autoscaler_pb2_grpc.AutoscalerStateServiceServicer):
    def __init__(self, gcs_server, session_name: str = "") -> None:
        self.gcs = gcs_server
        self.session_name = session_name
        self._version = 0  # cluster_resource_state_version: one more for every snapshot handed out
        self._autoscaling_state = apb.AutoscalingState()
        self._constraint: apb.ClusterResourceConstraint | None = None
        self._pool = framing.ConnectionPool(Dispatcher(msg.GCS))

    # ------------------------------------------------------------------ the snapshot
    def node_states(self) -> list[apb.NodeState]:
        nodes = self.gcs.nodes
        usage = nodes.usage()
        out = []
        # The head first, then by start time (what `ray status` lists in this order).
        for info in sorted(nodes.all_nodes(), key=lambda n: (not n.is_head_node, n.start_time_ms)):
            state = apb.NodeState(
                node_id=info.node_id, instance_id=info.instance_id, ray_node_type_name=info.node_type_name,
                node_ip_address=info.node_manager_address, labels=dict(info.labels), is_head_node=info.is_head_node)
            u = usage.get(info.node_id)
            if info.state == pb.GcsNodeInfo.DEAD or u is None:
                state.status = apb.DEAD
                state.death_reason = info.death_reason
                state.total_resources.update(dict(info.resources_total))
            else:
                state.total_resources.update(dict(u.resources_total))
                state.available_resources.update(dict(u.resources_available))
                idle_ms, activity = nodes.idle_state(info.node_id)
                state.node_activity.extend(activity)
                if nodes.is_draining(info.node_id):
                    state.status = apb.DRAINING
                    state.idle_duration_ms = idle_ms
                elif idle_ms > 0:
                    state.status = apb.IDLE
                    state.idle_duration_ms = idle_ms
                else:
                    state.status = apb.RUNNING
            out.append(state)
        return out

    def pending_resource_requests(self) -> list[apb.ResourceRequestByCount]:
        counts: Counter = Counter()
        for u in self.gcs.nodes.usage().values():
            for d in u.demands:
                n = d.num_ready_requests_queued + d.num_infeasible_requests_queued
                if n:
                    counts[tuple(sorted(d.shape.items()))] += n
        return [apb.ResourceRequestByCount(request=_request(dict(shape)), count=n) for shape, n in counts.items()]

    def pending_gang_resource_requests(self) -> list[apb.GangResourceRequest]:
        out = []
        for group in self.gcs.nodes.placement_group_load():
            pg_hex = group.placement_group_id.hex()
            label = apb.PlacementConstraint()
            if group.strategy == "STRICT_SPREAD":
                label.anti_affinity.label_name = PG_LABEL_PREFIX + pg_hex
            elif group.strategy == "STRICT_PACK":
                label.affinity.label_name = PG_LABEL_PREFIX + pg_hex
            constraints = [label] if group.strategy in ("STRICT_SPREAD", "STRICT_PACK") else []
            out.append(apb.GangResourceRequest(
                requests=[_request({k: v for k, v in b.shape.items() if not pgs.is_group_resource(k)}, constraints)
                          for b in group.bundles],
                details=f"{pg_hex}:{group.strategy}|{group.state or 'PENDING'}"))
        return out

    def cluster_resource_state(self) -> apb.ClusterResourceState:
        self._version += 1
        state = apb.ClusterResourceState(
            cluster_resource_state_version=self._version,
            last_seen_autoscaler_state_version=self._autoscaling_state.autoscaler_state_version,
            node_states=self.node_states(),
            pending_resource_requests=self.pending_resource_requests(),
            pending_gang_resource_requests=self.pending_gang_resource_requests(),
            cluster_session_name=self.session_name,
        )
        if self._constraint is not None:
            state.cluster_resource_constraints.append(self._constraint)
        return state

    # ------------------------------------------------------------------ rpc
    async def GetClusterResourceState(self, request, context):
        return apb.GetClusterResourceStateReply(cluster_resource_state=self.cluster_resource_state())

    async def ReportAutoscalingState(self, request, context):
        new = request.autoscaling_state
        if new.autoscaler_state_version >= self._autoscaling_state.autoscaler_state_version:
            self._autoscaling_state = new
        return apb.ReportAutoscalingStateReply()

    async def RequestClusterResourceConstraint(self, request, context):
        constraint = request.cluster_resource_constraint
        self._constraint = constraint if any(r.count for r in constraint.resource_requests) else None
        return apb.RequestClusterResourceConstraintReply()

    async def GetClusterStatus(self, request, context):
        return apb.GetClusterStatusReply(autoscaling_state=self._autoscaling_state,
                                         cluster_resource_state=self.cluster_resource_state())

    async def DrainNode(self, request, context):
        nodes = self.gcs.nodes
        info = nodes.node(request.node_id)
        if info is None or info.state == pb.GcsNodeInfo.DEAD:
            return apb.DrainNodeReply(is_accepted=True)
        body: msg.DrainRaylet = {"reason": int(request.reason), "reason_message": request.reason_message,
                                 "deadline_ms": int(request.deadline_timestamp_ms)}
        try:
            conn = await self._pool.get(f"{info.node_manager_address}:{info.raylet_tcp_port}")
            reply = await asyncio.wait_for(conn.request(msg.DRAIN_RAYLET, body), RAYLET_TIMEOUT_S)
        except (OSError, TimeoutError, framing.ConnectionLost, framing.RemoteError) as e:
            # Not reachable: it may be dying. Not accepted; the caller asks again (the request is idempotent).
            logger.warning("Draining node %s failed: %s", request.node_id.hex(), e)
            return apb.DrainNodeReply(is_accepted=False, rejection_reason_message=f"The raylet did not answer: {e}")
        if reply["accepted"]:
            nodes.set_draining(request.node_id)
            logger.info("Node %s is draining: %s", request.node_id.hex(),
                        request.reason_message or apb.DrainNodeReason.Name(request.reason))
        return apb.DrainNodeReply(is_accepted=reply["accepted"], rejection_reason_message=reply["rejection_reason"])

    def close(self) -> None:
        self._pool.close_all()
