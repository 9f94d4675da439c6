"""Node table: registration, the cluster resource view, and health checks.

Each raylet's periodic `ReportResourceUsage` (every `raylet_report_resources_period_ms`, 100 ms) doubles as its
heartbeat; it also says how long the node has been idle (and why not), and whether it is draining, which the
autoscaler state service reads. A node that misses `health_check_failure_threshold` periods of
`health_check_period_ms` is declared dead, published on the NODE_INFO channel and left in the table as DEAD (as
Ray keeps dead nodes in `ray.nodes()`), with Ray's death reason (UNEXPECTED_TERMINATION, "health check failed due
to missing too many heartbeats").

A raylet whose reports are late (LATE_REPORT_S) is probed: a TCP connect to its framed port, closed at once.
Refused twice in a row (PROBE_INTERVAL_S apart, no report in between) means nothing listens there any more:
the raylet process is gone (a SIGKILLed process's listening socket is closed by the kernel at once), and the
node is declared dead then, with the same reason, instead of after the whole grace period. A raylet that is
only slow or stopped still has its port accepting connections, and a host that is unreachable refuses
nothing: both keep the full grace period.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ray._common import framing
from ray._common.config import config
from ray.gcs.pubsub import Publisher
from ray.gcs.storage import StoreClient
from ray.protocol import gcs_pb2 as pb
from ray.protocol import gcs_pb2_grpc
from ray.protocol import messages as msg

logger = logging.getLogger(__name__)

NODE_TABLE = "NODE"
NODE_CHANNEL = "NODE_INFO"
# How long reports older than a bundle message the GCS sent are kept from overwriting its view.
STALE_REPORTS_TRUSTED_AFTER_S = 10.0
# Ray's NodeDeathInfo.Reason values (`ray.nodes()[i]["DeathReason"]`) and its health-check death message.
EXPECTED_TERMINATION, UNEXPECTED_TERMINATION = 1, 2
HEALTH_CHECK_FAILED = "health check failed due to missing too many heartbeats"
# A raylet silent this long (10 of its report periods at least) has its port probed; the probes run this often.
LATE_REPORT_S = 1.0
PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1.0
REFUSALS_TO_DIE = 2


class NodeManager(gcs_pb2_grpc.NodeInfoGcsServiceServicer):
    def __init__(self, storage: StoreClient, publisher: Publisher, cluster_id: bytes, ray_version: str):
        self._storage = storage
        self._publisher = publisher
        self.cluster_id = cluster_id
        self._ray_version = ray_version
        self._nodes: dict[bytes, pb.GcsNodeInfo] = {}
        self._usage: dict[bytes, pb.NodeResources] = {}
        self._bundle_messages_sent: dict[bytes, int] = {}  # node -> placement group bundle messages sent to it
        self._stale_since: dict[bytes, float] = {}  # node -> when its reports began to lag a bundle message
        self._last_seen: dict[bytes, float] = {}
        # From each alive node's last report: (idle duration ms, node activity), and the draining nodes.
        self._idle: dict[bytes, tuple[int, list[str]]] = {}
        self._draining: set[bytes] = set()
        self._dead_order: list[bytes] = []  # dead nodes, oldest first (kept up to maximum_gcs_dead_node_cached_count)
        self._restored: set[bytes] = set()  # alive in storage, not reported since this GCS started
        # Late nodes whose raylet port refused a probe: node -> (its last report then, refusals in a row).
        self._refused: dict[bytes, tuple[float, int]] = {}
        self.on_node_dead: list = []  # callbacks(node_id: bytes), e.g. the actor manager's
        self.placement_group_load = list  # () -> [PlacementGroupDemand]: pending groups, set by their manager

    async def load(self) -> None:
        for value in (await self._storage.get_all(NODE_TABLE)).values():
            info = pb.GcsNodeInfo.FromString(value)
            self._nodes[info.node_id] = info
            if info.state == pb.GcsNodeInfo.ALIVE:
                # After a GCS restart every alive node gets a fresh grace period to report in.
                self._last_seen[info.node_id] = time.monotonic()
                self._restored.add(info.node_id)

    async def keep_restored_nodes_alive(self) -> None:
        """After a restart, a node from storage whose raylet has not reported yet counts as seen while its
        raylet answers a framed connect (Ray's GCS health-checks raylets itself), however long the raylet
        takes to find a GCS that moved (a new head pod's IP: DNS re-resolution, whose retries back off to
        minutes while the head's Service has no ready endpoint). A raylet gives up on its own after its
        gcs_rpc_server_reconnect_timeout_s (600 s on KubeRay workers) and then stops answering. A node whose
        raylet does not answer is declared dead as usual."""
        period = config().health_check_period_ms / 1000

        async def probe(node_id: bytes) -> None:
            info = self._nodes.get(node_id)
            if info is None or info.state == pb.GcsNodeInfo.DEAD:
                self._restored.discard(node_id)
                return
            try:  # through the authenticated handshake: this node's raylet answers (not another one that
                # took its address and port since, such as a new head pod's), not just a port
                answer = await asyncio.wait_for(self._ask_node_id(info), 2)
            except (OSError, TimeoutError, framing.ConnectionLost, framing.RemoteError):
                return
            if answer == node_id.hex() and node_id in self._restored and info.state == pb.GcsNodeInfo.ALIVE:
                self._last_seen[node_id] = time.monotonic()

        while self._restored:
            # At once, so a node whose address no longer answers (its pod is gone) does not delay the others.
            await asyncio.gather(*(probe(node_id) for node_id in list(self._restored)))
            await asyncio.sleep(period)

    @staticmethod
    async def _ask_node_id(info: pb.GcsNodeInfo) -> str:
        conn = await framing.connect(f"{info.node_manager_address}:{info.raylet_tcp_port}")
        try:
            return (await conn.request(msg.GET_NODE_STATS, None))["node_id"]
        finally:
            conn.close()

    def alive_nodes(self) -> list[pb.GcsNodeInfo]:
        return [n for n in self._nodes.values() if n.state == pb.GcsNodeInfo.ALIVE]

    def node(self, node_id: bytes) -> pb.GcsNodeInfo | None:
        return self._nodes.get(node_id)

    def usage(self) -> dict[bytes, pb.NodeResources]:
        return self._usage

    def all_nodes(self) -> list[pb.GcsNodeInfo]:
        return list(self._nodes.values())

    def idle_state(self, node_id: bytes) -> tuple[int, list[str]]:
        """(ms the node has been idle, 0 while busy; why it is busy), as its raylet last reported."""
        return self._idle.get(node_id, (0, []))

    def is_draining(self, node_id: bytes) -> bool:
        return node_id in self._draining

    def set_draining(self, node_id: bytes) -> None:
        """A drain was accepted: schedulers (raylets through the report replies, the GCS's own) skip the node."""
        if node_id in self._usage:
            self._draining.add(node_id)
            self._usage[node_id].is_draining = True

    def schedulable(self, node_id: bytes) -> bool:
        """Alive and not draining: new work may go there."""
        return node_id in self._usage and node_id not in self._draining

    async def RegisterNode(self, request, context):
        info = pb.GcsNodeInfo()
        info.CopyFrom(request.node_info)
        info.state = pb.GcsNodeInfo.ALIVE
        info.start_time_ms = int(time.time() * 1000)
        self._nodes[info.node_id] = info
        self._last_seen[info.node_id] = time.monotonic()
        self._usage[info.node_id] = pb.NodeResources(
            node_id=info.node_id,
            resources_total=dict(info.resources_total),
            resources_available=dict(info.resources_total),
            node_manager_address=info.node_manager_address,
        )
        await self._storage.put(NODE_TABLE, info.node_id, info.SerializeToString())
        self._publisher.publish(NODE_CHANNEL, info.node_id, info.SerializeToString())
        logger.info("Registered node %s at %s", info.node_id.hex(), info.node_manager_address)
        return pb.RegisterNodeReply()

    async def UnregisterNode(self, request, context):
        await self.mark_dead(request.node_id, request.reason or "The node was stopped.")
        return pb.UnregisterNodeReply()

    async def mark_dead(self, node_id: bytes, reason: str, reason_code: int = EXPECTED_TERMINATION) -> None:
        info = self._nodes.get(node_id)
        if info is None or info.state == pb.GcsNodeInfo.DEAD:
            return
        info.state = pb.GcsNodeInfo.DEAD
        info.end_time_ms = int(time.time() * 1000)
        info.death_reason = reason
        info.death_reason_code = reason_code
        self._usage.pop(node_id, None)
        self._last_seen.pop(node_id, None)
        self._refused.pop(node_id, None)
        self._idle.pop(node_id, None)
        self._draining.discard(node_id)
        await self._storage.put(NODE_TABLE, node_id, info.SerializeToString())
        self._publisher.publish(NODE_CHANNEL, node_id, info.SerializeToString())
        logger.warning("Node %s is dead: %s", node_id.hex(), reason)
        self._dead_order.append(node_id)
        while len(self._dead_order) > config().maximum_gcs_dead_node_cached_count:
            old = self._dead_order.pop(0)
            self._nodes.pop(old, None)
            await self._storage.delete(NODE_TABLE, old)
        for callback in self.on_node_dead:
            await callback(node_id)

    async def GetAllNodeInfo(self, request, context):
        return pb.GetAllNodeInfoReply(node_info_list=list(self._nodes.values()))

    async def CheckAlive(self, request, context):
        return pb.CheckAliveReply(ray_version=self._ray_version, cluster_id=self.cluster_id)

    async def ReportResourceUsage(self, request, context):
        info = self._nodes.get(request.node_id)
        if info is None or info.state == pb.GcsNodeInfo.DEAD:
            # A node declared dead must not come back under the same id; the raylet exits.
            return pb.ReportResourceUsageReply(node_is_dead=True)
        self._last_seen[request.node_id] = time.monotonic()
        if request.is_draining:
            self._draining.add(request.node_id)
        self._idle[request.node_id] = (request.idle_duration_ms, list(request.node_activity))
        available, total = request.resources_available, request.resources_total
        if self._predates_bundle_change(request):
            previous = self._usage[request.node_id]
            available, total = previous.resources_available, previous.resources_total
        self._restored.discard(request.node_id)
        self._usage[request.node_id] = pb.NodeResources(
            node_id=request.node_id,
            resources_available=dict(available),
            resources_total=dict(total),
            demands=list(request.demands),
            node_manager_address=info.node_manager_address,
            object_store_used_bytes=request.object_store_used_bytes,
            is_draining=request.node_id in self._draining,
        )
        return pb.ReportResourceUsageReply(nodes=list(self._usage.values()))

    def bundle_message_sent(self, node_id: bytes) -> None:
        """The placement group manager sent a raylet a bundle message (and counts its effect in the view)."""
        self._bundle_messages_sent[node_id] = self._bundle_messages_sent.get(node_id, 0) + 1

    def _predates_bundle_change(self, request) -> bool:
        """A report made before the raylet handled a bundle message the GCS sent it: its resources are older
        than the GCS's view (which counts the change already), so they must not overwrite it. A message
        that never arrived would hold the view forever: after STALE_REPORTS_TRUSTED_AFTER_S the raylet's
        word wins again."""
        node_id = request.node_id
        sent = self._bundle_messages_sent.get(node_id, 0)
        if request.bundle_messages_handled >= sent or node_id not in self._usage:
            self._stale_since.pop(node_id, None)
            return False
        now = time.monotonic()
        if now - self._stale_since.setdefault(node_id, now) < STALE_REPORTS_TRUSTED_AFTER_S:
            return True
        logger.warning("Node %s has not handled %d bundle message(s) for %.0f s; taking its report as it is.",
                       node_id.hex(), sent - request.bundle_messages_handled, STALE_REPORTS_TRUSTED_AFTER_S)
        self._bundle_messages_sent[node_id] = request.bundle_messages_handled
        self._stale_since.pop(node_id, None)
        return False

    async def GetAllResourceUsage(self, request, context):
        return pb.GetAllResourceUsageReply(nodes=list(self._usage.values()),
                                           placement_group_load=self.placement_group_load())

    async def run_health_checks(self) -> None:
        cfg = config()
        period = cfg.health_check_period_ms / 1000
        deadline = period * cfg.health_check_failure_threshold
        late_after = max(LATE_REPORT_S, 10 * cfg.raylet_report_resources_period_ms / 1000)
        while True:
            await asyncio.sleep(min(period, PROBE_INTERVAL_S))
            now = time.monotonic()
            late = []
            for node_id, seen in list(self._last_seen.items()):
                if now - seen > deadline:
                    logger.warning("No report from node %s's raylet for %.1f s.", node_id.hex(), now - seen)
                    await self.mark_dead(node_id, HEALTH_CHECK_FAILED, UNEXPECTED_TERMINATION)
                elif now - seen > late_after:
                    late.append((node_id, seen))
                else:
                    self._refused.pop(node_id, None)
            if late:
                results = await asyncio.gather(*(self._probe(node_id, seen) for node_id, seen in late),
                                               return_exceptions=True)
                for (node_id, _), result in zip(late, results, strict=True):
                    if isinstance(result, Exception):
                        logger.warning("Probing node %s's raylet failed: %r", node_id.hex(), result)

    async def _probe(self, node_id: bytes, seen: float) -> None:
        """A late node: is its raylet's process still there? Dead at once when its port refused twice in a row
        with no report in between (see the module docstring); otherwise it keeps the grace period."""
        info = self._nodes.get(node_id)
        if info is None or info.state == pb.GcsNodeInfo.DEAD or not info.raylet_tcp_port:
            return
        accepted = await framing.probe(info.node_manager_address, info.raylet_tcp_port, PROBE_TIMEOUT_S)
        if self._last_seen.get(node_id) != seen:
            return  # it reported meanwhile (or died another way)
        if accepted is not False:
            self._refused.pop(node_id, None)
            return
        last, refusals = self._refused.get(node_id, (seen, 0))
        refusals = refusals + 1 if last == seen else 1
        self._refused[node_id] = (seen, refusals)
        if refusals >= REFUSALS_TO_DIE:
            logger.warning("Node %s's raylet stopped reporting %.1f s ago and its port %s:%d refuses connections: "
                           "its process is gone.", node_id.hex(), time.monotonic() - seen,
                           info.node_manager_address, info.raylet_tcp_port)
            await self.mark_dead(node_id, HEALTH_CHECK_FAILED, UNEXPECTED_TERMINATION)
