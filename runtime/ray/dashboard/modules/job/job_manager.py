"""The dashboard's side of jobs: record a submission, place and start its supervisor, stop, delete, logs.

The state lives in the GCS KV (JobInfoStorage); each job's supervisor process writes its progress
there, so this object can be recreated (dashboard restart) without losing anything. Jobs run on the
head unless entrypoint resources/labels place them on another node; there the node's agent starts
the supervisor and serves the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from ray._common import auth
from ray._common.runtime_env.agent_registry import AgentAddress
from ray._common.runtime_env.context import needs_agent
from ray._common.runtime_env.validation import is_remote_uri, validate_runtime_env
from ray.dashboard.modules.job import placement
from ray.dashboard.modules.job.common import (
    JobErrorType,
    JobInfo,
    JobInfoStorage,
    JobStatus,
    generate_submission_id,
    validate_submission_id,
)
from ray.dashboard.modules.job.job_runner import LocalJobRunner
from ray.dashboard.modules.job.models import JobSubmitRequest

logger = logging.getLogger(__name__)

_MONITOR_INTERVAL_S = 1.0
# How long a supervisor placed on this node may take to record its pid.
_SUPERVISOR_START_GRACE_S = 60.0


def job_start_timeout_s() -> float:
    return float(os.environ.get("RAY_JOB_START_TIMEOUT_SECONDS", "900"))


# How long a job's logs, stop and status calls wait for the agent of a live node to register (a new head that took
# the cluster over from Redis hears from the nodes' agents again within seconds).
AGENT_REGISTRATION_WAIT_S = 10.0


class JobNotFoundError(KeyError):
    pass


class ClusterView:
    """What the job manager needs to know about the cluster (backed by the GCS)."""

    def __init__(self, nodes: Callable[[], list[dict[str, Any]]], agent_for_node: Callable[[str], AgentAddress | None],
                 local_agent: Callable[[], AgentAddress | None]):
        self.nodes = nodes
        self.agent_for_node = agent_for_node
        self.local_agent = local_agent


class JobManager:
    def __init__(self, storage: JobInfoStorage, runner: LocalJobRunner, cluster: ClusterView):
        self.storage = storage
        self.runner = runner
        self.cluster = cluster
        self._placing: set[str] = set()  # submissions being placed right now (skip them in the monitor)
        self._monitor_task: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None
        self._placement_lock = asyncio.Lock()

    def start(self) -> None:
        self._monitor_task = asyncio.create_task(self._monitor_loop())

    async def close(self) -> None:
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor_task
        if self._http is not None:
            await self._http.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            # The agents' job API requires the cluster's token, as every entry point does.
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                                               headers=auth.http_headers())
        return self._http

    # ------------------------------------------------------------------ submit
    async def submit_job(self, request: JobSubmitRequest) -> str:
        """Records the job as PENDING and starts its supervisor; TypeError/ValueError for bad input."""
        submission_id = request.submission_id or request.job_id or generate_submission_id()
        validate_submission_id(submission_id)
        runtime_env = validate_runtime_env(request.runtime_env)
        if runtime_env.get("working_dir") and not is_remote_uri(runtime_env["working_dir"]):
            raise ValueError(
                f"runtime_env['working_dir'] is the local path {runtime_env['working_dir']!r}, which the cluster "
                "cannot see. Upload it first: `ray job submit --working-dir` and JobSubmissionClient do this for "
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
            entrypoint_label_selector=request.entrypoint_label_selector,
        )
        self._placing.add(submission_id)
        try:
            if not await self.storage.put(submission_id, info, overwrite=False):
                raise ValueError(
                    f"Job with submission_id {submission_id} already exists. Please use a different submission_id."
                )
            await self._place_and_start(submission_id, info)
        finally:
            self._placing.discard(submission_id)
        return submission_id

    async def _place_and_start(self, submission_id: str, info: JobInfo) -> bool:
        """Starts the supervisor where the job fits; False if no node fits yet (the job stays PENDING)."""
        # One placement at a time: two concurrent submissions must not both take the last free GPU.
        async with self._placement_lock:
            return await self._place_and_start_locked(submission_id, info)

    async def _place_and_start_locked(self, submission_id: str, info: JobInfo) -> bool:
        local_agent = await asyncio.to_thread(self.cluster.local_agent)
        target_agent = None
        node: dict[str, Any] = {}
        others: dict[str, JobInfo] = {}
        if placement.needs_placement(info):
            nodes = await asyncio.to_thread(self.cluster.nodes)
            others = {sid: job for sid, job in (await self.storage.list()).items() if sid != submission_id}
            node = placement.choose_node(nodes, info, placement.used_by_jobs(others))
            if node is None:
                logger.info("Job %s waits for a node with %s.", submission_id, placement.describe_requirements(info))
                return False
            is_local = node.get("IsHeadNode") or (local_agent is not None and node["NodeID"] == local_agent.node_id)
            if not is_local:
                target_agent = await asyncio.to_thread(self.cluster.agent_for_node, node["NodeID"])
                if target_agent is None:
                    logger.info("Job %s: node %s has no agent yet.", submission_id, node["NodeID"])
                    return False
        if placement.needs_placement(info):
            info.entrypoint_gpu_ids = placement.assign_gpu_ids(info, node, others)
        if target_agent is None and local_agent is None and needs_agent(info.runtime_env):
            # Just after `ray start --head` the agent may not have registered yet: wait (PENDING, retried
            # until RAY_JOB_START_TIMEOUT_SECONDS) instead of failing the job's runtime env setup.
            logger.info("Job %s waits for the head node's agent to set up its runtime env.", submission_id)
            return False
        agent = target_agent or local_agent
        # The chosen node (held resources count against it) even if its agent is not registered yet.
        info.driver_node_id = node.get("NodeID") or (agent.node_id if agent else None)
        info.driver_agent_http_address = agent.http_address if agent else None
        await self.storage.put(submission_id, info)
        try:
            if target_agent is None:
                self.runner.start_supervisor(submission_id)
            else:
                await self._agent_call("POST", target_agent, f"/api/job_agent/jobs/{submission_id}/supervise")
        except Exception as e:
            logger.exception("Starting the supervisor of job %s failed.", submission_id)
            await self._fail(submission_id, f"Job supervisor actor failed to start: {e}",
                             JobErrorType.JOB_SUPERVISOR_ACTOR_DIED)
        return True

    def _head_node_id(self) -> str | None:
        local = self.cluster.local_agent()
        if local is not None:
            return local.node_id
        heads = [n["NodeID"] for n in self._alive_nodes() if n.get("IsHeadNode")]
        return heads[0] if heads else None

    def _is_remote(self, info: JobInfo) -> bool:
        """Whether the job's supervisor runs on another node (through that node's agent)."""
        return info.driver_node_id is not None and info.driver_node_id != self._head_node_id()

    async def _driver_agent(self, info: JobInfo) -> AgentAddress:
        """The agent of the node that runs the job's supervisor. Right after a new head took the cluster over, that
        agent registers again within a few seconds: a live node's agent is waited for, a dead node's is not."""
        deadline = time.monotonic() + AGENT_REGISTRATION_WAIT_S
        while True:
            agent = await asyncio.to_thread(self.cluster.agent_for_node, info.driver_node_id)
            if agent is not None:
                return agent
            if time.monotonic() > deadline or not await self._node_alive(info.driver_node_id):
                raise RuntimeError(f"The agent of node {info.driver_node_id}, which runs this job, is not registered.")
            await asyncio.sleep(0.25)

    def _alive_nodes(self) -> list[dict]:
        return [n for n in self.cluster.nodes() if n.get("Alive")]

    async def _node_alive(self, node_id: str | None) -> bool:
        return any(n.get("NodeID") == node_id for n in await asyncio.to_thread(self._alive_nodes))

    async def _agent_call(self, method: str, agent: AgentAddress, path: str) -> Any:
        async with self._session().request(method, agent.http_address + path) as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"Agent {agent.http_address} answered {response.status}: {text}")
            return await response.json(content_type=None) if text else None

    # ------------------------------------------------------------------ queries and actions
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
        if await asyncio.to_thread(self._is_remote, info):
            result = await self._agent_call("POST", await self._driver_agent(info), f"/api/job_agent/jobs/{submission_id}/stop")
            if result and result.get("stopped"):
                return True
        elif self.runner.signal_stop(submission_id, info):
            return True
        # No supervisor to tell (not placed yet, or gone): nothing runs, so the job is simply stopped.
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
        self.runner.forget(submission_id)
        self.runner.remove_logs(submission_id)
        return True

    async def get_job_logs(self, submission_id: str, info: JobInfo) -> str:
        if await asyncio.to_thread(self._is_remote, info):
            result = await self._agent_call("GET", await self._driver_agent(info), f"/api/job_agent/jobs/{submission_id}/logs")
            return result["logs"]
        return await asyncio.to_thread(self.runner.get_logs, submission_id)

    async def tail_job_logs(self, submission_id: str, info: JobInfo) -> AsyncIterator[str]:
        if await asyncio.to_thread(self._is_remote, info):
            agent = await self._driver_agent(info)
            async with self._session().ws_connect(f"{agent.http_address}/api/job_agent/jobs/{submission_id}/logs/tail") as ws:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        yield msg.data
                    else:
                        break
            return

        async def finished() -> bool:
            current = await self.storage.get(submission_id)
            return current is None or current.status.is_terminal()

        async for chunk in self.runner.follow_logs(submission_id, finished):
            yield chunk

    # ------------------------------------------------------------------ monitor
    async def _monitor_loop(self) -> None:
        """Reaps supervisors, places waiting jobs, fails jobs whose supervisor or node died."""
        while True:
            try:
                await self._check_jobs()
            except Exception:
                logger.exception("Checking jobs failed.")
            await asyncio.sleep(_MONITOR_INTERVAL_S)

    async def _check_jobs(self) -> None:
        for submission_id, code in self.runner.reap():
            info = await self.storage.get(submission_id)
            if info is not None and not info.status.is_terminal():
                await self._fail(
                    submission_id,
                    f"Job supervisor actor died: the supervisor process exited with code {code}.",
                    JobErrorType.JOB_SUPERVISOR_ACTOR_DIED,
                )
        jobs = {sid: info for sid, info in (await self.storage.list()).items()
                if not info.status.is_terminal() and sid not in self._placing}
        if not jobs:
            return
        alive_nodes = None
        # Oldest first, so jobs waiting for the same resources start in the order they were submitted.
        for submission_id, info in sorted(jobs.items(), key=lambda item: item[1].start_time or 0):
            if self.runner.is_tracked(submission_id):
                continue  # its supervisor runs here; reap() notices when it exits
            if info.driver_node_id is None and info.supervisor_pid is None:
                await self._check_unplaced(submission_id, info)
            elif await asyncio.to_thread(self._is_remote, info):
                if alive_nodes is None:
                    alive_nodes = {n["NodeID"] for n in await asyncio.to_thread(self.cluster.nodes) if n.get("Alive")}
                if info.driver_node_id not in alive_nodes:
                    await self._fail(submission_id, f"Job supervisor actor died: node {info.driver_node_id}, "
                                     "which ran the job, is dead.", JobErrorType.JOB_SUPERVISOR_ACTOR_DIED)
            elif info.supervisor_pid is None:
                # Placed here by an earlier dashboard whose supervisor never came up.
                if time.time() - (info.start_time or 0) / 1000 > _SUPERVISOR_START_GRACE_S:
                    await self._fail(submission_id, "Job supervisor actor died before it started.",
                                     JobErrorType.JOB_SUPERVISOR_ACTOR_DIED)
            elif self.runner.supervisor_pid(submission_id, info) is None:
                await self._fail(submission_id, "Job supervisor actor died: the supervisor process is no longer running.",
                                 JobErrorType.JOB_SUPERVISOR_ACTOR_DIED)

    async def _check_unplaced(self, submission_id: str, info: JobInfo) -> None:
        waited_s = time.time() - (info.start_time or 0) / 1000
        if waited_s > job_start_timeout_s():
            await self._fail(
                submission_id,
                f"Job supervisor actor failed to start within {job_start_timeout_s()} seconds. This timeout can be "
                "configured by setting the environment variable RAY_JOB_START_TIMEOUT_SECONDS.",
                JobErrorType.JOB_SUPERVISOR_ACTOR_DIED,
            )
            return
        self._placing.add(submission_id)
        try:
            await self._place_and_start(submission_id, info)
        finally:
            self._placing.discard(submission_id)
