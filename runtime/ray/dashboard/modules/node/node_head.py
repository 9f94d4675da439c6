"""The dashboard's UI data (Ray's node_head, actor_head, reporter_head and events endpoints):

    GET /nodes?view=summary             every node: physical stats (psutil, NVML) + raylet info, logical usage
    GET /nodes?view=hostNameList        the alive nodes' host names
    GET /nodes/{node_id}                one node with its workers (pid, CPU %, RSS, what it runs, GPU ids)
    GET /logical/actors[?ids=a,b]       actors by id, Ray's fields;  /logical/actors/{actor_id}
    GET /api/cluster_status[?format=1]  the `ray status` data (format=1: its text)
    GET /api/v0/cluster_metadata        versions and session
    GET /events[?job_id=]               recent cluster events (node added/dead, actor died, job finished)
    GET /api/metrics/history[?node_id=&since=&scope=cluster]   the head's bounded history of node and cluster
                                        metrics (scope=cluster: without the per-node series)
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from typing import Any

from aiohttp import web

from ray._common.cluster_status import DEBUG_AUTOSCALING_ERROR, status_text
from ray._version import version as ray_version
from ray.dashboard.modules.node.history import ClusterHistory
from ray.dashboard.modules.node.http_util import AgentClient, rest_response
from ray.protocol import actor_pb2, gcs_pb2

_MEMORY_LIKE = ("memory", "object_store_memory")


def logical_resources(total: dict[str, float], available: dict[str, float]) -> str:
    """Ray's per-node `nodeLogicalResources` text: `0.0/8.0 CPU` lines (memory in GiB). The raylet's
    `available` leaves out what is fully taken (a missing name is 0 available); with no report at all
    (`available` empty) nothing is counted as used."""
    lines = []
    for name in sorted(total, key=lambda k: ({"CPU": 0, "GPU": 1}.get(k, 3 if k in _MEMORY_LIKE else 2), k)):
        if name.startswith(("node:", "accelerator_type:")) or "_group_" in name:
            continue
        used = (total[name] - available.get(name, 0.0)) if available else 0.0
        if name in _MEMORY_LIKE:
            lines.append(f"{used / 2**30:.2f}/{total[name] / 2**30:.3f} GiB {name}")
        else:
            lines.append(f"{used:.1f}/{total[name]:.1f} {name}")
    return "\n".join(lines)


def _actor_row(a: actor_pb2.ActorTableData, repr_names: dict[int, str]) -> dict[str, Any]:
    address = json.loads(a.address_json) if a.address_json else {}
    tcp = address.get("tcp", "")
    return {
        "actorId": a.actor_id.hex(), "jobId": a.job_id.hex(), "pid": a.pid or None,
        "address": {"nodeId": a.node_id.hex(), "ipAddress": tcp.rpartition(":")[0],
                    "port": int(tcp.rpartition(":")[2] or 0), "workerId": address.get("worker_id", "")},
        "state": actor_pb2.ActorTableData.ActorState.Name(a.state), "name": a.name,
        "numRestarts": str(a.num_restarts), "className": a.class_name, "actorClass": a.class_name,
        "rayNamespace": a.ray_namespace, "isDetached": a.is_detached,
        "reprName": repr_names.get(a.pid, "") if a.pid else "", "exitDetail": a.death_cause,
        "placementGroupId": None, "requiredResources": dict(a.required_resources), "labelSelector": {}, "callSite": "",
        "timestamp": None, "startTime": None, "endTime": None,
    }


class NodeHead:
    def __init__(self, gcs: Any, session_dir: str):
        self._gcs = gcs
        self._session_dir = session_dir
        self.agents = AgentClient(gcs)
        self.history = ClusterHistory(gcs, self.agents)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/nodes", self.nodes)
        app.router.add_get("/nodes/{node_id}", self.node)
        app.router.add_get("/logical/actors", self.actors)
        app.router.add_get("/logical/actors/{actor_id}", self.actor)
        app.router.add_get("/api/cluster_status", self.cluster_status)
        app.router.add_get("/api/v0/cluster_metadata", self.cluster_metadata)
        app.router.add_get("/events", self.events)
        app.router.add_get("/api/metrics/history", self.metrics_history)

        async def start(app: web.Application) -> None:
            self.history.start()

        async def stop(app: web.Application) -> None:
            await self.history.stop()
            await self.agents.close()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)

    # ------------------------------------------------------------------ nodes
    async def _stats(self, node_id: str) -> dict[str, Any] | None:
        stats = self.history.latest.get(node_id)
        if stats is None:
            try:
                stats = await self.agents.get_json(node_id, "/api/node_stats")
            except ConnectionError:
                return None
        return stats

    def _summary(self, node: dict[str, Any], stats: dict[str, Any] | None) -> dict[str, Any]:
        raylet = {"node_id": node["NodeID"], "state": "ALIVE" if node["Alive"] else "DEAD",
                  "is_head_node": node["IsHeadNode"], "node_manager_address": node["NodeManagerAddress"],
                  "node_manager_hostname": node["NodeManagerHostname"], "node_manager_port": node["NodeManagerPort"],
                  "metrics_export_port": node["MetricsExportPort"], "node_name": node["NodeName"],
                  "start_time_ms": node["StartTimeMs"], "end_time_ms": node["EndTimeMs"],
                  "state_message": node["DeathReasonMessage"] or None, "labels": node["Labels"],
                  "resources_total": node["Resources"]}
        if stats is None:
            return {"raylet": raylet, "ip": node["NodeManagerAddress"], "hostname": node["NodeManagerHostname"]}
        physical = {k: v for k, v in stats.items() if k not in ("workers", "raylet", "components")}
        raylet.update({k: v for k, v in (stats.get("raylet") or {}).items()})
        raylet["object_store_used_memory"] = (stats.get("object_store") or {}).get("object_store_used_bytes", 0)
        physical["num_workers"] = len(stats.get("workers") or [])
        return {**physical, "raylet": raylet}

    async def _alive_and_dead(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._gcs.get_all_node_info)

    async def nodes(self, request: web.Request) -> web.Response:
        view = request.query.get("view", "summary")
        nodes = await self._alive_and_dead()
        if view == "hostNameList" or view == "hostnamelist":
            return rest_response(True, "Node hostname list fetched.",
                                 host_name_list=[n["NodeManagerHostname"] for n in nodes if n["Alive"]])
        if view != "summary":
            return rest_response(False, f"Unknown view {view!r}: use view=summary or view=hostNameList.", status=400)
        stats = await asyncio.gather(*(self._stats(n["NodeID"]) if n["Alive"] else asyncio.sleep(0)
                                       for n in nodes))
        summary = [self._summary(n, s) for n, s in zip(nodes, stats, strict=True)]
        logical = {}
        for n, s in zip(nodes, stats, strict=True):
            raylet = (s or {}).get("raylet") or {}
            if n["Alive"]:
                logical[n["NodeID"]] = logical_resources(raylet.get("total") or n["Resources"],
                                                         raylet.get("available") or {})
        return rest_response(True, "Node summary fetched.", summary=summary, node_logical_resources=logical)

    async def node(self, request: web.Request) -> web.Response:
        node_id = request.match_info["node_id"]
        nodes = {n["NodeID"]: n for n in await self._alive_and_dead()}
        node = nodes.get(node_id)
        if node is None:
            return rest_response(False, f"Node {node_id} not found: /nodes?view=summary lists the cluster's nodes.",
                                 status=404)
        stats = await self._stats(node_id) if node["Alive"] else None
        detail = self._summary(node, stats)
        workers = []
        for w in (stats or {}).get("workers", []):
            workers.append({**w, "core_worker_stats": [{"worker_id": w["worker_id"], "job_id": w["job_id"],
                                                        "actor_name": w.get("actor_name", ""),
                                                        "task_name": w.get("task_name", "")}]})
        detail["workers"] = workers
        raylet = (stats or {}).get("raylet") or {}
        detail["logical_resources"] = logical_resources(raylet.get("total") or node["Resources"],
                                                        raylet.get("available") or {}) if node["Alive"] else ""
        actors = await self._actor_rows()
        detail["actors"] = {a["actorId"]: a for a in actors if a["address"]["nodeId"] == node_id}
        return rest_response(True, "Node details fetched.", detail=detail)

    # ------------------------------------------------------------------ actors
    async def _actor_rows(self) -> list[dict[str, Any]]:
        reply = await asyncio.to_thread(self._gcs.call, self._gcs.stubs.actor.GetAllActorInfo,
                                        actor_pb2.GetAllActorInfoRequest())
        repr_names = {w["pid"]: w.get("actor_name", "") for s in self.history.latest.values()
                      for w in s.get("workers", [])}
        return [_actor_row(a, repr_names) for a in reply.actor_table_data]

    async def actors(self, request: web.Request) -> web.Response:
        rows = await self._actor_rows()
        ids = {i for i in request.query.get("ids", "").split(",") if i}
        if ids:
            rows = [r for r in rows if r["actorId"] in ids]
        return rest_response(True, "All actors fetched.", convert=False, actors={r["actorId"]: r for r in rows})

    async def actor(self, request: web.Request) -> web.Response:
        actor_id = request.match_info["actor_id"]
        rows = [r for r in await self._actor_rows() if r["actorId"] == actor_id]
        if not rows:
            return rest_response(False, f"Actor {actor_id} not found.", status=404)
        return rest_response(True, "Actor details fetched.", convert=False, detail=rows[0])

    # ------------------------------------------------------------------ cluster
    async def cluster_status(self, request: web.Request) -> web.Response:
        def error_text() -> str | None:
            error = self._gcs.internal_kv_get(DEBUG_AUTOSCALING_ERROR)
            return error.decode("utf-8", "replace") if error else None

        if request.query.get("format", "0") == "1":
            # What `ray status` prints: the autoscaler state service's view, then the autoscaler's error.
            text, error = await asyncio.to_thread(lambda: (status_text(self._gcs), error_text()))
            return rest_response(True, "Got formatted cluster status.", autoscaling_status=None,
                                 autoscaling_error=error, cluster_status=text)
        infos, usage, pg_load, error = await asyncio.to_thread(
            lambda: (self._gcs.get_all_node_info_proto(), self._gcs.get_all_resource_usage(),
                     self._gcs.get_placement_group_load(), error_text()))
        totals: dict[str, list[float]] = {}
        demand: dict[str, int] = {}
        for n in usage:
            for k, v in n.resources_total.items():
                entry = totals.setdefault(k, [0.0, 0.0])
                entry[0] += v - n.resources_available.get(k, 0.0)
                entry[1] += v
            for d in n.demands:
                key = json.dumps(dict(sorted(d.shape.items())))
                demand[key] = demand.get(key, 0) + d.num_ready_requests_queued + d.num_infeasible_requests_queued
        alive = [i for i in infos if i.state == gcs_pb2.GcsNodeInfo.ALIVE]
        report = {
            "load_metrics_report": {
                "usage": totals,
                "resource_demand": [[json.loads(k), n] for k, n in demand.items() if n],
                "pg_demand": [[{b_k: b_v for b in pg.bundles for b_k, b_v in b.shape.items()}, 1] for pg in pg_load],
                "request_demand": [],
                "node_types": [[dict(i.resources_total), 1] for i in alive],
            },
            "time": time.time(),
            "autoscaler_report": {
                "active_nodes": {f"node_{i.node_id.hex()}": 1 for i in alive},
                "pending_nodes": [], "pending_launches": {},
                "failed_nodes": [[i.node_manager_address, f"node_{i.node_id.hex()}"]
                                 for i in infos if i.state != gcs_pb2.GcsNodeInfo.ALIVE],
            },
        }
        return rest_response(True, "Got cluster status.", autoscaling_status=None, autoscaling_error=error,
                             cluster_status=report)

    async def cluster_metadata(self, request: web.Request) -> web.Response:
        reply = await asyncio.to_thread(self._gcs.check_alive)
        return rest_response(True, "", ray_version=ray_version, python_version=platform.python_version(),
                             session_name=os.path.basename(os.path.normpath(self._session_dir)),
                             git_commit="openray", os=sys.platform, cluster_id=reply.cluster_id.hex())

    async def events(self, request: web.Request) -> web.Response:
        job_id = request.query.get("job_id")
        events = list(self.history.events)
        if job_id:
            events = [e for e in events if e["custom_fields"].get("job_id") == job_id]
            return rest_response(True, "Job events fetched.", job_id=job_id, events=events)
        return rest_response(True, "All events fetched.", events={"global": events})

    async def metrics_history(self, request: web.Request) -> web.Response:
        node_id = request.query.get("node_id") or None
        try:
            since = float(request.query.get("since", 0))
        except ValueError:
            return rest_response(False, "since must be a Unix time in seconds.", status=400)
        if node_id is not None and node_id not in self.history.node_history:
            return rest_response(False, f"No history for node {node_id}: /nodes?view=summary lists the nodes.",
                                 status=404)
        return rest_response(True, "Metrics history fetched.", convert=False,
                             **self.history.history(node_id, since, request.query.get("scope") == "cluster"))
