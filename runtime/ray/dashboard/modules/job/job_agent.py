"""The node agent's job routes (Ray's `/api/job_agent/jobs/...`): for jobs the head placed on this node,
start the supervisor, stop it, and serve the driver logs (full and followed)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import psutil
from aiohttp import web

from ray.dashboard.modules.job.common import JobInfoStorage
from ray.dashboard.modules.job.job_runner import LocalJobRunner


class JobAgent:
    def __init__(self, runner: LocalJobRunner, storage: JobInfoStorage):
        self.runner = runner
        self.storage = storage

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/job_agent/jobs/{submission_id}/supervise", self.supervise)
        app.router.add_post("/api/job_agent/jobs/{submission_id}/stop", self.stop)
        app.router.add_get("/api/job_agent/jobs/{submission_id}/logs", self.logs)
        app.router.add_get("/api/job_agent/jobs/{submission_id}/logs/tail", self.tail)

    async def reap_forever(self) -> None:
        while True:  # exited supervisors must be waited for, or they linger as zombies
            self.runner.reap()
            await asyncio.sleep(1)

    async def stop_node_jobs(self, node_id: str, timeout_s: float) -> None:
        """The node is going away (`ray stop`): stop the jobs running here while the GCS can still
        record them as STOPPED, instead of leaving them to notice the GCS is gone."""
        jobs = await self.storage.list()
        pids = []
        for submission_id, info in jobs.items():
            if info.status.is_terminal() or info.driver_node_id != node_id:
                continue
            pid = self.runner.supervisor_pid(submission_id, info)
            if pid is not None and self.runner.signal_stop(submission_id, info):
                pids.append(pid)
        procs = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        await asyncio.to_thread(psutil.wait_procs, procs, timeout_s)

    async def supervise(self, req: web.Request) -> web.Response:
        submission_id = req.match_info["submission_id"]
        if await self.storage.get(submission_id) is None:
            return web.Response(status=404, text=f"Job {submission_id} does not exist")
        pid = self.runner.start_supervisor(submission_id)
        return web.json_response({"pid": pid})

    async def stop(self, req: web.Request) -> web.Response:
        submission_id = req.match_info["submission_id"]
        info = await self.storage.get(submission_id)
        if info is None:
            return web.Response(status=404, text=f"Job {submission_id} does not exist")
        return web.json_response({"stopped": self.runner.signal_stop(submission_id, info)})

    async def logs(self, req: web.Request) -> web.Response:
        submission_id = req.match_info["submission_id"]
        return web.json_response({"logs": await asyncio.to_thread(self.runner.get_logs, submission_id)})

    async def tail(self, req: web.Request) -> web.StreamResponse:
        submission_id = req.match_info["submission_id"]

        async def finished() -> bool:
            info = await self.storage.get(submission_id)
            return info is None or info.status.is_terminal()

        ws = web.WebSocketResponse()
        await ws.prepare(req)
        try:
            async for chunk in self.runner.follow_logs(submission_id, finished):
                if ws.closed:
                    break
                await ws.send_str(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        await ws.close()
        return ws
