"""Ray's log endpoints on the dashboard, reaching files on every node through that node's agent:

    GET /api/v0/logs?node_id=|node_ip=&glob=*      {category: [file names]} of the node's log directory
    GET /api/v0/logs/file?...                      a file's last `lines` (default 1000)
    GET /api/v0/logs/stream?...                    ... then its new lines as they are written

A file is named by node_id or node_ip plus filename, or found from actor_id (its worker's file), task_id (with
attempt_number, default 0: the part of its worker's file the attempt wrote, from its task events), pid (with a
node), or submission_id (the job's driver log); `suffix` out|err picks a worker's stdout or stderr. Output is
text/plain in Ray's `leading_1` format (each chunk prefixed by b"1") unless format=text. Bad input (no node,
unknown node, a file name with `..` or an absolute path, a missing file) is a 4xx saying what was wrong
before anything is streamed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from ray._common import log_files
from ray.dashboard.modules.job.common import JOB_LOGS_FILE_TEMPLATE, JobInfoStorage
from ray.dashboard.modules.node.http_util import AgentClient, rest_response
from ray.protocol import actor_pb2, state_pb2


class LogRequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class LogHead:
    def __init__(self, gcs: Any, agents: AgentClient):
        self._gcs = gcs
        self._agents = agents

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v0/logs", self.list_logs)
        app.router.add_get("/api/v0/logs/file", self.get_file)
        app.router.add_get("/api/v0/logs/stream", self.stream)

    # ------------------------------------------------------------------ finding the node and file
    async def _node_id(self, query: Any, required: bool = True) -> str | None:
        node_id, node_ip = query.get("node_id"), query.get("node_ip")
        if not node_id and not node_ip:
            if required:
                raise LogRequestError(400, "Both node_id and node_ip are not given: pass node_id=<hex id> or "
                                           "node_ip=<address> (ray.nodes() or /nodes?view=summary lists them).")
            return None
        nodes = await asyncio.to_thread(self._gcs.get_all_node_info)
        for n in nodes:
            if n["Alive"] and (n["NodeID"] == node_id or (not node_id and n["NodeManagerAddress"] == node_ip)):
                return n["NodeID"]
        what = f"node_id={node_id}" if node_id else f"node_ip={node_ip}"
        raise LogRequestError(404, f"No alive node with {what}: ray.nodes() lists the cluster's nodes.")

    async def _find_worker_file(self, node_id: str, pid: int, suffix: str) -> str:
        listing = await self._agents.get_json(node_id, "/api/v0/logs/list_local", glob=f"worker-*-{pid}.{suffix}")
        if not listing["files"]:
            raise LogRequestError(404, f"No worker log (.{suffix}) for pid {pid} on node {node_id}.")
        return listing["files"][0]

    async def _task_target(self, task_id: str, attempt: str, suffix: str) -> tuple[str, str, int, int | None]:
        """(node id, the worker's file, where the attempt's output starts, where it ends) of a task, from its task
        events (Ray's `_resolve_task_filename`, with Ray's messages)."""
        try:
            attempt_number = int(attempt or 0)
        except ValueError:
            raise LogRequestError(400, f"attempt_number must be an integer, got {attempt!r}.") from None
        request = state_pb2.GetTaskEventsRequest(task_ids=[task_id], exclude_driver=False)
        reply = await asyncio.to_thread(self._gcs.call, self._gcs.stubs.task_info.GetTaskEvents, request)
        rows = json.loads(reply.tasks_json)
        if not rows:
            raise LogRequestError(404, f"Could not find log file for task: {task_id} (attempt {attempt_number}) with "
                                       f"suffix: {suffix}")
        task = next((r for r in rows if r["attempt_number"] == attempt_number), None)
        if task is None:
            raise LogRequestError(404, f"Could not find log file for task attempt:{task_id}({attempt_number})")
        if task["node_id"] is None:
            raise LogRequestError(404, f"Could not find log file for task attempt.{task_id}({attempt_number}) due to "
                                       "missing node info.")
        log_info = task["task_log_info"]
        if log_info is None and task["actor_id"] is not None:
            actor_id = task["actor_id"]
            raise LogRequestError(404, f"For actor task, please query actor log for actor({actor_id}): e.g. ray logs "
                                       f"actor --id {actor_id} . Or set RAY_ENABLE_RECORD_ACTOR_TASK_LOGGING=1 in "
                                       "actor's runtime env or when starting the cluster. Recording actor task's log "
                                       "could be expensive, so Ray turns it off by default.")
        if log_info is None:
            raise LogRequestError(404, f"Could not find log file for task attempt:{task_id}({attempt_number}).Worker "
                                       f"id = {task['worker_id']}, node id = {task['node_id']},log_info = None")
        return (task["node_id"], log_info[f"std{suffix}_file"], log_info[f"std{suffix}_start"],
                log_info.get(f"std{suffix}_end"))

    async def _target(self, query: Any) -> tuple[str, str, int, int | None]:
        """(node id, file name, start offset, end offset) the request names (the whole file: 0, None)."""
        suffix = query.get("suffix", "out")
        if suffix not in ("out", "err"):
            raise LogRequestError(400, f"suffix must be 'out' or 'err', got {suffix!r}.")
        if query.get("task_id") and not query.get("filename"):
            return await self._task_target(query["task_id"], query.get("attempt_number", "0"), suffix)
        node_id, filename = await self._file_target(query, suffix)
        return node_id, filename, 0, None

    async def _file_target(self, query: Any, suffix: str) -> tuple[str, str]:
        if query.get("filename"):
            filename = query["filename"]
            try:  # refuse a bad name here already: the same rule the agent applies
                log_files.resolve("/nonexistent-logs-root", filename)
            except log_files.BadLogFileName as e:
                raise LogRequestError(400, str(e)) from None
            except log_files.LogFileNotFound:
                pass
            return await self._node_id(query), filename
        if query.get("actor_id"):
            actor_id = query["actor_id"]
            try:
                raw = bytes.fromhex(actor_id)
            except ValueError:
                raise LogRequestError(400, f"actor_id {actor_id!r} is not a hex actor id.") from None
            reply = await asyncio.to_thread(self._gcs.call, self._gcs.stubs.actor.GetActorInfo,
                                            actor_pb2.GetActorInfoRequest(actor_id=raw))
            if not reply.found:
                raise LogRequestError(404, f"Actor {actor_id} not found.")
            if not reply.actor.pid or not reply.actor.node_id:
                raise LogRequestError(404, f"Actor {actor_id} has not been placed on a worker yet.")
            node_id = reply.actor.node_id.hex()
            return node_id, await self._find_worker_file(node_id, reply.actor.pid, suffix)
        if query.get("pid"):
            try:
                pid = int(query["pid"])
            except ValueError:
                raise LogRequestError(400, f"pid must be an integer, got {query['pid']!r}.") from None
            node_id = await self._node_id(query)
            return node_id, await self._find_worker_file(node_id, pid, suffix)
        if query.get("submission_id"):
            submission_id = query["submission_id"]
            info = await asyncio.to_thread(JobInfoStorage(self._gcs).get_sync, submission_id)
            if info is None:
                raise LogRequestError(404, f"Job {submission_id} not found.")
            node_id = info.driver_node_id or await self._head_node_id()
            return node_id, JOB_LOGS_FILE_TEMPLATE.format(submission_id=submission_id)
        raise LogRequestError(400, "Say which log: filename (with node_id or node_ip), actor_id, task_id, pid (with "
                                   "node_id or node_ip) or submission_id.")

    async def _head_node_id(self) -> str:
        nodes = await asyncio.to_thread(self._gcs.get_all_node_info)
        heads = [n["NodeID"] for n in nodes if n["IsHeadNode"] and n["Alive"]]
        if not heads:
            raise LogRequestError(404, "The head node is not alive.")
        return heads[0]

    # ------------------------------------------------------------------ handlers
    async def list_logs(self, request: web.Request) -> web.Response:
        try:
            node_id = await self._node_id(request.query)
            listing = await self._agents.get_json(node_id, "/api/v0/logs/list_local",
                                                  glob=request.query.get("glob", "*"))
        except LogRequestError as e:
            return rest_response(False, str(e), status=e.status)
        except ConnectionError as e:
            return rest_response(False, str(e), status=503)
        return rest_response(True, "", convert=False, result=log_files.categorize(listing["files"]))

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, follow=False)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, follow=True)

    async def _serve(self, request: web.Request, follow: bool) -> web.StreamResponse:
        query = request.query
        leading_1 = query.get("format", "leading_1") != "text"
        try:
            lines = int(query.get("lines", 1000))
        except ValueError:
            return web.Response(status=400, text=f"lines must be an integer, got {query.get('lines')!r}.")
        try:
            node_id, filename, start, end = await self._target(query)
            agent = await self._agents.agent(node_id)
        except LogRequestError as e:
            return web.Response(status=e.status, text=str(e))
        except ConnectionError as e:
            return web.Response(status=503, text=str(e))
        if agent is None:
            return web.Response(status=503, text=f"No agent is registered for node {node_id}.")
        path = "/api/v0/logs/stream_local" if follow else "/api/v0/logs/file_local"
        params = {"filename": filename, "lines": str(lines), "interval": query.get("interval", "0.5")}
        if start or end is not None:  # a task's part of its worker's log
            params["start_offset"] = str(start)
            if end is not None:
                params["end_offset"] = str(end)
        timeout = aiohttp.ClientTimeout(total=None if follow else float(query.get("timeout", 30)), sock_connect=5)
        response: web.StreamResponse | None = None
        try:
            async with self._agents.session().get(f"{agent.http_address}{path}", params=params,
                                                  timeout=timeout) as reply:
                if reply.status != 200:
                    return web.Response(status=reply.status, text=await reply.text())
                response = web.StreamResponse(headers={"Content-Type": "text/plain"})
                await response.prepare(request)
                async for chunk in reply.content.iter_any():
                    await response.write((b"1" + chunk) if leading_1 else chunk)
        except (TimeoutError, aiohttp.ClientError, ConnectionResetError) as e:
            if response is None:
                return web.Response(status=503, text=f"Could not read the log from node {node_id}: {e!r}")
            if leading_1:
                try:
                    await response.write(b"0" + f"Reading the log from node {node_id} failed: {e!r}".encode())
                except (ConnectionResetError, RuntimeError):
                    pass
        if response is None:
            response = web.Response(status=500, text="no response")
        return response
