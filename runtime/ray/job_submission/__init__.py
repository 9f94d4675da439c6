"""Ray's public jobs SDK: `from ray.job_submission import JobSubmissionClient, JobStatus`."""

from ray.dashboard.modules.job.common import JobInfo, JobStatus
from ray.dashboard.modules.job.models import DriverInfo, JobDetails, JobType
from ray.dashboard.modules.job.sdk import JobSubmissionClient

__all__ = ["DriverInfo", "JobDetails", "JobInfo", "JobStatus", "JobSubmissionClient", "JobType"]
