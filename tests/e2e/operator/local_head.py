"""A real OpenRay head node on this machine, started with the `ray start` line the operator builds."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apiserver import free_ports
from ray_operator.builders.pod import PodOptions, build_head_pod
from ray_operator.dashboard_client import DashboardClient, DashboardError


@contextmanager
def local_head(log_dir: Path) -> Iterator[DashboardClient]:
    """Yields a client of the head's dashboard; the head's whole process group is gone afterwards."""
    # Short: the session dir holds Unix sockets, whose paths are limited to 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="opr-", dir="/tmp")
    gcs, dashboard, agent, metrics = free_ports(4)
    params = {"port": str(gcs), "dashboard-port": str(dashboard), "node-ip-address": "127.0.0.1",
              "dashboard-host": "127.0.0.1", "dashboard-agent-listen-port": str(agent),
              "metrics-export-port": str(metrics), "temp-dir": temp_dir}
    cluster = {"kind": "RayCluster", "metadata": {"name": "local", "namespace": "default", "uid": "u"},
               "spec": {"headGroupSpec": {"rayStartParams": params, "template": {"spec": {"containers": [
                   {"name": "ray-head", "resources": {"limits": {"cpu": "1"}}}]}}}}}
    command = build_head_pod(cluster, PodOptions())["spec"]["containers"][0]["args"][0]
    # The head runs with a token of its own (token authentication is on), and the client sends it.
    token = secrets.token_hex(32)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "RAY_AUTH_TOKEN": token}
    env.pop("RAY_AUTH_MODE", None)
    log_path = log_dir / "head.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["/bin/bash", "-c", command], env=env, start_new_session=True,
                                stdout=log, stderr=subprocess.STDOUT)
    client = DashboardClient(f"http://127.0.0.1:{dashboard}", timeout_s=5, token=token)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client.get_job_info("probe")
                break
            except DashboardError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the dashboard did not come up:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(1)
        yield client
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(temp_dir, ignore_errors=True)
