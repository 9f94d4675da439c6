"""`ray stop` leaves no job behind: supervisors notice the GCS is gone and kill their entrypoints."""

from __future__ import annotations

import pytest
from jobs_cluster import HeadNode, alive, wait_for
from ray.job_submission import JobStatus, JobSubmissionClient

pytestmark = pytest.mark.timeout(300)


def test_ray_stop_ends_running_jobs(tmp_path):
    node = HeadNode(tmp_path)
    try:
        node.start()
        client = JobSubmissionClient(node.dashboard_url)
        job = client.submit_job(entrypoint="sleep 600 & echo child $!; wait")
        child = wait_for(
            lambda: [int(ln.split()[-1]) for ln in client.get_job_logs(job).splitlines() if ln.startswith("child ")],
            what="job to start",
        )[0]
        assert client.get_job_status(job) == JobStatus.RUNNING
        pids = node.job_pids()
        assert len(pids) == 2 and all(alive(pid) for pid in pids + [child])
        node.ray("stop", f"--temp-dir={node.temp_dir}")
        # The node's agent stops its jobs on the way down, before the GCS goes.
        assert not any(alive(pid) for pid in pids + [child])
    finally:
        node.stop()
