"""A real head node (GCS, node agent, dashboard) in a private temp dir, and helpers for jobs tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests
from ray._common import auth
from ray._common.net import free_port

RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def authed_session() -> requests.Session:
    """A requests session sending this test run's token (`Authorization: Bearer ...`)."""
    session = requests.Session()
    session.headers.update(auth.http_headers())
    return session


class HeadNode:
    def __init__(self, root: Path, env_overrides: dict[str, str] | None = None):
        self.root = root
        # Short: raylets put Unix sockets under it, and AF_UNIX paths are limited to 107 bytes.
        self.temp_dir = tempfile.mkdtemp(prefix="orj-")
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.agent_http_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
        self.env["TMPDIR"] = str(root)
        self.env.update(env_overrides or {})
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.gcs_address = f"127.0.0.1:{self.gcs_port}"

    def ray(self, *args: str, check: bool = True, timeout: float = 300, cwd: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([*RAY, *args], env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"ray {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self) -> None:
        self.ray(
            "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--dashboard-agent-listen-port={self.agent_http_port}", f"--temp-dir={self.temp_dir}",
            "--num-cpus=2", timeout=120,
        )
        # Read now; `session_latest` stays with the head anyway when a worker node starts in this temp dir.
        self._session_dir = os.path.realpath(os.path.join(self.temp_dir, "session_latest"))
        self.wait_dashboard()
        self.wait_agent()

    def wait_agent(self, timeout_s: float = 60) -> None:
        """The launcher does not wait for the node agent; tests that talk to it do."""
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.agent_http_port}/api/healthz"
        while True:
            try:
                if requests.get(url, timeout=2).text == "success":
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"agent at {url} did not come up; logs:\n{self.log('agent')}")
            time.sleep(0.3)

    def wait_dashboard(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if requests.get(self.dashboard_url + "/api/version", headers=auth.http_headers(),
                                timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"dashboard at {self.dashboard_url} did not come up; logs:\n{self.log('dashboard')}")
            time.sleep(0.3)

    @property
    def session_dir(self) -> str:
        return self._session_dir

    def log(self, name: str) -> str:
        out = []
        for suffix in (".log", ".err", ".out"):
            path = os.path.join(self.session_dir, "logs", name + suffix)
            if os.path.exists(path):
                out.append(Path(path).read_text()[-5000:])
        return "\n".join(out)

    def processes(self, module: str) -> list[psutil.Process]:
        """This head's processes running `module` (matched by our private session dir)."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if module in cmdline and any(self.temp_dir in part for part in cmdline):
                found.append(proc)
        return found

    def job_pids(self) -> list[int]:
        """Supervisor and entrypoint pids of every job, read from the GCS (for cleanup and assertions)."""
        from ray._common.gcs_client import GcsClient

        pids = []
        with contextlib.suppress(Exception):
            client = GcsClient(self.gcs_address, timeout_s=5)
            for key in client.internal_kv_keys(b"_ray_internal_job_info_", b"job"):
                info = json.loads(client.internal_kv_get(key, b"job"))
                pids += [p for p in (info.get("supervisor_pid"), info.get("driver_pid")) if p]
            client.close()
        return pids

    def stop(self) -> None:
        job_pids = self.job_pids()
        self.ray("stop", "--force", f"--temp-dir={self.temp_dir}", check=False, timeout=120)
        # Jobs, and dashboards a test restarted itself, are not in the launcher's registry.
        leftovers = [p.pid for p in psutil.process_iter(["cmdline"])
                     if any(self.temp_dir in part for part in (p.info["cmdline"] or []))]
        kill_trees(job_pids + leftovers)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def kill_trees(pids: list[int]) -> None:
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(predicate, timeout_s: float = 300, interval_s: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval_s)
