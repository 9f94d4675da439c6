"""The processes of the local cluster `ray.init()` starts: the head's node agent runs inside the dashboard
process, no worker idles before the first task, and nothing outlives `ray.shutdown()`."""

from __future__ import annotations

import time
import urllib.request

import psutil
import pytest
import ray
from polling import wait_for
from ray._common.gcs_client import GcsClient
from ray._common.runtime_env.agent_registry import agent_by_node_id

pytest.importorskip("ray.agent")
pytest.importorskip("ray.dashboard.dashboard")


def _modules(procs: list[psutil.Process]) -> list[str]:
    """The `-m` module of each live process (the runtime's processes are all `python -m ...`)."""
    names = []
    for p in procs:
        try:
            args = p.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "-m" in args[:-1]:
            names.append(args[args.index("-m") + 1])
    return sorted(names)


@pytest.fixture
def local_cluster(tmp_path):
    context = ray.init(num_cpus=2, _temp_dir=str(tmp_path / "ray"))
    try:
        yield context
    finally:
        ray.shutdown()


def test_ray_init_runs_the_node_agent_inside_the_dashboard_process(local_cluster, tmp_path):
    me = psutil.Process()
    # The dashboard process hosts the agent: it registers in the GCS as the head node's agent.
    gcs = GcsClient(local_cluster.address_info["gcs_address"])
    try:
        agent = wait_for(lambda: agent_by_node_id(gcs, local_cluster.address_info["node_id"]), 60,
                         "the head's node agent to register", interval=0.2)
    finally:
        gcs.close()
    with urllib.request.urlopen(f"{agent.http_address}/api/healthz", timeout=30) as reply:
        assert reply.read() == b"success"
    assert _modules(me.children(recursive=True)) == sorted([
        "ray.agent.with_dashboard", "ray.gcs.server", "ray.raylet.main", "ray._private.workers.worker_template"])

    # A job whose runtime env needs the agent (a working_dir) runs through the dashboard process.
    from ray.job_submission import JobStatus, JobSubmissionClient

    work = tmp_path / "work"
    work.mkdir()
    (work / "shipped.py").write_text("print('shipped from the working dir')\n")
    client = JobSubmissionClient(f"http://{local_cluster.dashboard_url}")
    job = client.submit_job(entrypoint="python shipped.py", runtime_env={"working_dir": str(work)})
    status = wait_for(lambda: (s := client.get_job_status(job)).is_terminal() and s, 300, "the job to finish",
                      interval=0.2)
    assert status == JobStatus.SUCCEEDED, client.get_job_logs(job)
    assert "shipped from the working dir" in client.get_job_logs(job)


def test_no_worker_idles_before_the_first_task_and_shutdown_leaves_nothing(tmp_path):
    me = psutil.Process()
    ray.init(num_cpus=2, _temp_dir=str(tmp_path / "ray"))
    try:
        time.sleep(2)  # prestarted workers would have been forked by now
        # Workers are forks of the template, so they carry its command line: one means the template alone.
        assert _modules(me.children(recursive=True)).count("ray._private.workers.worker_template") == 1

        @ray.remote
        def where() -> int:
            import os

            return os.getpid()

        worker_pid = ray.get(where.remote(), timeout=120)
        started = me.children(recursive=True)
        assert worker_pid in {p.pid for p in started}
    finally:
        ray.shutdown()
    # ray.shutdown() returns once its processes are gone (the forked workers die with their template).
    wait_for(lambda: not _live(started), 10, "the workers to exit after their template", interval=0.2)


def _live(procs: list[psutil.Process]) -> list[psutil.Process]:
    live = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                live.append(p)
        except psutil.NoSuchProcess:
            pass
    return live


@pytest.mark.parametrize("busy", ["agent", "dashboard"])
def test_a_half_that_cannot_start_leaves_the_other_up(local_cluster, tmp_path, busy):
    """One of the combined process's ports is taken: it says which half failed (stderr, dashboard.log) and
    keeps serving the other, as two separate processes would."""
    import socket
    import subprocess
    import sys

    from ray._common.net import free_port

    session = tmp_path / "session"
    (session / "logs").mkdir(parents=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = {"agent": free_port(), "dashboard": free_port(), busy: taken.getsockname()[1]}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ray.agent.with_dashboard", "--port", str(ports["dashboard"]),
             "--gcs-address", local_cluster.address_info["gcs_address"], "--session-dir", str(session),
             "--node-ip-address", "127.0.0.1", "--node-id", "cd" * 28, "--agent-http-port", str(ports["agent"])],
            stderr=subprocess.PIPE, text=True)
        survivor = "dashboard" if busy == "agent" else "agent"
        url = {"dashboard": f"http://127.0.0.1:{ports['dashboard']}/api/version",
               "agent": f"http://127.0.0.1:{ports['agent']}/api/healthz"}[survivor]
        try:
            log = session / "logs" / "dashboard.log"
            wait_for(lambda: log.exists() and "failed; the rest of this process stays up" in log.read_text(), 60,
                     f"the {busy}'s failure in dashboard.log", interval=0.2)

            def survivor_answers() -> bool:
                try:
                    from ray._common import auth

                    with urllib.request.urlopen(urllib.request.Request(url, headers=auth.http_headers()),
                                                timeout=5) as reply:
                        return reply.status == 200
                except OSError:
                    return False

            wait_for(survivor_answers, 60, f"the {survivor} to answer", interval=0.2)
            assert proc.poll() is None
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=30)
    expected = "The node agent (HTTP" if busy == "agent" else "The dashboard (on 127.0.0.1:"
    assert expected in stderr and "failed" in stderr, stderr
