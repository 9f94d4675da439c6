"""The head's memory of the cluster for the UI: every node's latest stats, a bounded history of node and
cluster metrics (charts without Prometheus), and recent cluster events.

A cluster point also holds the actors by state (the GCS's actor table) and the tasks by state (the GCS's
task-event table: `GetTaskStateCounts`, the `ray_tasks` counts the GCS keeps as events arrive, so asking costs
nothing).

A sampler asks every alive node's agent for its stats every `RAY_DASHBOARD_HISTORY_INTERVAL_S` (5 s) and
keeps `RAY_DASHBOARD_HISTORY_POINTS` (720: an hour) points per node and for the cluster in fixed-size
deques; the node table, job table and actor table are compared with the previous round for events (node
added / dead, actor died, job finished), of which the last `RAY_DASHBOARD_MAX_EVENTS` (1000) are kept.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections import deque
from typing import Any

from ray.protocol import actor_pb2, state_pb2

logger = logging.getLogger(__name__)


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def node_point(stats: dict[str, Any]) -> dict[str, Any]:
    """One chart point of a node, from its agent's stats."""
    total, available, percent, used = stats["mem"]
    gpus = stats.get("gpus") or []
    raylet = stats.get("raylet") or {}
    store = stats.get("object_store") or {}
    return {
        "t": stats["now"], "cpu": stats["cpu"], "mem_used": used, "mem_total": total,
        "disk_used": sum(d["used"] for d in list(stats["disk"].values())[:1]),
        "net_send_speed": stats["network"]["send_speed"], "net_receive_speed": stats["network"]["receive_speed"],
        "gpu_utilization": [g["utilizationGpu"] for g in gpus], "gram_used": [g["memoryUsed"] for g in gpus],
        "object_store_used": store.get("object_store_used_bytes", 0), "num_workers": raylet.get("num_workers", 0),
    }


class ClusterHistory:
    def __init__(self, gcs: Any, agents: Any, interval_s: float | None = None, points: int | None = None,
                 max_events: int | None = None):
        self._gcs = gcs
        self._agents = agents
        self.interval_s = interval_s or _env_number("RAY_DASHBOARD_HISTORY_INTERVAL_S", 5)
        self.points = int(points or _env_number("RAY_DASHBOARD_HISTORY_POINTS", 720))
        self.latest: dict[str, dict[str, Any]] = {}  # node id -> its agent's last stats
        self.nodes: dict[str, dict[str, Any]] = {}  # node id -> ray.nodes() row
        self.node_history: dict[str, deque] = {}
        self.cluster_history: deque = deque(maxlen=self.points)
        self.events: deque = deque(maxlen=int(max_events or _env_number("RAY_DASHBOARD_MAX_EVENTS", 1000)))
        self._event_ids = itertools.count(1)
        self._alive: set[str] | None = None
        self._jobs_dead: dict[bytes, bool] | None = None
        self._actors_dead: set[bytes] | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:
                logger.exception("Sampling the cluster for the dashboard failed.")
            await asyncio.sleep(self.interval_s)

    def add_event(self, label: str, message: str, severity: str = "INFO", **fields: Any) -> None:
        self.events.append({"event_id": str(next(self._event_ids)), "source_type": "GCS", "label": label,
                            "message": message, "severity": severity, "timestamp": time.time(),
                            "custom_fields": fields})

    async def sample(self) -> None:
        nodes = await asyncio.to_thread(self._gcs.get_all_node_info)
        self.nodes = {n["NodeID"]: n for n in nodes}
        alive = [n for n in nodes if n["Alive"]]
        results = await asyncio.gather(*(self._agents.get_json(n["NodeID"], "/api/node_stats") for n in alive),
                                       return_exceptions=True)
        for node, stats in zip(alive, results, strict=True):
            if isinstance(stats, BaseException):
                logger.debug("No stats from node %s: %s", node["NodeID"], stats)
                continue
            self.latest[node["NodeID"]] = stats
            self.node_history.setdefault(node["NodeID"], deque(maxlen=self.points)).append(node_point(stats))
        for node_id in list(self.latest):
            if node_id not in self.nodes or not self.nodes[node_id]["Alive"]:
                self.latest.pop(node_id, None)
        # Dead nodes' histories go once the dashboard keeps more than 10 of them (Ray's MAX_DEAD_NODES_TO_CACHE).
        dead = [n for n in self.node_history if n not in self.latest]
        for node_id in dead[: max(0, len(dead) - 10)]:
            del self.node_history[node_id]
        point = self._cluster_point(alive)
        self._node_events(nodes)
        try:
            point["actors"] = await self._job_and_actor_events()
            point["tasks"] = await asyncio.to_thread(self._task_counts)
        finally:
            self.cluster_history.append(point)

    def _task_counts(self) -> dict[str, int]:
        """Task attempts by state in the GCS's task-event table, drivers left out (a point of the Metrics
        view's "tasks by state" chart; the table keeps the newest `task_events_max_num_task_in_gcs`)."""
        reply = self._gcs.call(self._gcs.stubs.task_info.GetTaskStateCounts, state_pb2.GetTaskStateCountsRequest())
        counts: dict[str, int] = {}
        for state, _name, _is_retry, _job_id, n in json.loads(reply.counts_json or b"[]"):
            counts[state] = counts.get(state, 0) + n
        return counts

    def _cluster_point(self, alive: list[dict[str, Any]]) -> dict[str, Any]:
        point: dict[str, Any] = {"t": time.time(), "nodes_alive": len(alive)}
        for key in ("CPU", "GPU", "memory", "object_store_memory"):
            total = used = 0.0
            for node in alive:
                raylet = (self.latest.get(node["NodeID"]) or {}).get("raylet") or {}
                t = (raylet.get("total") or node["Resources"]).get(key, 0.0)
                total += t
                available = raylet.get("available")  # a name fully taken is left out: 0 available
                used += (t - available.get(key, 0.0)) if available else 0.0
            point[f"{key}_used"], point[f"{key}_total"] = used, total
        stats = [self.latest[n["NodeID"]] for n in alive if n["NodeID"] in self.latest]
        point["cpu_utilization"] = sum(s["cpu"] for s in stats) / len(stats) if stats else 0.0
        point["mem_used"] = sum(s["mem"][3] for s in stats)
        point["mem_total"] = sum(s["mem"][0] for s in stats)
        return point

    def _node_events(self, nodes: list[dict[str, Any]]) -> None:
        alive = {n["NodeID"] for n in nodes if n["Alive"]}
        previous, self._alive = self._alive, alive
        by_id = {n["NodeID"]: n for n in nodes}
        for node_id in sorted(alive - (previous or set())):
            n = by_id[node_id]
            self.add_event("NODE_ADDED", f"Node {node_id} ({n['NodeManagerAddress']}) joined the cluster"
                           + (" as the head." if n["IsHeadNode"] else "."), node_id=node_id,
                           ip=n["NodeManagerAddress"])
        for node_id in sorted((previous or set()) - alive):
            n = by_id.get(node_id) or {}
            reason = n.get("DeathReasonMessage") or "no reason recorded"
            self.add_event("NODE_DEAD", f"Node {node_id} ({n.get('NodeManagerAddress', '?')}) is dead: {reason}",
                           "ERROR", node_id=node_id, ip=n.get("NodeManagerAddress", ""))

    async def _job_and_actor_events(self) -> dict[str, int]:
        """Events for jobs that finished and actors that died since the last round; returns the number of
        actors in each state (a point of the Metrics view's "actors by state" chart)."""
        jobs = await asyncio.to_thread(self._gcs.get_all_job_info)
        dead_now = {j.job_id: j.is_dead for j in jobs}
        if self._jobs_dead is not None:
            for job in jobs:
                if job.is_dead and not self._jobs_dead.get(job.job_id, False):
                    self.add_event("JOB_FINISHED", f"Job {job.job_id.hex()} finished (driver pid {job.driver_pid}).",
                                   job_id=job.job_id.hex())
        self._jobs_dead = dead_now
        reply = await asyncio.to_thread(self._gcs.call, self._gcs.stubs.actor.GetAllActorInfo,
                                        actor_pb2.GetAllActorInfoRequest())
        dead = {a.actor_id for a in reply.actor_table_data if a.state == actor_pb2.ActorTableData.DEAD}
        if self._actors_dead is not None:
            for actor in reply.actor_table_data:
                if actor.actor_id in dead and actor.actor_id not in self._actors_dead:
                    self.add_event("ACTOR_DIED", f"Actor {actor.class_name} {actor.actor_id.hex()} died: "
                                   f"{actor.death_cause or 'no cause recorded'}", "WARNING",
                                   actor_id=actor.actor_id.hex(), job_id=actor.job_id.hex())
        self._actors_dead = dead
        counts: dict[str, int] = {}
        for actor in reply.actor_table_data:
            state = actor_pb2.ActorTableData.ActorState.Name(actor.state)
            counts[state] = counts.get(state, 0) + 1
        return counts

    def history(self, node_id: str | None = None, since: float = 0.0, cluster_only: bool = False) -> dict[str, Any]:
        nodes = {nid: [p for p in h if p["t"] > since] for nid, h in self.node_history.items()
                 if not cluster_only and (node_id is None or nid == node_id)}
        return {"interval_s": self.interval_s, "max_points": self.points,
                "cluster": [p for p in self.cluster_history if p["t"] > since], "nodes": nodes}
