"""Ray's job REST API on the dashboard (`/api/jobs/...`, `/api/packages/...`), same paths, JSON and codes."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback

import aiohttp
from aiohttp import web

from ray._common.runtime_env.packaging import PackageKV, gcs_storage_max_size
from ray.dashboard.modules.job.common import JobInfo
from ray.dashboard.modules.job.driver_jobs import read_driver_jobs
from ray.dashboard.modules.job.job_manager import JobManager, JobNotFoundError
from ray.dashboard.modules.job.models import JobDetails, JobSubmitRequest

logger = logging.getLogger(__name__)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json", status=status)


def _not_found(job_id: str) -> web.Response:
    return web.Response(text=f"Job {job_id} does not exist", status=404)


class JobHead:
    def __init__(self, manager: JobManager, kv: PackageKV):
        self.manager = manager
        self.kv = kv

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/packages/{protocol}/{package_name}", self.get_package)
        app.router.add_put("/api/packages/{protocol}/{package_name}", self.upload_package)
        app.router.add_post("/api/jobs/", self.submit_job)
        app.router.add_get("/api/jobs/", self.list_jobs)
        app.router.add_get("/api/jobs/{job_or_submission_id}", self.get_job_info)
        app.router.add_post("/api/jobs/{job_or_submission_id}/stop", self.stop_job)
        app.router.add_delete("/api/jobs/{job_or_submission_id}", self.delete_job)
        app.router.add_get("/api/jobs/{job_or_submission_id}/logs", self.get_job_logs)
        app.router.add_get("/api/jobs/{job_or_submission_id}/logs/tail", self.tail_job_logs)

    async def get_package(self, req: web.Request) -> web.Response:
        uri = f"{req.match_info['protocol']}://{req.match_info['package_name']}"
        try:
            exists = await asyncio.to_thread(self.kv.internal_kv_exists, uri.encode(), None)
        except Exception:
            return web.Response(text=traceback.format_exc(), status=500)
        if not exists:
            return web.Response(text=f"Package {uri} does not exist", status=404)
        return web.Response()

    async def upload_package(self, req: web.Request) -> web.Response:
        uri = f"{req.match_info['protocol']}://{req.match_info['package_name']}"
        if req.match_info["protocol"] != "gcs":
            return web.Response(text=f"Only gcs:// packages can be uploaded, got {uri}.", status=400)
        data = await req.read()
        limit = gcs_storage_max_size()
        if len(data) > limit:
            return web.Response(
                text=f"Package {uri} is {len(data) / 2**20:.2f}MiB, over the maximum size of "
                f"{limit / 2**20:.2f}MiB. Exclude large files with runtime_env 'excludes' or use a remote URI.",
                status=400,
            )
        try:
            await asyncio.to_thread(self.kv.internal_kv_put, uri.encode(), data, True, None)
        except Exception:
            return web.Response(text=traceback.format_exc(), status=500)
        return web.Response()

    async def submit_job(self, req: web.Request) -> web.Response:
        try:
            body = await req.json()
        except ValueError as e:  # not JSON, or not even UTF-8
            return web.Response(text=f"The request body is not valid JSON: {e}", status=400)
        if not isinstance(body, dict):
            return web.Response(text=f"The request body must be a JSON object with an 'entrypoint', got "
                                     f"{type(body).__name__}.", status=400)
        try:
            request = JobSubmitRequest.from_json(body)
            submission_id = await self.manager.submit_job(request)
        except (TypeError, ValueError) as e:
            logger.info("Rejected job submission: %s", e)
            return web.Response(text=f"{type(e).__name__}: {e}", status=400)
        except Exception:
            logger.exception("Failed to submit job.")
            return web.Response(text=traceback.format_exc(), status=500)
        return _json({"job_id": submission_id, "submission_id": submission_id})

    async def _driver_jobs(self) -> tuple[dict, list[JobDetails]]:
        try:
            return await asyncio.to_thread(read_driver_jobs, self.kv)
        except Exception:
            logger.exception("Reading the GCS job table failed; listing submitted jobs only.")
            return {}, []

    @staticmethod
    def _details(submission_id: str, info: JobInfo, drivers: dict) -> JobDetails:
        details = JobDetails.from_job_info(submission_id, info)
        if submission_id in drivers:
            details.job_id, details.driver_info = drivers[submission_id]
        return details

    async def all_job_details(self) -> list[dict]:
        jobs = await self.manager.list_jobs()
        by_submission, driver_jobs = await self._driver_jobs()
        submitted = sorted((self._details(sid, info, by_submission) for sid, info in jobs.items()),
                           key=lambda d: d.start_time or 0)
        # Ray's order: submitted jobs first, then drivers started directly.
        return [d.to_json() for d in submitted + sorted(driver_jobs, key=lambda d: d.start_time or 0)]

    async def list_jobs(self, req: web.Request) -> web.Response:
        return _json(await self.all_job_details())

    async def _find(self, req: web.Request) -> tuple[str, JobInfo | None]:
        job_id = req.match_info["job_or_submission_id"]
        return job_id, await self.manager.get_job_info(job_id)

    async def _find_driver_job(self, job_id: str) -> JobDetails | None:
        _, driver_jobs = await self._driver_jobs()
        return next((d for d in driver_jobs if d.job_id == job_id), None)

    async def get_job_info(self, req: web.Request) -> web.Response:
        job_id, info = await self._find(req)
        if info is None:
            driver_job = await self._find_driver_job(job_id)
            if driver_job is None:
                return _not_found(job_id)
            return _json(driver_job.to_json())
        by_submission, _ = await self._driver_jobs()
        return _json(self._details(job_id, info, by_submission).to_json())

    async def stop_job(self, req: web.Request) -> web.Response:
        job_id = req.match_info["job_or_submission_id"]
        try:
            stopped = await self.manager.stop_job(job_id)
        except JobNotFoundError:
            if await self._find_driver_job(job_id) is not None:
                return web.Response(text="Can only stop submission type jobs", status=400)
            return _not_found(job_id)
        except Exception:
            return web.Response(text=traceback.format_exc(), status=500)
        return _json({"stopped": stopped})

    async def delete_job(self, req: web.Request) -> web.Response:
        job_id = req.match_info["job_or_submission_id"]
        try:
            deleted = await self.manager.delete_job(job_id)
        except JobNotFoundError:
            if await self._find_driver_job(job_id) is not None:
                return web.Response(text="Can only delete submission type jobs", status=400)
            return _not_found(job_id)
        except ValueError as e:
            return web.Response(text=str(e), status=400)
        except Exception:
            return web.Response(text=traceback.format_exc(), status=500)
        return _json({"deleted": deleted})

    async def _missing(self, job_id: str) -> web.Response:
        if await self._find_driver_job(job_id) is not None:
            return web.Response(text="Can only get logs of submission type jobs", status=400)
        return _not_found(job_id)

    async def get_job_logs(self, req: web.Request) -> web.Response:
        job_id, info = await self._find(req)
        if info is None:
            return await self._missing(job_id)
        try:
            logs = await self.manager.get_job_logs(job_id, info)
        except Exception:
            return web.Response(text=traceback.format_exc(), status=500)
        return _json({"logs": logs})

    async def tail_job_logs(self, req: web.Request) -> web.StreamResponse:
        job_id, info = await self._find(req)
        if info is None:
            return await self._missing(job_id)
        ws = web.WebSocketResponse()
        await ws.prepare(req)
        try:
            async for chunk in self.manager.tail_job_logs(job_id, info):
                if ws.closed:
                    break
                await ws.send_str(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client went away
        await ws.close()
        return ws
