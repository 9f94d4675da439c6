"""The node agent's reporter: this node's stats for the dashboard (`GET /api/node_stats`, token), the user
metrics its processes push (`POST /api/metrics/push`, token) and Prometheus text (`GET /metrics` on the
metrics export port, open as in Ray: Prometheus scrapes without credentials; nothing else is served there).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from typing import Any

from aiohttp import web

from ray.agent.metrics.exporter import RayCollector, render
from ray.agent.metrics.node_stats import DEFAULT_MIN_INTERVAL_S, NodeStatsCollector
from ray.agent.metrics.user_metrics import PushError, UserMetricsStore
from ray.protocol import actor_pb2, placement_group_pb2, state_pb2

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_PUSH_BYTES = 8 * 2**20


def cluster_counts(gcs: Any) -> dict[str, Any]:
    """The cluster-wide gauges the head's agent exports, from the GCS (a synchronous GcsClient)."""
    nodes = gcs.get_all_node_info()
    active: Counter = Counter()
    failed: Counter = Counter()
    for n in nodes:
        node_type = "ray.head.default" if n["IsHeadNode"] else "ray.worker.default"
        (active if n["Alive"] else failed)[node_type] += 1
    actors: Counter = Counter()
    for a in gcs.call(gcs.stubs.actor.GetAllActorInfo, actor_pb2.GetAllActorInfoRequest()).actor_table_data:
        actors[(actor_pb2.ActorTableData.ActorState.Name(a.state), a.class_name, a.job_id.hex())] += 1
    reply = gcs.call(gcs.stubs.task_info.GetTaskStateCounts, state_pb2.GetTaskStateCountsRequest())
    tasks = {tuple(row[:4]): row[4] for row in json.loads(reply.counts_json or b"[]")}
    groups: Counter = Counter()
    reply = gcs.call(gcs.stubs.placement_group.GetAllPlacementGroup, placement_group_pb2.GetAllPlacementGroupRequest())
    for pg in reply.placement_group_table_data:
        groups[placement_group_pb2.PlacementGroupTableData.PlacementGroupState.Name(pg.state)] += 1
    return {"active": dict(active), "failed": dict(failed), "pending": {}, "actors": dict(actors), "tasks": tasks,
            "placement_groups": dict(groups), "is_head_of": {n["NodeID"]: n["IsHeadNode"] for n in nodes}}


class Reporter:
    def __init__(self, node_id: str, node_ip: str, session_dir: str, gcs_client_factory):
        self.node_id = node_id
        self.stats = NodeStatsCollector(node_id, node_ip, session_dir)
        self.user_metrics = UserMetricsStore()
        self.collector = RayCollector(os.path.basename(os.path.normpath(session_dir)), is_head=False)
        self._gcs = gcs_client_factory
        self._is_head: bool | None = None
        self._cluster: dict[str, Any] | None = None
        self._cluster_at = 0.0
        self._cluster_lock = asyncio.Lock()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/node_stats", self._node_stats)
        app.router.add_post("/api/metrics/push", self._push)

    def add_metrics_routes(self, app: web.Application) -> None:
        app.router.add_get(METRICS_PATH, self._metrics)

    async def _node_stats(self, request: web.Request) -> web.Response:
        return web.json_response(await self.stats.sample())

    async def _push(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > _MAX_PUSH_BYTES:
            return web.Response(status=413, text=f"A metrics push may be at most {_MAX_PUSH_BYTES} bytes.")
        try:
            self.user_metrics.push(json.loads(await request.read()))
        except (ValueError, PushError) as e:
            return web.Response(status=400, text=f"Bad metrics push: {e}")
        return web.Response(text="ok")

    async def _cluster_sample(self) -> dict[str, Any] | None:
        """Cluster gauges, on the head's agent only (asked of the GCS at most every few seconds)."""
        if self._is_head is False:
            return None
        async with self._cluster_lock:
            if self._cluster is None or time.monotonic() - self._cluster_at >= DEFAULT_MIN_INTERVAL_S:
                try:
                    counts = await asyncio.to_thread(cluster_counts, self._gcs())
                except Exception as e:
                    logger.warning("Could not read the cluster's state from the GCS for metrics: %s", e)
                    return self._cluster
                self._is_head = counts.pop("is_head_of").get(self.node_id)
                self._cluster, self._cluster_at = counts, time.monotonic()
        return self._cluster if self._is_head else None

    async def _metrics(self, request: web.Request) -> web.Response:
        self.collector.node = await self.stats.sample()
        self.collector.cluster = await self._cluster_sample()
        self.collector.is_head = bool(self._is_head)
        self.collector.user = self.user_metrics.processes()
        body = render(self.collector)
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})
