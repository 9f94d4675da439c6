"""M1: `ray start --head`, the GCS (KV, nodes, health checks, jobs, pub/sub), `ray health-check`, `ray stop`."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import grpc
import psutil
import pytest
from ray._common.gcs_client import GcsClient
from ray.protocol import gcs_pb2 as pb


def _start_head(cli, port: int, *extra: str, **env: str):
    return cli.ray(
        "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=false",
        *extra, **env,
    )


def test_start_head_health_check_kv_and_stop(cli, port):
    out = _start_head(cli, port, '--resources={"bob": 5}', "--num-cpus=5").stdout
    assert "Ray runtime started." in out
    assert f"ray start --address='127.0.0.1:{port}'" in out
    assert cli.ray("health-check", "--address", f"127.0.0.1:{port}").returncode == 0

    client = GcsClient(f"127.0.0.1:{port}")
    try:
        assert client.internal_kv_put(b"k", b"v1", namespace=b"job") == 1
        assert client.internal_kv_put(b"k", b"v2", overwrite=False, namespace=b"job") == 0
        assert client.internal_kv_get(b"k", namespace=b"job") == b"v1"
        assert client.internal_kv_get(b"k") is None  # namespaces are separate
        client.internal_kv_put(b"pre_a", b"1")
        client.internal_kv_put(b"pre_b", b"2")
        assert sorted(client.internal_kv_keys(b"pre_")) == [b"pre_a", b"pre_b"]
        assert client.internal_kv_exists(b"pre_a")
        assert client.internal_kv_del(b"pre_", del_by_prefix=True) == 2
        assert client.internal_kv_keys(b"pre_") == []
    finally:
        client.close()

    pids = cli.recorded_pids()
    assert pids
    stopped = cli.ray("stop")
    assert "Stopped all" in stopped.stdout
    cli.assert_no_processes(pids)
    assert cli.ray("health-check", "--address", f"127.0.0.1:{port}", "--timeout", "1", check=False).returncode == 1
    assert "Did not find any active Ray processes." in cli.ray("stop").stdout


def test_a_worker_node_stops_promptly_after_its_head_is_gone(cli, port, tmp_path):
    """`ray down` stops the head first, then the workers: their processes must stop on SIGTERM, not hold out for
    the grace period retrying a GCS that is gone (the agent did: 16 s a node, `ray down` of three took 32 s)."""
    _start_head(cli, port, "--num-cpus=0")
    worker_root = tmp_path / "worker"
    worker_root.mkdir()
    worker = type(cli)(worker_root)  # the second node's `ray`, with its own temp dir
    try:
        worker.ray("start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1")
        worker_pids = worker.recorded_pids()
        assert len(worker_pids) == 2  # raylet, agent
        cli.ray("stop")
        # A grace period longer than the call's timeout: the old agent, stuck in its GCS calls, hit the timeout.
        stopped = worker.ray("stop", "--grace-period", "3600", timeout=120)
        assert "Stopped all" in stopped.stdout
        worker.assert_no_processes(worker_pids)
        agent_log = (Path(worker.temp_dir) / "session_latest" / "logs" / "agent.log").read_text()
        assert f"Stopping with the GCS at 127.0.0.1:{port} unreachable" in agent_log
    finally:
        worker.cleanup()


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_start_head_again_right_after_a_crash_on_the_same_port(cli, port):
    _start_head(cli, port)
    client = GcsClient(f"127.0.0.1:{port}")
    try:
        client.check_alive()  # a connection to the port, closed by the crash: it lingers in TIME_WAIT
    finally:
        client.close()
    pids = cli.recorded_pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    psutil.wait_procs([p for pid in pids if (p := _process(pid))], timeout=10)
    cli.assert_no_processes(pids)
    out = _start_head(cli, port).stdout  # used to be "Port ... already in use" for about a minute
    assert "Ray runtime started." in out
    assert cli.ray("health-check", "--address", f"127.0.0.1:{port}").returncode == 0


def test_start_head_returns_once_the_dashboard_answers(cli, port):
    import urllib.request

    from ray._common.net import free_port

    dashboard_port = free_port()
    cli.ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=true",
            f"--dashboard-port={dashboard_port}")
    # No retry: a job submitted right after `ray start` must find the API.
    from ray._common import auth

    request = urllib.request.Request(f"http://127.0.0.1:{dashboard_port}/api/version", headers=auth.http_headers())
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def test_start_accepts_every_flag_the_operator_emits(cli, port):
    proc = _start_head(
        cli, port, "--num-cpus=1", "--num-gpus=0", "--memory=1000000000", "--resources={}",
        "--object-store-memory=100000000", "--dashboard-host=0.0.0.0", "--dashboard-agent-listen-port=0",
        "--metrics-export-port=0", "--disable-usage-stats", "--no-monitor", f"--temp-dir={cli.temp_dir}",
        "--labels=a=b",
    )
    assert "Ray runtime started." in proc.stdout


def test_start_rejects_bad_resources_json_clearly(cli, port):
    proc = _start_head(cli, port, "--resources={bob: 5}", check=False)
    assert proc.returncode != 0
    assert "--resources must be a JSON object" in proc.stderr


def test_start_block_exits_nonzero_when_a_ray_process_dies(cli, port):
    import subprocess
    import sys

    from ray._common import process_registry

    proc = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--include-dashboard=false"],
        env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in proc.stdout:  # wait until every process is up
            if "Ray runtime started." in line:
                break
        import psutil

        gcs = [p for e, p in process_registry.recorded_processes(cli.temp_dir) if e["name"] == "gcs_server" and p]
        assert gcs
        gcs[0].kill()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        assert "Ray processes died unexpectedly" in err
        assert psutil.pid_exists(gcs[0].pid) is False or gcs[0].status() == psutil.STATUS_ZOMBIE
    finally:
        proc.kill()
        proc.wait()


def test_start_block_stopped_while_it_starts_leaves_no_process(cli, port):
    # A SIGTERM while `ray start --block` is still starting its node (here: as soon as its GCS is up) stops the
    # node. It used to kill `ray start` alone, and the node's processes (each in a session of its own) lived on.
    import subprocess
    import sys

    from polling import wait_for
    from ray._common import process_registry

    def recorded() -> list[psutil.Process]:
        return [p for _, p in process_registry.recorded_processes(cli.temp_dir) if p is not None]

    proc = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--include-dashboard=false"],
        env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    seen: list[psutil.Process] = []
    try:
        seen = wait_for(recorded, 60, "the node's first process", interval=0.02)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        seen += recorded()

        def alive() -> list[psutil.Process]:
            return [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

        wait_for(lambda: not alive(), 30, "every process of the node to exit", interval=0.2)
    finally:
        proc.kill()
        proc.wait()
        # Whatever this node started, recorded or not yet (a failing run leaves them orphaned).
        for p in psutil.process_iter(["cmdline"]):
            if p in seen or cli.temp_dir in " ".join(p.info["cmdline"] or ()):
                with contextlib.suppress(psutil.Error):
                    p.kill()


def _node(node_id: bytes) -> pb.GcsNodeInfo:
    return pb.GcsNodeInfo(
        node_id=node_id, node_manager_address="127.0.0.1", node_manager_port=1234,
        resources_total={"CPU": 2.0}, labels={"zone": "a"},
    )


def test_gcs_declares_a_silent_node_dead_and_publishes_it(cli, port):
    # Fast health checks so the test waits ~1 s instead of 15 s.
    _start_head(cli, port, "--num-cpus=2", RAY_health_check_period_ms="200", RAY_health_check_failure_threshold="10")
    client = GcsClient(f"127.0.0.1:{port}")
    stream = client.subscribe(["NODE_INFO"])
    events: list[pb.GcsNodeInfo] = []

    def read_events() -> None:
        try:
            for m in stream:
                events.append(pb.GcsNodeInfo.FromString(m.data))
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()
    try:
        time.sleep(0.3)  # let the subscription register before publishing
        healthy, silent = b"h" * 28, b"s" * 28
        for nid in (healthy, silent):
            client.call(client.stubs.node.RegisterNode, pb.RegisterNodeRequest(node_info=_node(nid)))
        stop_reporting = threading.Event()

        def report_healthy() -> None:
            while not stop_reporting.is_set():
                client.call(
                    client.stubs.node.ReportResourceUsage,
                    pb.ReportResourceUsageRequest(node_id=healthy, resources_available={"CPU": 1.0},
                                                  resources_total={"CPU": 2.0}),
                )
                time.sleep(0.1)

        reporter = threading.Thread(target=report_healthy, daemon=True)
        reporter.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            nodes = {n["NodeID"]: n for n in client.get_all_node_info()}
            if not nodes[silent.hex()]["Alive"]:
                break
            time.sleep(0.1)
        assert nodes[silent.hex()]["Alive"] is False
        # Ray's death reason: UNEXPECTED_TERMINATION and its message.
        assert nodes[silent.hex()]["DeathReason"] == 2
        assert nodes[silent.hex()]["DeathReasonMessage"] == "health check failed due to missing too many heartbeats"
        assert nodes[healthy.hex()]["Alive"] is True
        assert nodes[healthy.hex()]["Resources"] == {"CPU": 2.0}
        assert nodes[healthy.hex()]["Labels"] == {"zone": "a"}
        # A dead node is told so when it reports again, instead of coming back.
        reply = client.call(client.stubs.node.ReportResourceUsage, pb.ReportResourceUsageRequest(node_id=silent))
        assert reply.node_is_dead
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(e.state == pb.GcsNodeInfo.DEAD for e in events):
            time.sleep(0.05)
        assert [e.node_id for e in events if e.state == pb.GcsNodeInfo.DEAD] == [silent]
        status = cli.ray("status", "--address", f"127.0.0.1:{port}").stdout
        assert "Node status" in status and f" 1 node_{healthy.hex()}" in status
        assert " 1.0/4.0 CPU" in status  # the real raylet (2 CPUs) + the registered node
        assert f"node_{silent.hex()}: NodeTerminated" in status
        stop_reporting.set()
        reporter.join()
    finally:
        stream.cancel()
        client.close()


def test_job_table_assigns_ids_and_records_finish(cli, port):
    _start_head(cli, port)
    client = GcsClient(f"127.0.0.1:{port}")
    try:
        first, second = client.get_next_job_id(), client.get_next_job_id()
        assert second == first + 1
        job_id = first.to_bytes(4, "little")
        client.add_job(pb.JobTableData(job_id=job_id, driver_pid=123, namespace="ns", entrypoint="python x.py"))
        (job,) = [j for j in client.get_all_job_info() if j.job_id == job_id]
        assert not job.is_dead and job.start_time > 0 and job.namespace == "ns"
        client.mark_job_finished(job_id)
        (job,) = [j for j in client.get_all_job_info() if j.job_id == job_id]
        assert job.is_dead and job.end_time >= job.start_time
    finally:
        client.close()


def test_health_check_fails_without_a_cluster(cli, port):
    proc = cli.ray("health-check", "--address", f"127.0.0.1:{port}", "--timeout", "1", check=False)
    assert proc.returncode == 1
    assert "not healthy" in proc.stderr


@pytest.mark.parametrize("args", [["start"], ["start", "--head", "--address=1.2.3.4:1"]])
def test_start_usage_errors(cli, args):
    proc = cli.ray(*args, check=False)
    assert proc.returncode == 2
