"""Jobs whose entrypoints are Ray programs: they join the cluster, get a Ray job id, and plain drivers
show up as DRIVER jobs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from jobs_cluster import wait_for
from ray.job_submission import JobStatus, JobSubmissionClient

pytest.importorskip("ray.raylet.main", reason="Ray programs need the runtime's raylet and workers")
pytestmark = pytest.mark.timeout(600)

PROGRAM = """
import os
import ray

ray.init()

@ray.remote
def square(x):
    return x * x, os.environ.get("JOB_LEVEL")

print("results", ray.get([square.remote(i) for i in range(4)]))
print("job id", ray.get_runtime_context().get_job_id())
"""


def test_ray_program_as_a_job(head, tmp_path):
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "program.py").write_text(PROGRAM)
    client = JobSubmissionClient(head.dashboard_url)
    job = client.submit_job(
        entrypoint="python program.py",
        runtime_env={"working_dir": str(tmp_path / "wd"), "env_vars": {"JOB_LEVEL": "yes"}},
    )
    status = wait_for(lambda: client.get_job_status(job).is_terminal() and client.get_job_status(job),
                      what="the Ray program to finish")
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs + str(client.get_job_info(job).message)
    assert "results [(0, 'yes'), (1, 'yes'), (4, 'yes'), (9, 'yes')]" in logs
    info = client.get_job_info(job)
    job_id_line = [line for line in logs.splitlines() if line.startswith("job id ")][0]
    assert info.job_id == job_id_line.split()[-1]
    assert info.driver_info is not None and info.driver_info.node_ip_address == "127.0.0.1"


def test_plain_driver_is_listed_as_a_driver_job(head):
    driver = subprocess.Popen(
        [sys.executable, "-c",
         f"import ray, time; ray.init(address='{head.gcs_address}'); print('ready', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env=head.env,
    )
    try:
        assert driver.stdout.readline().strip() == "ready"
        client = JobSubmissionClient(head.dashboard_url)
        drivers = wait_for(lambda: [j for j in client.list_jobs() if j.type == "DRIVER" and j.status == "RUNNING"],
                           what="the driver job in the list")
        job = drivers[-1]
        assert job.driver_info.pid == str(driver.pid) and job.submission_id is None
        assert client.get_job_info(job.job_id).type == "DRIVER"
        with pytest.raises(RuntimeError, match="Can only stop submission type jobs"):
            client.stop_job(job.job_id)
    finally:
        driver.kill()
        driver.wait(10)
