"""Jobs as the GCS job table knows them (one per driver), joined with submitted jobs.

A submitted job's driver announces its submission id in its job config metadata
(`job_submission_id`, set by the supervisor through RAY_JOB_CONFIG_JSON_ENV_VAR); that is how a
SUBMISSION job gets its Ray `job_id` and `driver_info`. Drivers started any other way (a script
calling `ray.init(address=...)`) are listed as DRIVER jobs, as in Ray.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ray.dashboard.modules.job.common import JOB_ID_METADATA_KEY, JobStatus
from ray.dashboard.modules.job.models import DriverInfo, JobDetails, JobType

logger = logging.getLogger(__name__)


def _config(entry: Any) -> dict[str, Any]:
    try:
        return json.loads(entry.config_json or "{}")
    except json.JSONDecodeError:
        return {}


def _driver_info(entry: Any) -> DriverInfo:
    return DriverInfo(id=entry.job_id.hex(), node_ip_address=entry.driver_ip_address, pid=str(entry.driver_pid))


def read_driver_jobs(gcs: Any) -> tuple[dict[str, tuple[str, DriverInfo]], list[JobDetails]]:
    """({submission id: (job id hex, driver info)}, [DRIVER JobDetails]) from the GCS job table."""
    if not hasattr(gcs, "get_all_job_info"):
        return {}, []
    by_submission: dict[str, tuple[str, DriverInfo]] = {}
    drivers: list[JobDetails] = []
    for entry in gcs.get_all_job_info():
        config = _config(entry)
        metadata = config.get("metadata") or {}
        submission_id = metadata.get(JOB_ID_METADATA_KEY)
        if submission_id:
            by_submission[submission_id] = (entry.job_id.hex(), _driver_info(entry))
            continue
        drivers.append(JobDetails(
            type=JobType.DRIVER,
            job_id=entry.job_id.hex(),
            entrypoint=entry.entrypoint,
            status=(JobStatus.RUNNING if not entry.is_dead
                    else JobStatus.FAILED if entry.driver_failed else JobStatus.SUCCEEDED),
            message=entry.driver_exit_detail or None,
            start_time=int(entry.start_time) or None,
            end_time=int(entry.end_time) or None,
            metadata={str(k): str(v) for k, v in metadata.items()},
            runtime_env=config.get("runtime_env") or {},
            driver_info=_driver_info(entry),
        ))
    return by_submission, drivers
