"""The dashboard's side of jobs: record a submission, start its supervisor, stop, delete, list, logs.

The state lives in the GCS KV (JobInfoStorage); the supervisor process of each job writes its
progress there, so this object can be recreated (dashboard restart) without losing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import psutil

from ray._private.runtime_env.validation import is_remote_uri, validate_runtime_env
from ray.dashboard.modules.job.common import (
    JOB_LOGS_FILE_TEMPLATE,
    JobErrorType,
    JobInfo,
    JobInfoStorage,
    JobStatus,
    generate_submission_id,
    validate_submission_id,
)
from ray.dashboard.modules.job.log_tail import follow_log, read_log
from ray.dashboard.modules.job.models import JobSubmitRequest

logger = logging.getLogger(__name__)

_MONITOR_INTERVAL_S = 1.0
_SUPERVISOR_START_TIMEOUT_S = 60.0


class JobNotFoundError(KeyError):
    pass


class JobManager:
    def __init__(
        self,
        storage: JobInfoStorage,
        gcs_address: str,
        session_dir: str,
        agent_address: Callable[[], str],
    ):
        self.storage = storage
        self.gcs_address = gcs_address
        self.session_dir = session_dir
        self.logs_dir = os.path.join(session_dir, "logs")
        self._agent_address = agent_address  # the local node agent's gRPC "host:port" ("" if none)
        self._supervisors: dict[str, subprocess.Popen] = {}
        self._monitor_task: asyncio.Task | None = None

    def log_path(self, submission_id: str) -> str:
        return os.path.join(self.logs_dir, JOB_LOGS_FILE_TEMPLATE.format(submission_id=submission_id))

    def start(self) -> None:
        self._monitor_task = asyncio.create_task(self._monitor_loop())

    async def close(self) -> None:
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor_task

    async def submit_job(self, request: JobSubmitRequest) -> str:
        """Records the job as PENDING and starts its supervisor; TypeError/ValueError for bad input."""
        submission_id = request.submission_id or request.job_id or generate_submission_id()
        validate_submission_id(submission_id)
        runtime_env = validate_runtime_env(request.runtime_env)
        for field in ("working_dir",):
            if runtime_env.get(field) and not is_remote_uri(runtime_env[field]):
                raise ValueError(
                    f"runtime_env['{field}'] is the local path {runtime_env[field]!r}, which the cluster cannot "
                    "see. Upload it first: `ray job submit --working-dir` and JobSubmissionClient do this for "
                    "a local directory, or pass a remote URI (gcs://, https://)."
                )
        for module in runtime_env.get("py_modules") or []:
            if not is_remote_uri(module):
                raise ValueError(f"runtime_env['py_modules'] entry {module!r} is a local path; upload it first.")
        info = JobInfo(
            status=JobStatus.PENDING,
            entrypoint=request.entrypoint,
            metadata=request.metadata or {},
            runtime_env=runtime_env,
            entrypoint_num_cpus=request.entrypoint_num_cpus,
            entrypoint_num_gpus=request.entrypoint_num_gpus,
            entrypoint_memory=request.entrypoint_memory,
            entrypoint_resources=request.entrypoint_resources,
        )
        if not await self.storage.put(submission_id, info, overwrite=False):
            raise ValueError(
                f"Job with submission_id {submission_id} already exists. Please use a different submission_id."
            )
        try:
            self._start_supervisor(submission_id)
        except Exception as e:
            await self._fail(submission_id, f"Failed to start the job supervisor: {e}",
                             JobErrorType.JOB_SUPERVISOR_ACTOR_DIED)
            raise
        return submission_id

    def _start_supervisor(self, submission_id: str) -> None:
        cmd = [
            sys.executable, "-m", "ray.dashboard.modules.job.job_supervisor",
            "--submission-id", submission_id,
            "--gcs-address", self.gcs_address,
            "--session-dir", self.session_dir,
            "--agent-address", self._agent_address(),
        ]
        # Its own session: a dashboard restart (or its process group being signalled) leaves jobs running.
        os.makedirs(self.logs_dir, exist_ok=True)
        with open(os.path.join(self.logs_dir, f"job-supervisor-{submission_id}.err"), "ab") as err:
            self._supervisors[submission_id] = subprocess.Popen(
                cmd, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )

    def _supervisor_pid(self, submission_id: str, info: JobInfo) -> int | None:
        process = self._supervisors.get(submission_id)
        if process is not None:
            return process.pid if process.poll() is None else None
        # Started by an earlier dashboard process: trust the stored pid only if it is still that supervisor.
        if info.supervisor_pid is None:
            return None
        try:
            cmdline = psutil.Process(info.supervisor_pid).cmdline()
        except psutil.Error:
            return None
        return info.supervisor_pid if submission_id in cmdline else None

    async def _fail(self, submission_id: str, message: str, error_type: JobErrorType) -> None:
        info = await self.storage.get(submission_id)
        if info is None or info.status.is_terminal():
            return
        info.status = JobStatus.FAILED
        info.message = message
        info.error_type = error_type.value
        info.end_time = int(time.time() * 1000)
        await self.storage.put(submission_id, info)

    async def get_job_info(self, submission_id: str) -> JobInfo | None:
        return await self.storage.get(submission_id)

    async def list_jobs(self) -> dict[str, JobInfo]:
        return await self.storage.list()

    async def stop_job(self, submission_id: str) -> bool:
        """Asks the supervisor to stop the job; False if the job had already finished."""
        info = await self.storage.get(submission_id)
        if info is None:
            raise JobNotFoundError(submission_id)
        if info.status.is_terminal():
            return False
        pid = self._supervisor_pid(submission_id, info)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            return True
        # No supervisor to tell (never started or gone): nothing runs, so the job is simply stopped.
        info.status = JobStatus.STOPPED
        info.message = None
        info.__post_init__()
        info.end_time = int(time.time() * 1000)
        await self.storage.put(submission_id, info)
        return True

    async def delete_job(self, submission_id: str) -> bool:
        info = await self.storage.get(submission_id)
        if info is None:
            raise JobNotFoundError(submission_id)
        if not info.status.is_terminal():
            raise ValueError(
                f"Attempted to delete job '{submission_id}', but it is in a non-terminal state "
                f"{info.status.value}. Stop it first with `ray job stop {submission_id}`."
            )
        await self.storage.delete(submission_id)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.log_path(submission_id))
        self._supervisors.pop(submission_id, None)
        return True

    def get_job_logs(self, submission_id: str) -> str:
        return read_log(self.log_path(submission_id))

    async def tail_job_logs(self, submission_id: str) -> AsyncIterator[str]:
        async def finished() -> bool:
            info = await self.storage.get(submission_id)
            return info is None or info.status.is_terminal()

        async for chunk in follow_log(self.log_path(submission_id), finished):
            yield chunk

    async def _monitor_loop(self) -> None:
        """Reaps supervisors and fails jobs whose supervisor died without recording an outcome."""
        while True:
            try:
                await self._check_supervisors()
            except Exception:
                logger.exception("Checking job supervisors failed.")
            await asyncio.sleep(_MONITOR_INTERVAL_S)

    async def _check_supervisors(self) -> None:
        for submission_id, process in list(self._supervisors.items()):
            if process.poll() is not None:
                del self._supervisors[submission_id]
                info = await self.storage.get(submission_id)
                if info is not None and not info.status.is_terminal():
                    await self._fail(
                        submission_id,
                        f"Job supervisor actor died: the supervisor process exited with code {process.returncode}.",
                        JobErrorType.JOB_SUPERVISOR_ACTOR_DIED,
                    )
        for submission_id, info in (await self.storage.list()).items():
            if info.status.is_terminal() or submission_id in self._supervisors:
                continue
            if info.supervisor_pid is None:
                # Submitted by an earlier dashboard that died before the supervisor even started.
                if time.time() * 1000 - (info.start_time or 0) > _SUPERVISOR_START_TIMEOUT_S * 1000:
                    await self._fail(
                        submission_id,
                        "Job supervisor actor failed to start within "
                        f"{_SUPERVISOR_START_TIMEOUT_S:.0f} seconds.",
                        JobErrorType.JOB_SUPERVISOR_ACTOR_DIED,
                    )
            elif self._supervisor_pid(submission_id, info) is None:
                await self._fail(
                    submission_id,
                    "Job supervisor actor died: the supervisor process is no longer running.",
                    JobErrorType.JOB_SUPERVISOR_ACTOR_DIED,
                )
