"""Entrypoint resources place a job's entrypoint on the node that has them (two nodes on this machine)."""

from __future__ import annotations

import asyncio
import os

import pytest
from jobs_cluster import HeadNode, wait_for
from ray._common.net import free_port
from ray.job_submission import JobStatus, JobSubmissionClient

pytest.importorskip("ray.raylet.main", reason="placement needs raylets registering nodes in the GCS")
pytestmark = pytest.mark.timeout(600)


def add_worker_node(head: HeadNode, resources: str, *extra: str) -> None:
    head.ray(
        "start", f"--address={head.gcs_address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
        f"--resources={resources}", f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={head.temp_dir}",
        *extra, timeout=120,
    )


def test_entrypoint_resources_choose_the_node_and_wait_for_it(tmp_path):
    head = HeadNode(tmp_path)
    try:
        head.start()
        client = JobSubmissionClient(head.dashboard_url)
        waiting = client.submit_job(entrypoint="echo ran-on-special; sleep 1", entrypoint_resources={"special": 1})
        info = client.get_job_info(waiting)
        assert info.status == JobStatus.PENDING
        assert "It may be waiting for resources" in info.message
        assert info.driver_node_id is None

        add_worker_node(head, '{"special": 2}')
        assert wait_for(lambda: client.get_job_status(waiting).is_terminal() and client.get_job_status(waiting),
                        what="the waiting job to run once its node joined") == JobStatus.SUCCEEDED
        info = client.get_job_info(waiting)
        head_agent = f"http://127.0.0.1:{head.agent_http_port}"
        assert info.driver_agent_http_address != head_agent  # ran on the new node, through its agent
        assert "ran-on-special" in client.get_job_logs(waiting)
        # The log file lives in the worker node's session dir, not the head's.
        assert not os.path.exists(os.path.join(head.session_dir, "logs", f"job-driver-{waiting}.log"))

        tailed = client.submit_job(entrypoint="for i in 1 2 3; do echo remote-$i; sleep 0.3; done",
                                   entrypoint_resources={"special": 1})

        async def tail():
            return "".join([chunk async for chunk in client.tail_job_logs(tailed)])

        assert [w for w in asyncio.run(tail()).split() if w.startswith("remote-")] == ["remote-1", "remote-2", "remote-3"]

        long = client.submit_job(entrypoint="echo start; sleep 300", entrypoint_resources={"special": 1})
        wait_for(lambda: "start" in client.get_job_logs(long), what="remote job to start")
        assert client.stop_job(long) is True
        assert wait_for(lambda: client.get_job_status(long).is_terminal() and client.get_job_status(long),
                        what="remote job to stop") == JobStatus.STOPPED

        local = client.submit_job(entrypoint="echo on-head", entrypoint_num_cpus=1)
        wait_for(lambda: client.get_job_status(local).is_terminal(), what="head job")
        assert client.get_job_info(local).driver_agent_http_address == head_agent
    finally:
        head.stop()


def test_gpu_entrypoints_get_their_own_devices(tmp_path):
    """Like Ray's supervisor, a job asking for GPUs sees CUDA_VISIBLE_DEVICES; devices are not shared."""
    head = HeadNode(tmp_path)
    try:
        head.start()
        add_worker_node(head, "{}", "--num-gpus=2")  # declared GPUs: none are touched
        client = JobSubmissionClient(head.dashboard_url)
        hold = tmp_path / "hold"
        jobs = [client.submit_job(entrypoint=f"echo devices=$CUDA_VISIBLE_DEVICES; while [ ! -e {hold} ]; do sleep 0.2; done",
                                  entrypoint_num_gpus=1) for _ in range(3)]
        wait_for(lambda: all("devices=" in client.get_job_logs(j) for j in jobs[:2]), what="two GPU jobs to start")
        devices = sorted(client.get_job_logs(j).split("devices=")[1].split()[0] for j in jobs[:2])
        assert devices == ["0", "1"]
        assert client.get_job_status(jobs[2]) == JobStatus.PENDING  # both GPUs are held
        hold.touch()
        for job in jobs:
            assert wait_for(lambda j=job: client.get_job_status(j).is_terminal() and client.get_job_status(j),
                            what="GPU jobs to finish") == JobStatus.SUCCEEDED
        assert "devices=0" in client.get_job_logs(jobs[2]) or "devices=1" in client.get_job_logs(jobs[2])
    finally:
        head.stop()
