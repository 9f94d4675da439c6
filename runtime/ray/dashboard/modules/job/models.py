"""The JSON shapes of Ray's job REST API (JobDetails and the small responses), as dataclasses."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any

from ray.dashboard.modules.job.common import JobInfo, JobStatus


class JobType(StrEnum):
    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"

    def __str__(self) -> str:
        return self.value


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    # Newer servers add fields; an older client must still read the ones it knows.
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclasses.dataclass
class DriverInfo:
    id: str
    node_ip_address: str
    pid: str


@dataclasses.dataclass
class JobDetails:
    """What `GET /api/jobs/{id}` returns and `JobSubmissionClient.get_job_info` gives back."""

    type: JobType
    entrypoint: str
    status: JobStatus
    job_id: str | None = None
    submission_id: str | None = None
    driver_info: DriverInfo | None = None
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] | None = None
    runtime_env: dict[str, Any] | None = None
    driver_agent_http_address: str | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None

    def __post_init__(self) -> None:
        self.type = JobType(self.type)
        self.status = JobStatus(self.status)
        if isinstance(self.driver_info, dict):
            self.driver_info = DriverInfo(**_known_fields(DriverInfo, self.driver_info))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobDetails:
        return cls(**_known_fields(cls, data))

    @classmethod
    def from_job_info(cls, submission_id: str, info: JobInfo) -> JobDetails:
        return cls(
            type=JobType.SUBMISSION,
            entrypoint=info.entrypoint,
            status=info.status,
            submission_id=submission_id,
            message=info.message,
            error_type=info.error_type,
            start_time=info.start_time,
            end_time=info.end_time,
            metadata=info.metadata or {},
            runtime_env=info.runtime_env or {},
            driver_agent_http_address=info.driver_agent_http_address,
            driver_node_id=info.driver_node_id,
            driver_exit_code=info.driver_exit_code,
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["type"] = self.type.value
        data["status"] = self.status.value
        return data


@dataclasses.dataclass
class JobSubmitRequest:
    """The body of `POST /api/jobs/`; `from_json` rejects what Ray's server rejects, with the reason."""

    entrypoint: str
    submission_id: str | None = None
    job_id: str | None = None  # deprecated alias of submission_id, still accepted like Ray
    runtime_env: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    entrypoint_label_selector: dict[str, str] | None = None

    @classmethod
    def from_json(cls, data: Any) -> JobSubmitRequest:
        if not isinstance(data, dict):
            raise TypeError(f"The request body must be a JSON object, got {type(data).__name__}.")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"JobSubmitRequest got unexpected keyword arguments: {sorted(unknown)}")
        if "entrypoint" not in data:
            raise TypeError("JobSubmitRequest is missing the required field 'entrypoint'.")
        request = cls(**data)
        request._validate()
        return request

    def _validate(self) -> None:
        if not isinstance(self.entrypoint, str) or not self.entrypoint.strip():
            raise TypeError(f"entrypoint must be a non-empty string, got {self.entrypoint!r}.")
        for name in ("submission_id", "job_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {type(value).__name__}.")
        if self.runtime_env is not None and not isinstance(self.runtime_env, dict):
            raise TypeError(f"runtime_env must be a dict, got {type(self.runtime_env).__name__}.")
        if self.metadata is not None:
            if not isinstance(self.metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()
            ):
                raise TypeError(f"metadata must be a dict of strings to strings, got {self.metadata!r}.")
        for name in ("entrypoint_num_cpus", "entrypoint_num_gpus"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
                if value < 0:
                    raise ValueError(f"{name} must be non-negative, got {value}.")
        if self.entrypoint_memory is not None:
            if isinstance(self.entrypoint_memory, bool) or not isinstance(self.entrypoint_memory, int):
                raise TypeError(f"entrypoint_memory must be an integer, got {self.entrypoint_memory!r}.")
            if self.entrypoint_memory < 0:
                raise ValueError(f"entrypoint_memory must be non-negative, got {self.entrypoint_memory}.")
        if self.entrypoint_resources is not None:
            if not isinstance(self.entrypoint_resources, dict) or not all(
                isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
                for k, v in self.entrypoint_resources.items()
            ):
                raise TypeError(
                    f"entrypoint_resources must be a dict of strings to numbers, got {self.entrypoint_resources!r}."
                )
            reserved = {"CPU", "GPU", "memory"} & set(self.entrypoint_resources)
            if reserved:
                raise ValueError(
                    f"Use entrypoint_num_cpus, entrypoint_num_gpus or entrypoint_memory instead of "
                    f"{sorted(reserved)} in entrypoint_resources."
                )
