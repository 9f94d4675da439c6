"""Where the state API's rows come from: the GCS's tables (nodes, actors, placement groups, jobs, workers,
task events) and each node's raylet (objects), turned into Ray's row dicts (`ray._common.state_schema`)."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from ray._common import state_schema as ss
from ray.protocol import actor_pb2 as apb
from ray.protocol import gcs_pb2 as pb
from ray.protocol import placement_group_pb2 as ppb
from ray.protocol import state_pb2 as spb

# The dashboard keeps at most this many dead actors in its lists (Ray's env var and default).
MAX_ACTORS_TO_CACHE_ENV = "RAY_DASHBOARD_MAX_ACTORS_TO_CACHE"
DEFAULT_MAX_ACTORS_TO_CACHE = 1000


def max_actors_to_cache() -> int:
    try:
        return int(os.environ.get(MAX_ACTORS_TO_CACHE_ENV, DEFAULT_MAX_ACTORS_TO_CACHE))
    except ValueError:
        return DEFAULT_MAX_ACTORS_TO_CACHE


class DataSourceUnavailable(Exception):
    """The GCS (or a raylet) did not answer in time: the API answers 500 with this text."""


def _hex(b: bytes) -> str | None:
    return b.hex() if b else None


# Ray's NODE_QUERY_FAILURE_WARNING.
NODE_QUERY_FAILURE_WARNING = (
    "Failed to query data from {type}. Queried {total} {type} and {network_failures} {type} failed to reply. "
    "It is due to (1) {type} is unexpectedly failed. (2) {type} is overloaded. (3) There's an unexpected network "
    "issue. Please check the {log_command} to find the root cause.")


class StateAggregator:
    def __init__(self, gcs: Any, job_details: Callable[[], Awaitable[list[dict]]] | None = None,
                 objects: Callable[[float], Awaitable[tuple[list[dict], list[str]]]] | None = None,
                 agents: Any = None, cluster_events: Callable[[], list[dict]] | None = None):
        self._gcs = gcs
        self._job_details = job_details
        self._objects_source = objects
        self._agents = agents  # ray.dashboard.modules.node.http_util.AgentClient
        self._events_source = cluster_events

    async def _call(self, method: Callable, request: Any, timeout: float) -> Any:
        try:
            return await asyncio.to_thread(self._gcs.call, method, request, timeout)
        except ConnectionError as e:
            raise DataSourceUnavailable(
                f"Failed to query the GCS ({e}). The GCS may be down or overloaded; see gcs_server.out.") from e

    # ------------------------------------------------------------------ rows, per resource
    async def rows(self, resource: str, timeout: float, *, exclude_driver: bool = True,
                   gcs_filters: dict[str, str] | None = None) -> tuple[list[dict], int, list[str]]:
        """(rows with every column, total at the source, warnings)."""
        return await getattr(self, f"_{resource}")(timeout, exclude_driver=exclude_driver,
                                                   gcs_filters=gcs_filters or {})

    async def _nodes(self, timeout: float, **_: Any) -> tuple[list[dict], int, list[str]]:
        reply = await self._call(self._gcs.stubs.node.GetAllNodeInfo, pb.GetAllNodeInfoRequest(), timeout)
        rows = []
        for n in reply.node_info_list:
            alive = n.state == pb.GcsNodeInfo.ALIVE
            rows.append({
                "node_id": n.node_id.hex(), "node_ip": n.node_manager_address, "is_head_node": n.is_head_node,
                "state": "ALIVE" if alive else "DEAD", "state_message": None if alive else (n.death_reason or None),
                "node_name": n.node_name or n.node_manager_address, "resources_total": dict(n.resources_total),
                "labels": {"ray.io/node_id": n.node_id.hex(), **dict(n.labels)},
                "start_time_ms": n.start_time_ms or None, "end_time_ms": n.end_time_ms or None,
            })
        return rows, len(rows), []

    async def _actors(self, timeout: float, **_: Any) -> tuple[list[dict], int, list[str]]:
        reply = await self._call(self._gcs.stubs.actor.GetAllActorInfo, apb.GetAllActorInfoRequest(), timeout)
        state_name = apb.ActorTableData.ActorState.Name
        rows = []
        for a in reply.actor_table_data:
            dead = a.state == apb.ActorTableData.DEAD
            rows.append({
                "actor_id": a.actor_id.hex(), "class_name": a.class_name, "state": state_name(a.state),
                "job_id": a.job_id.hex(), "name": a.name, "node_id": _hex(a.node_id), "pid": a.pid or None,
                "ray_namespace": a.ray_namespace, "serialized_runtime_env": None,
                "required_resources": dict(a.required_resources),
                "death_cause": {"actor_died_error_context": {
                    "error_message": a.death_cause, "actor_id": a.actor_id.hex(), "class_name": a.class_name,
                    "name": a.name, "ray_namespace": a.ray_namespace, "pid": a.pid,
                    "node_ip_address": json.loads(a.address_json or "{}").get("tcp", ":").rsplit(":", 1)[0]}}
                if dead and a.death_cause else None,
                "is_detached": a.is_detached, "placement_group_id": None, "repr_name": "",
                "num_restarts": a.num_restarts, "num_restarts_due_to_lineage_reconstruction": 0,
                "num_restarts_due_to_node_preemption": 0, "call_site": None, "label_selector": {},
                "fallback_strategy": None,
            })
        # The newest dead actors only (RAY_DASHBOARD_MAX_ACTORS_TO_CACHE), in the GCS's order.
        dead = [i for i, r in enumerate(rows) if r["state"] == "DEAD"]
        keep = max_actors_to_cache()
        if len(dead) > keep:
            drop = set(dead[: len(dead) - keep])
            rows = [r for i, r in enumerate(rows) if i not in drop]
        return rows, len(rows), []

    async def _placement_groups(self, timeout: float, **_: Any) -> tuple[list[dict], int, list[str]]:
        reply = await self._call(self._gcs.stubs.placement_group.GetAllPlacementGroup,
                                 ppb.GetAllPlacementGroupRequest(), timeout)
        state_name = ppb.PlacementGroupTableData.PlacementGroupState.Name
        sched_name = ppb.PlacementGroupStats.SchedulingState.Name
        rows = []
        for g in reply.placement_group_table_data:
            st = g.stats
            rows.append({
                "placement_group_id": g.placement_group_id.hex(), "name": g.name,
                "creator_job_id": g.creator_job_id.hex(), "state": state_name(g.state),
                "bundles": [{"bundle_id": {"placement_group_id": g.placement_group_id.hex(),
                                           "bundle_index": b.bundle_index},
                             "unit_resources": dict(b.unit_resources), "node_id": _hex(b.node_id),
                             "label_selector": dict(b.label_selector)} for b in g.bundles],
                "is_detached": g.is_detached,
                "stats": {"end_to_end_creation_latency_ms": st.end_to_end_creation_latency_us / 1000,
                          "scheduling_latency_ms": st.scheduling_latency_us / 1000,
                          "scheduling_attempt": st.scheduling_attempt,
                          "highest_retry_delay_ms": st.highest_retry_delay_ms,
                          "scheduling_state": sched_name(st.scheduling_state)},
                "topology_strategy": None, "topology_assignments": None,
            })
        return rows, len(rows), []

    async def _jobs(self, timeout: float, **_: Any) -> tuple[list[dict], int, list[str]]:
        if self._job_details is None:
            return [], 0, []
        try:
            details = await asyncio.wait_for(self._job_details(), timeout)
        except (TimeoutError, ConnectionError) as e:
            raise DataSourceUnavailable(f"Failed to read the job table: {e}") from e
        columns = ss.JobState.list_columns()
        rows = [{c: d.get(c) for c in columns} for d in details]
        return rows, len(rows), []

    async def _workers(self, timeout: float, **_: Any) -> tuple[list[dict], int, list[str]]:
        reply = await self._call(self._gcs.stubs.worker_info.GetAllWorkerInfo,
                                 spb.GetAllWorkerInfoRequest(limit=ss.RAY_MAX_LIMIT_FROM_DATA_SOURCE), timeout)
        rows = [{
            "worker_id": w.worker_id, "is_alive": w.is_alive, "worker_type": w.worker_type,
            "exit_type": w.exit_type or None, "node_id": w.node_id, "ip": w.ip, "pid": w.pid,
            "exit_detail": w.exit_detail or None, "worker_launch_time_ms": w.worker_launch_time_ms or None,
            "worker_launched_time_ms": w.worker_launched_time_ms or None, "start_time_ms": w.start_time_ms or None,
            "end_time_ms": w.end_time_ms or None, "debugger_port": None, "num_paused_threads": None,
        } for w in reply.worker_table_data]
        return rows, reply.total, []

    async def _tasks(self, timeout: float, *, exclude_driver: bool = True,
                     gcs_filters: dict[str, str]) -> tuple[list[dict], int, list[str]]:
        req = spb.GetTaskEventsRequest(job_id=gcs_filters.get("job_id", ""), actor_id=gcs_filters.get("actor_id", ""),
                                       task_ids=[gcs_filters["task_id"]] if "task_id" in gcs_filters else [],
                                       limit=ss.RAY_MAX_LIMIT_FROM_DATA_SOURCE, exclude_driver=exclude_driver)
        reply = await self._call(self._gcs.stubs.task_info.GetTaskEvents, req, timeout)
        rows = json.loads(reply.tasks_json)
        warnings = []
        if reply.num_status_task_events_dropped:
            warnings.append(
                f"{reply.num_status_task_events_dropped} task attempts were dropped: the GCS keeps the newest "
                "RAY_task_events_max_num_task_in_gcs (default 100000) and each worker buffers at most "
                "RAY_task_events_max_num_status_events_buffer_on_worker between reports. Raise them to keep more.")
        if reply.num_total_stored > len(rows):
            warnings.append(f"The GCS holds {reply.num_total_stored} matching task attempts; "
                            f"{len(rows)} (RAY_MAX_LIMIT_FROM_DATA_SOURCE) were read.")
        return rows, reply.num_total_stored + reply.num_status_task_events_dropped, warnings

    async def _objects(self, timeout: float, **_: Any) -> tuple[list[dict], int, list[str]]:
        if self._objects_source is None:
            return [], 0, []
        rows, warnings = await self._objects_source(timeout)
        return rows, len(rows), warnings

    async def _runtime_envs(self, timeout: float, **_: Any) -> tuple[list[dict], int, list[str]]:
        """Every alive node's agent's runtime envs (Ray's list_runtime_envs): one row per env and node, the newest
        creation first (envs not created yet first of all)."""
        if self._agents is None:
            return [], 0, []
        nodes = await asyncio.to_thread(self._gcs.get_all_node_info)
        node_ids = [n["NodeID"] for n in nodes if n["Alive"]]
        replies = await asyncio.gather(*(self._agents.get_json(node_id, "/api/v0/runtime_envs_local", timeout_s=timeout)
                                         for node_id in node_ids), return_exceptions=True)
        rows: list[dict] = []
        total = failures = 0
        for node_id, reply in zip(node_ids, replies, strict=True):
            if isinstance(reply, BaseException):
                failures += 1
                continue
            total += reply["total"]
            rows.extend({**state, "node_id": node_id} for state in reply["runtime_env_states"])
        warnings = []
        if failures:
            warning = NODE_QUERY_FAILURE_WARNING.format(type="agent", total=len(node_ids), network_failures=failures,
                                                        log_command="dashboard_agent.log")
            if failures == len(node_ids):
                raise DataSourceUnavailable(warning)
            warnings.append(f"The returned data may contain incomplete result. {warning}")
        rows.sort(key=lambda r: float("inf") if r.get("creation_time_ms") is None else float(r["creation_time_ms"]),
                  reverse=True)
        return rows, total, warnings

    async def _cluster_events(self, timeout: float, **_: Any) -> tuple[list[dict], int, list[str]]:
        """The dashboard's recent cluster events (`/events`) as Ray's ClusterEventState rows, oldest first; `time`
        is the UTC time as Ray writes it (`str(datetime)`, to the second)."""
        if self._events_source is None:
            return [], 0, []
        rows = []
        for event in self._events_source():
            when = datetime.datetime.fromtimestamp(int(event["timestamp"]), datetime.UTC).replace(tzinfo=None)
            rows.append({**event, "time": str(when)})
        rows.sort(key=lambda r: r["timestamp"])
        return rows, len(rows), []
