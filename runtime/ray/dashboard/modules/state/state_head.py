"""The state API on the dashboard (Ray's `state_head.py`): `/api/v0/<resource>` lists, summaries and the task
timeline, with Ray's envelope `{"result": <ok>, "msg": <error>, "data": {"result": ...}}` (snake_case).

Bad input is a 400 whose `msg` says what was wrong: a limit above RAY_MAX_LIMIT_FROM_API_SERVER (10000) or not
a number, unequal numbers of filter keys/predicates/values, an unknown filter column or predicate, a bad
`summary_by`. A data source that does not answer is a 500 with its reason; more than
RAY_STATE_SERVER_MAX_HTTP_REQUEST (100) requests in flight is a 429.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ray._common import state_schema as ss
from ray._common.timeline import chrome_tracing_dump
from ray.dashboard.modules.state import summaries
from ray.dashboard.modules.state.aggregator import DataSourceUnavailable, StateAggregator

logger = logging.getLogger(__name__)

LIST_RESOURCES = ("actors", "jobs", "nodes", "placement_groups", "workers", "tasks", "objects", "runtime_envs",
                  "cluster_events")
# Filters the GCS applies itself for tasks (Ray's GCS-side task filters), the rest the dashboard applies.
_GCS_TASK_FILTERS = ("job_id", "task_id", "actor_id")


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def reply(status: int, message: str, result: Any, **extra: Any) -> web.Response:
    return web.json_response({"result": status == 200, "msg": message, "data": {"result": result, **extra}},
                             status=status, dumps=lambda v: json.dumps(v, default=str))


def _bool(value: str, name: str) -> bool:
    lowered = str(value).lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"Query parameter {name}={value!r} must be true/false (or 1/0).")


@dataclasses.dataclass
class ListOptions:
    limit: int
    timeout: float
    detail: bool
    exclude_driver: bool
    filters: list[tuple[str, str, str]]


def filters_from(req: web.Request) -> list[tuple[str, str, str]]:
    keys = req.query.getall("filter_keys", [])
    predicates = req.query.getall("filter_predicates", [])
    values = req.query.getall("filter_values", [])
    if not (len(keys) == len(predicates) == len(values)):
        raise ValueError(f"Got {len(keys)} filter_keys, {len(predicates)} filter_predicates and {len(values)} "
                         "filter_values; give one predicate and one value per key.")
    return list(zip(keys, predicates, values, strict=True))


def options_from(req: web.Request) -> ListOptions:
    max_limit = _env_int("RAY_MAX_LIMIT_FROM_API_SERVER", ss.RAY_MAX_LIMIT_FROM_API_SERVER)
    raw = req.query.get("limit")
    try:
        limit = int(raw) if raw is not None else ss.DEFAULT_LIMIT
    except ValueError:
        raise ValueError(f"limit={raw!r} is not an integer; give a number from 1 to {max_limit}.") from None
    if limit > max_limit:
        raise ValueError(f"Given limit {limit} exceeds the supported limit {max_limit}. Use a lower limit, or set "
                         "the `RAY_MAX_LIMIT_FROM_API_SERVER` environment variable to a larger value.")
    if limit < 1:
        raise ValueError(f"Given limit {limit} must be a positive integer (1 to {max_limit}).")
    raw_timeout = req.query.get("timeout", ss.DEFAULT_RPC_TIMEOUT)
    try:
        timeout = float(raw_timeout)
    except ValueError:
        raise ValueError(f"timeout={raw_timeout!r} is not a number of seconds.") from None
    if timeout <= 0:
        raise ValueError(f"timeout={raw_timeout!r} must be a positive number of seconds.")
    return ListOptions(limit=limit, timeout=timeout, detail=_bool(req.query.get("detail", "false"), "detail"),
                       exclude_driver=_bool(req.query.get("exclude_driver", "true"), "exclude_driver"),
                       filters=filters_from(req))


class StateHead:
    def __init__(self, aggregator: StateAggregator):
        self.aggregator = aggregator
        self.max_in_flight = _env_int("RAY_STATE_SERVER_MAX_HTTP_REQUEST", 100)
        self._in_flight = 0

    def add_routes(self, app: web.Application) -> None:
        for resource in LIST_RESOURCES:
            app.router.add_get(f"/api/v0/{resource}", self._guard(self._list_handler(resource)))
        app.router.add_get("/api/v0/tasks/summarize", self._guard(self.summarize_tasks))
        app.router.add_get("/api/v0/actors/summarize", self._guard(self.summarize_actors))
        app.router.add_get("/api/v0/objects/summarize", self._guard(self.summarize_objects))
        app.router.add_get("/api/v0/tasks/timeline", self._guard(self.tasks_timeline))

    def _guard(self, handler: Callable[[web.Request], Awaitable[web.Response]]):
        async def guarded(req: web.Request) -> web.Response:
            if self._in_flight >= self.max_in_flight:
                return reply(429, f"Max number of in-progress requests={self.max_in_flight} reached. To set a "
                                  "higher limit, set environment variable: export "
                                  "RAY_STATE_SERVER_MAX_HTTP_REQUEST='xxx'. Max allowed = 1000", None)
            self._in_flight += 1
            try:
                return await handler(req)
            except ValueError as e:
                return reply(400, str(e), None)
            except DataSourceUnavailable as e:
                return reply(500, str(e), None)
            except Exception as e:  # noqa: BLE001 - the client gets the reason, the log the traceback
                logger.exception("State API request %s failed.", req.path_qs)
                return reply(500, f"Internal error of the state API: {e!r}. See dashboard.log for details.", None)
            finally:
                self._in_flight -= 1

        return guarded

    # ------------------------------------------------------------------ lists
    async def list_rows(self, resource: str, opts: ListOptions) -> ss.ListApiResponse:
        schema = ss.SCHEMA_OF[resource]
        ss.check_filters(opts.filters, schema)  # before any data is read: a bad filter is a 400 at once
        gcs_filters = {}
        if resource == "tasks":
            gcs_filters = {k.lower(): v for k, p, v in opts.filters if p == "=" and k.lower() in _GCS_TASK_FILTERS}
        rows, total, warnings = await self.aggregator.rows(resource, opts.timeout * 0.8,
                                                           exclude_driver=opts.exclude_driver, gcs_filters=gcs_filters)
        num_after_truncation = len(rows)
        rows = ss.apply_filters(rows, opts.filters, schema, opts.detail)
        num_filtered = len(rows)
        key = _SORT_KEY.get(resource)
        if key:
            rows.sort(key=lambda r: r.get(key) or "")
        rows = rows[: opts.limit]
        return ss.ListApiResponse(total=total, num_after_truncation=num_after_truncation, num_filtered=num_filtered,
                                  result=rows, warnings=warnings or None)

    def _list_handler(self, resource: str):
        async def handler(req: web.Request) -> web.Response:
            response = await self.list_rows(resource, options_from(req))
            # Shallow: the rows are fresh dicts already (asdict would deep-copy 1,000 actor rows every poll).
            return reply(200, "", {f.name: getattr(response, f.name) for f in dataclasses.fields(response)})

        return handler

    # ------------------------------------------------------------------ summaries
    async def _summary_rows(self, resource: str, req: web.Request, detail: bool = False) -> ss.ListApiResponse:
        timeout = float(req.query.get("timeout", ss.DEFAULT_RPC_TIMEOUT))
        opts = ListOptions(limit=ss.RAY_MAX_LIMIT_FROM_API_SERVER, timeout=timeout, detail=detail,
                           exclude_driver=True, filters=filters_from(req))
        return await self.list_rows(resource, opts)

    def _summary_reply(self, listed: ss.ListApiResponse, summary: dict) -> web.Response:
        return reply(200, "", {"total": listed.total, "num_after_truncation": listed.num_after_truncation,
                               "num_filtered": listed.num_filtered,
                               "result": {"node_id_to_summary": {"cluster": summary}},
                               "partial_failure_warning": "", "warnings": listed.warnings})

    async def summarize_tasks(self, req: web.Request) -> web.Response:
        summary_by = req.query.get("summary_by") or "func_name"
        if summary_by not in ("func_name", "task_name", "lineage"):
            raise ValueError('summary_by must be one of "func_name", "task_name", or "lineage".')
        listed = await self._summary_rows("tasks", req, detail=summary_by == "lineage")
        if summary_by == "lineage":
            return self._summary_reply(listed, summaries.tasks_by_lineage(listed.result))
        return self._summary_reply(listed, summaries.tasks_by_func_name(listed.result))

    async def summarize_actors(self, req: web.Request) -> web.Response:
        listed = await self._summary_rows("actors", req)
        return self._summary_reply(listed, summaries.actors_by_class(listed.result))

    async def summarize_objects(self, req: web.Request) -> web.Response:
        listed = await self._summary_rows("objects", req)
        return self._summary_reply(listed, summaries.objects_by_callsite(listed.result))

    # ------------------------------------------------------------------ timeline
    async def tasks_timeline(self, req: web.Request) -> web.Response:
        job_id = req.query.get("job_id") or None
        filters = [("job_id", "=", job_id)] if job_id else []
        listed = await self.list_rows("tasks", ListOptions(limit=ss.RAY_MAX_LIMIT_FROM_API_SERVER,
                                                           timeout=ss.DEFAULT_RPC_TIMEOUT, detail=True,
                                                           exclude_driver=True, filters=filters))
        headers = None
        if req.query.get("download") == "1":
            now = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
            headers = {"Content-Disposition": f'attachment; filename="timeline-{job_id}-{now}.json"'}
        return web.Response(text=json.dumps(chrome_tracing_dump(listed.result)), content_type="application/json",
                            headers=headers)


_SORT_KEY = {"actors": "actor_id", "placement_groups": "placement_group_id", "nodes": "node_id",
             "workers": "worker_id", "jobs": "job_id", "tasks": "task_id", "objects": "object_id"}
