"""A new head takes a cluster over from Redis while a submitted job runs on a worker node (what KubeRay does when
the head pod is deleted mid-RayJob): the old head stops (its `ray start --block` gets SIGTERM, or everything is
SIGKILLed), a new head starts with the same Redis and GCS port, and the job, whose supervisor and driver live on
the worker node, keeps RUNNING and SUCCEEDS. Its status is read all along: it must never read FAILED."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from polling import wait_for
from ray._common import process_registry
from ray._common.net import free_port

RAY = [sys.executable, "-m", "ray.scripts.scripts"]

JOB = """
import time
import ray

ray.init()

@ray.remote
def inc(x):
    return x + 1

total = 0
for i in range(STEPS):
    total += ray.get(inc.remote(i))
    print("step", i, flush=True)
    time.sleep(0.5)
assert total == sum(range(1, STEPS + 1)), total
print("takeover job done", total, flush=True)
"""


def _start_head(cli, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`ray start --head --block`, as the head container runs it (its PID 1 once bash execs it)."""
    head = subprocess.Popen([*RAY, *args, "--block"], env={**cli.env, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: cli.ray("status", check=False).returncode == 0 or head.poll() is not None, 120,
             "the head to start", interval=0.2, ignore_errors=True)
    assert head.poll() is None, "the head's `ray start --block` exited"
    return head


def _stop_head(cli, head: subprocess.Popen, how: str) -> None:
    """The head pod deleted: its `ray start --block` gets SIGTERM and stops its processes in order (Kubernetes'
    grace period), or everything is SIGKILLed (a node lost)."""
    if how == "sigterm":
        head.send_signal(signal.SIGTERM)
        head.wait(60)
    procs = [p for _, p in process_registry.recorded_processes(cli.temp_dir) if p is not None]
    if how == "sigkill":
        head.kill()
        head.wait(10)
    for proc in procs:  # (those that die with their parent may be gone already)
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            proc.kill()
    psutil.wait_procs(procs, timeout=10)
    for entry, _ in process_registry.recorded_processes(cli.temp_dir):
        # The pod's /dev/shm goes with it; here a SIGKILLed raylet's shared-memory dir would stay behind.
        process_registry.remove_session_shm(entry["session_dir"])
        process_registry.forget(cli.temp_dir, entry["pid"])


def _head_logs(temp_dir: str) -> str:
    out = []
    for name in ("gcs_server.err", "gcs_server.out", "dashboard.log", "dashboard.err", "raylet.err"):
        for path in sorted(Path(temp_dir).glob(f"session_2*/logs/{name}")):
            out.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
    return "\n".join(out)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_head_replaced_mid_job_the_job_keeps_running_and_succeeds(cli, port, redis_server, tmp_path, how):
    from ray.job_submission import JobStatus, JobSubmissionClient

    dashboard_port, agent_port = free_port(), free_port()
    # The head on its own address, as a head pod has: a driver started on the worker node (127.0.0.1) attaches
    # to the worker's raylet, not to the head's, as it would in Kubernetes.
    args = ["start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--num-cpus=0",
            f"--redis-address={redis_server.address}", f"--dashboard-port={dashboard_port}",
            f"--dashboard-agent-listen-port={agent_port}", "--include-dashboard=true"]
    redis_env = {"REDIS_PASSWORD": redis_server.password}
    head = _start_head(cli, args, redis_env)
    worker_tmp = tmp_path / "worker"
    worker_tmp.mkdir()
    # As KubeRay sets it on the workers of a cluster with GCS fault tolerance.
    worker_env = {**cli.env, "TMPDIR": str(worker_tmp), "RAY_gcs_rpc_server_reconnect_timeout_s": "600"}
    try:
        subprocess.run([*RAY, "start", f"--address=127.0.0.2:{port}", "--num-cpus=2", "--node-ip-address=127.0.0.1"],
                       env=worker_env, check=True, capture_output=True, timeout=120)
        client = wait_for(lambda: JobSubmissionClient(f"http://127.0.0.1:{dashboard_port}"), 60,
                          "the dashboard", interval=0.2, ignore_errors=True)
        code = JOB.replace("STEPS", "30")
        # The head has no CPUs: the job's supervisor and driver run on the worker node and outlive the head.
        job = client.submit_job(entrypoint=f"python -c '{code}'", entrypoint_num_cpus=1)
        try:
            wait_for(lambda: client.get_job_status(job) == JobStatus.RUNNING, 120, "the job to run",
                     interval=0.2, ignore_errors=True)
        except AssertionError as e:
            info = client.get_job_info(job)
            raise AssertionError(f"{e}: {info.status} {info.message}\n{_head_logs(cli.temp_dir)}") from None
        time.sleep(3)  # a few steps done

        _stop_head(cli, head, how)
        head = _start_head(cli, args, redis_env)  # the new head pod: same Redis, same GCS address
        client = wait_for(lambda: JobSubmissionClient(f"http://127.0.0.1:{dashboard_port}"), 60,
                          "the new dashboard", interval=0.2, ignore_errors=True)
        seen: list[JobStatus] = []

        def finished() -> JobStatus | None:
            status = client.get_job_status(job)
            if not seen or seen[-1] != status:
                seen.append(status)
            return status if status.is_terminal() else None

        final = wait_for(finished, 180, "the job to finish", interval=0.1, ignore_errors=True)
        logs = client.get_job_logs(job)
        info = client.get_job_info(job)
        assert JobStatus.FAILED not in seen and final == JobStatus.SUCCEEDED, (
            f"statuses {seen}: {info.message}\n{logs}\n{_head_logs(cli.temp_dir)}")
        assert "takeover job done" in logs
    finally:
        head.kill()
        process_registry.stop_all(str(worker_tmp / "ray"), force=True, grace_period_s=2)
