"""Issue 15's fault-tolerance row, run by bench/workloads.py under both runtimes (public API and /proc only).

A head started with `ray start --head` keeps its GCS tables in a redis-server this workload starts
(`RAY_REDIS_ADDRESS`, as KubeRay's gcsFaultToleranceOptions sets it). The GCS process is SIGKILLed and at
once started again with its own command line and environment, as a supervisor (or the kubelet restarting the
head container) would. Two rows: the time from the kill to the first task submitted after it completing (a worker
already leased may run it without the GCS), and to a new actor (which the GCS must schedule) answering a call.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import ray
from procs import TOKEN_ENV, free_port, processes_of_run  # sibling module: bench/ is sys.path[0]

_started_processes = False  # set once this module started a head or a redis-server (the runner's token finds them)


def started_processes() -> bool:
    return _started_processes


# The redis-server this module started. Stopped by its handle: redis rewrites its process title over its
# environment, so the runner's token no longer finds it (each run left one behind before).
_redis: subprocess.Popen | None = None


def stop_redis() -> None:
    global _redis
    if _redis is not None:
        _redis.kill()
        _redis.wait()
        _redis = None


def _start_redis() -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RuntimeError("needs Debian's redis-server (make tools installs it)")
    port = free_port()
    global _redis
    _redis = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"redis-server did not answer on port {port}")


def _gcs_process() -> Any:
    token = os.environ.get(TOKEN_ENV)
    found = [p for p in processes_of_run(token) if any("gcs_server" in arg for arg in p.cmdline)]
    if len(found) != 1:
        raise RuntimeError(f"expected one GCS process of this run, found {[p.cmdline[:3] for p in found]}")
    return found[0]


def _restart_like(pid: int, cmdline: list[str]) -> None:
    """SIGKILL `pid` and start `cmdline` again with the environment and working directory it had."""
    with open(f"/proc/{pid}/environ", "rb") as fh:
        env = dict(item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item)
    cwd = os.readlink(f"/proc/{pid}/cwd")
    os.kill(pid, signal.SIGKILL)
    subprocess.Popen(cmdline, env={k.decode(): v.decode() for k, v in env.items()}, cwd=cwd,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@ray.remote
def _one() -> int:
    return 1


@ray.remote
class _Probe:
    def ping(self) -> int:
        return 1


def gcs_restart(duration_s: float) -> dict[str, dict[str, Any]]:
    global _started_processes
    _started_processes = True
    redis_address = _start_redis()
    gcs_port = free_port()
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    done = subprocess.run(
        [ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}", "--include-dashboard=false",
         "--num-cpus=2", "--disable-usage-stats"],
        env={**os.environ, "RAY_REDIS_ADDRESS": redis_address}, capture_output=True, text=True, timeout=300,
        check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ray start --head failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}")
    ray.init(f"127.0.0.1:{gcs_port}")
    assert ray.get([_one.remote() for _ in range(10)]) == [1] * 10  # workers up, function exported
    gcs = _gcs_process()
    killed = time.perf_counter()
    _restart_like(gcs.pid, gcs.cmdline)
    restarted = time.perf_counter() - killed
    # A task on a leased worker may not need the GCS at all; creating an actor always does.
    assert ray.get(_one.remote(), timeout=300) == 1
    first_task_s = time.perf_counter() - killed
    assert ray.get(_Probe.remote().ping.remote(), timeout=300) == 1
    first_actor_s = time.perf_counter() - killed
    details = {"restart_call_s": round(restarted, 4), "redis": redis_address, "gcs_cmdline": " ".join(gcs.cmdline)[:200]}
    return {"gcs_restart_first_task": {"value": first_task_s, "details": details},
            "gcs_restart_first_actor": {"value": first_actor_s, "details": details}}
