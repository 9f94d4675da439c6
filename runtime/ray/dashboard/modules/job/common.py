"""Job statuses, the stored job record and its storage in the GCS internal KV.

Names, messages and the KV layout follow Ray's `dashboard/modules/job/common.py`, so that a job
written by one dashboard process is read back unchanged by the next one (status survives restarts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import string
import time
from enum import StrEnum
from typing import Any, Protocol

JOB_ID_METADATA_KEY = "job_submission_id"
JOB_KV_NAMESPACE = b"job"
JOB_INFO_KEY_PREFIX = "_ray_internal_job_info_"
JOB_LOGS_FILE_TEMPLATE = "job-driver-{submission_id}.log"
# Ray's supervisor waits this long between SIGTERM and SIGKILL when a job is stopped.
DEFAULT_JOB_STOP_WAIT_TIME_S = 3.0


class JobStatus(StrEnum):
    """The status of a submitted job (a terminal status never changes again)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return f"{self.value}"

    def is_terminal(self) -> bool:
        return self.value in {"STOPPED", "SUCCEEDED", "FAILED"}


class JobErrorType(StrEnum):
    RUNTIME_ENV_SETUP_FAILURE = "RUNTIME_ENV_SETUP_FAILURE"
    JOB_SUPERVISOR_ACTOR_DIED = "JOB_SUPERVISOR_ACTOR_DIED"
    JOB_ENTRYPOINT_COMMAND_START_ERROR = "JOB_ENTRYPOINT_COMMAND_START_ERROR"
    JOB_ENTRYPOINT_COMMAND_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"


_DEFAULT_MESSAGES = {
    JobStatus.PENDING: "Job has not started yet.",
    JobStatus.RUNNING: "Job is currently running.",
    JobStatus.STOPPED: "Job was intentionally stopped.",
    JobStatus.SUCCEEDED: "Job finished successfully.",
    JobStatus.FAILED: "Job failed.",
}


def default_status_message(
    status: JobStatus, *, has_entrypoint_resources: bool = False, has_runtime_env: bool = False
) -> str:
    message = _DEFAULT_MESSAGES[status]
    if status == JobStatus.PENDING:
        if has_entrypoint_resources:
            message += (
                " It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available."
            )
        if has_runtime_env:
            message += " It may be waiting for the runtime environment to be set up."
    return message


@dataclasses.dataclass
class JobInfo:
    """The record of one submitted job, stored as JSON in the GCS internal KV."""

    status: JobStatus
    entrypoint: str
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None  # ms since the epoch
    end_time: int | None = None
    metadata: dict[str, str] | None = None
    runtime_env: dict[str, Any] | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    entrypoint_label_selector: dict[str, str] | None = None
    # GPU indices held for the entrypoint on its node (CUDA_VISIBLE_DEVICES), as Ray gives its supervisor.
    entrypoint_gpu_ids: list[int] | None = None
    driver_agent_http_address: str | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None
    driver_pid: int | None = None
    # The pid of the process supervising the entrypoint; the dashboard signals it to stop the job.
    supervisor_pid: int | None = None

    def __post_init__(self) -> None:
        self.status = JobStatus(self.status)
        if self.message is None:
            has_resources = bool(
                self.entrypoint_num_cpus
                or self.entrypoint_num_gpus
                or self.entrypoint_memory
                or self.entrypoint_resources
                or self.entrypoint_label_selector
            )
            self.message = default_status_message(
                self.status, has_entrypoint_resources=has_resources, has_runtime_env=bool(self.runtime_env)
            )
        if self.start_time is None:
            self.start_time = int(time.time() * 1000)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class InternalKV(Protocol):
    """What job storage needs from the GCS client (`ray._common.gcs_client.GcsClient` has it)."""

    def internal_kv_get(self, key: bytes, namespace: bytes | None = None) -> bytes | None: ...

    def internal_kv_put(
        self, key: bytes, value: bytes, overwrite: bool = True, namespace: bytes | None = None
    ) -> int: ...

    def internal_kv_del(self, key: bytes, del_by_prefix: bool = False, namespace: bytes | None = None) -> int: ...

    def internal_kv_keys(self, prefix: bytes, namespace: bytes | None = None) -> list[bytes]: ...


def job_info_key(submission_id: str) -> bytes:
    return f"{JOB_INFO_KEY_PREFIX}{submission_id}".encode()


class JobInfoStorage:
    """Job records in the GCS internal KV (namespace b"job"). Blocking calls run in a thread.

    A finished job's record does not change any more, so `list_sync` (the job monitor lists every second,
    the UI every few) reads only the records of jobs that have not finished: 50 finished jobs cost one
    `InternalKVKeys` instead of 51 calls. Deleting a job here forgets it."""

    def __init__(self, kv: InternalKV):
        self._kv = kv
        self._finished: dict[str, JobInfo] = {}

    def put_sync(self, submission_id: str, info: JobInfo, overwrite: bool = True) -> bool:
        self._finished.pop(submission_id, None)
        added = self._kv.internal_kv_put(
            job_info_key(submission_id), json.dumps(info.to_json()).encode(), overwrite, JOB_KV_NAMESPACE
        )
        return bool(added)

    def get_sync(self, submission_id: str) -> JobInfo | None:
        raw = self._kv.internal_kv_get(job_info_key(submission_id), JOB_KV_NAMESPACE)
        return None if raw is None else JobInfo.from_json(json.loads(raw))

    def delete_sync(self, submission_id: str) -> None:
        self._finished.pop(submission_id, None)
        self._kv.internal_kv_del(job_info_key(submission_id), False, JOB_KV_NAMESPACE)

    def list_sync(self) -> dict[str, JobInfo]:
        prefix = JOB_INFO_KEY_PREFIX.encode()
        jobs: dict[str, JobInfo] = {}
        for key in self._kv.internal_kv_keys(prefix, JOB_KV_NAMESPACE):
            submission_id = key[len(prefix) :].decode()
            info = self._finished.get(submission_id) or self.get_sync(submission_id)
            if info is not None:  # deleted between the listing and the read
                jobs[submission_id] = info
                if info.status.is_terminal():
                    self._finished[submission_id] = info
        for gone in self._finished.keys() - jobs.keys():  # deleted elsewhere
            del self._finished[gone]
        return jobs

    async def put(self, submission_id: str, info: JobInfo, overwrite: bool = True) -> bool:
        return await asyncio.to_thread(self.put_sync, submission_id, info, overwrite)

    async def get(self, submission_id: str) -> JobInfo | None:
        return await asyncio.to_thread(self.get_sync, submission_id)

    async def delete(self, submission_id: str) -> None:
        await asyncio.to_thread(self.delete_sync, submission_id)

    async def list(self) -> dict[str, JobInfo]:
        return await asyncio.to_thread(self.list_sync)


_BASE62 = string.ascii_letters + string.digits


def generate_submission_id() -> str:
    """A fresh id in Ray's form, e.g. 'raysubmit_4LamXRuQpYdSMg7J'."""
    rng = random.SystemRandom()
    return "raysubmit_" + "".join(rng.choice(_BASE62) for _ in range(16))


def validate_submission_id(submission_id: str) -> None:
    if not submission_id or not all(c.isalnum() or c in "_-." for c in submission_id):
        raise ValueError(
            f"Invalid submission_id {submission_id!r}: use letters, digits, '_', '-' and '.' only."
        )
