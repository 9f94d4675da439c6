"""`python -m ray.dashboard.modules.job.job_supervisor`: runs one job's entrypoint and records its fate.

One supervisor process per job, in its own session, so a dashboard restart does not touch running
jobs (in Ray the supervisor is a detached actor for the same reason). It sets up the job's runtime
env through the node agent, runs the entrypoint as a shell command in its own process group with
stdout+stderr in `logs/job-driver-<submission_id>.log`, writes RUNNING / SUCCEEDED / FAILED / STOPPED
into the GCS KV, and on SIGTERM (the dashboard's stop) terminates the whole process tree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psutil

from ray._common import auth, process_registry
from ray._common.config import config
from ray._common.runtime_env.agent_client import RuntimeEnvAgentClient
from ray._common.runtime_env.context import RuntimeEnvContext, needs_agent
from ray._common.session_logs import log_to_session_file
from ray.dashboard.modules.job.common import (
    DEFAULT_JOB_STOP_WAIT_TIME_S,
    JOB_ID_METADATA_KEY,
    JOB_LOGS_FILE_TEMPLATE,
    JobErrorType,
    JobInfo,
    JobInfoStorage,
    JobStatus,
)
from ray.dashboard.modules.job.log_tail import last_log_lines

logger = logging.getLogger("ray.job_supervisor")

RAY_JOB_CONFIG_JSON_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"
# Fields that need the node agent (downloads, venvs); env_vars alone are applied here.
# How long the GCS may be unreachable before the supervisor assumes the cluster is gone (`ray stop`)
# and stops the job, so no entrypoint outlives its cluster.
# A GCS gone this long means the cluster is gone: the job is stopped. As long as every other client waits for it
# (gcs_rpc_server_reconnect_timeout_s; KubeRay gives workers 600 s), so a GCS restarted from Redis (a new head
# pod) finds its jobs still running.
GCS_LOST_TIMEOUT_S = float(os.environ.get("RAY_JOB_SUPERVISOR_GCS_LOST_TIMEOUT_S",
                                          config().gcs_rpc_server_reconnect_timeout_s))
_POLL_S = 0.1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="job_supervisor")
    parser.add_argument("--submission-id", required=True)
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--agent-address", default="", help="host:port of this node's runtime env agent")
    return parser.parse_args(argv)


def kill_process_tree(pid: int, sig: int) -> list[psutil.Process]:
    """Signals `pid` and every descendant; returns the processes signalled."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    return procs


class JobSupervisor:
    def __init__(self, args: argparse.Namespace, storage: JobInfoStorage):
        self.args = args
        self.submission_id = args.submission_id
        self.storage = storage
        self.log_path = os.path.join(
            args.session_dir, "logs", JOB_LOGS_FILE_TEMPLATE.format(submission_id=self.submission_id)
        )
        self.stop_requested = asyncio.Event()

    async def put_status(self, status: JobStatus, message: str | None = None, **fields: Any) -> None:
        info = await self.storage.get(self.submission_id)
        if info is None or info.status.is_terminal():
            return  # deleted, or already finished: a terminal status never changes
        data = info.to_json()
        data.update(fields)
        data["status"] = status.value
        data["message"] = message
        if status.is_terminal():
            data["end_time"] = int(time.time() * 1000)
        await self.storage.put(self.submission_id, JobInfo.from_json(data))

    def _append_log(self, text: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    async def _setup_runtime_env(self, info: JobInfo) -> tuple[RuntimeEnvContext, RuntimeEnvAgentClient | None]:
        runtime_env = info.runtime_env or {}
        if not needs_agent(runtime_env):
            return RuntimeEnvContext(env_vars=dict(runtime_env.get("env_vars") or {})), None
        if not self.args.agent_address:
            raise RuntimeError("no runtime env agent is registered for this node, so it cannot set up "
                               f"{sorted(f for f, v in runtime_env.items() if f != 'env_vars' and v)}.")
        client = RuntimeEnvAgentClient(self.args.agent_address)
        context = await client.get_or_create_runtime_env(json.dumps(runtime_env), self.submission_id)
        return context, client

    def _driver_env(self, info: JobInfo, context: RuntimeEnvContext) -> dict[str, str]:
        base = dict(os.environ)
        # `python` and `ray` in the entrypoint mean the runtime's own (as if its venv were activated);
        # a pip runtime env puts its virtualenv's bin dir in front of this.
        runtime_bin = os.path.dirname(sys.executable)
        path = base.get("PATH", "")
        if path.split(os.pathsep)[0] != runtime_bin:
            base["PATH"] = os.pathsep.join([runtime_bin, path]) if path else runtime_bin
        env = context.apply_to_environ(base)
        env.update(auth.child_env(auth.process_token()))  # the entrypoint's driver joins with the node's token
        if info.entrypoint_gpu_ids is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in info.entrypoint_gpu_ids)
        metadata = dict(info.metadata or {})
        metadata.setdefault(JOB_ID_METADATA_KEY, self.submission_id)
        env[RAY_JOB_CONFIG_JSON_ENV_VAR] = json.dumps({"runtime_env": info.runtime_env or {}, "metadata": metadata})
        env["RAY_ADDRESS"] = self.args.gcs_address
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def _gcs_alive(self) -> bool:
        try:
            await asyncio.wait_for(self.storage.get(self.submission_id), 5)
            return True
        except Exception:
            return False

    async def _wait(self, process: subprocess.Popen) -> int | None:
        """The entrypoint's exit code, or None if the job was stopped (or lost its cluster) first."""
        last_gcs_ok = time.monotonic()
        next_check = time.monotonic() + 2
        while True:
            code = process.poll()
            if code is not None:
                return code
            if self.stop_requested.is_set():
                return None
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 2
                if await self._gcs_alive():
                    last_gcs_ok = time.monotonic()
                elif time.monotonic() - last_gcs_ok > GCS_LOST_TIMEOUT_S:
                    logger.error("The GCS has been unreachable for %.0fs; stopping the job.", GCS_LOST_TIMEOUT_S)
                    self.stop_requested.set()
                    return None
            await asyncio.sleep(_POLL_S)

    async def _terminate(self, process: subprocess.Popen) -> None:
        wait_s = float(os.environ.get("RAY_JOB_STOP_WAIT_TIME_S", DEFAULT_JOB_STOP_WAIT_TIME_S))
        procs = kill_process_tree(process.pid, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        alive = await asyncio.to_thread(process_registry.wait_exited, procs, wait_s)  # a zombie counts as gone
        if alive:
            logger.warning("Job %s did not exit %.0fs after SIGTERM; sending SIGKILL.", self.submission_id, wait_s)
            for proc in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything that escaped the tree but kept the group
        process.wait()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested.set)
        info = await self.storage.get(self.submission_id)
        if info is None or info.status.is_terminal():
            logger.info("Job %s is gone or finished before it started.", self.submission_id)
            return
        # The dashboard finds (and signals) this process through the stored pid.
        info.supervisor_pid = os.getpid()
        await self.storage.put(self.submission_id, info)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        open(self.log_path, "a").close()
        setup = asyncio.create_task(self._setup_runtime_env(info))
        stopped = asyncio.create_task(self.stop_requested.wait())
        await asyncio.wait([setup, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not setup.done():  # stopped while a pip install was still running: don't wait for it
            setup.cancel()
            with contextlib.suppress(BaseException):
                await setup
            await self.put_status(JobStatus.STOPPED)
            return
        stopped.cancel()
        try:
            context, agent = setup.result()
        except Exception as e:
            message = f"runtime_env setup failed: {e}"
            self._append_log(message)
            await self.put_status(JobStatus.FAILED, message, error_type=JobErrorType.RUNTIME_ENV_SETUP_FAILURE.value)
            return
        try:
            await self._run_entrypoint(info, context)
        finally:
            if agent is not None:
                with contextlib.suppress(Exception):
                    await agent.delete_runtime_env_if_possible(json.dumps(info.runtime_env or {}))
                await agent.close()

    async def _run_entrypoint(self, info: JobInfo, context: RuntimeEnvContext) -> None:
        if self.stop_requested.is_set():
            await self.put_status(JobStatus.STOPPED)
            return
        try:
            with open(self.log_path, "ab") as log:
                process = subprocess.Popen(
                    info.entrypoint,
                    shell=True,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self._driver_env(info, context),
                    cwd=context.cwd,
                    start_new_session=True,  # its own process group, so stop reaches every child
                )
        except Exception as e:
            message = f"Failed to start the job entrypoint {info.entrypoint!r}: {e}"
            self._append_log(message)
            await self.put_status(
                JobStatus.FAILED, message, error_type=JobErrorType.JOB_ENTRYPOINT_COMMAND_START_ERROR.value
            )
            return
        logger.info("Job %s entrypoint started as pid %d.", self.submission_id, process.pid)
        await self.put_status(JobStatus.RUNNING, driver_pid=process.pid)
        code = await self._wait(process)
        if code is None:
            await self._terminate(process)
            await self.put_status(JobStatus.STOPPED)
            return
        logger.info("Job %s entrypoint exited with code %d.", self.submission_id, code)
        if code == 0:
            await self.put_status(JobStatus.SUCCEEDED, driver_exit_code=code)
            return
        tail = last_log_lines(self.log_path)
        if tail:
            message = (
                f"Job entrypoint command failed with exit code {code}, "
                f"last available logs (truncated to 20,000 chars):\n{tail}"
            )
        else:
            message = f"Job entrypoint command failed with exit code {code}. No logs available."
        await self.put_status(
            JobStatus.FAILED, message, driver_exit_code=code, error_type=JobErrorType.JOB_ENTRYPOINT_COMMAND_ERROR.value
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    log_to_session_file(args.session_dir, f"job-supervisor-{args.submission_id}.log")
    from ray._common.gcs_client import GcsClient

    storage = JobInfoStorage(GcsClient(args.gcs_address))
    supervisor = JobSupervisor(args, storage)
    try:
        asyncio.run(supervisor.run())
    except Exception:
        logger.exception("The job supervisor failed.")
        with contextlib.suppress(Exception):
            import traceback

            asyncio.run(supervisor.put_status(
                JobStatus.FAILED, traceback.format_exc(),
                error_type=JobErrorType.JOB_ENTRYPOINT_COMMAND_START_ERROR.value,
            ))
        sys.exit(1)


if __name__ == "__main__":
    main()
