"""Issue 10's cost rows (observability), run by workloads.py under both runtimes with Ray's public API only:

- `state_list_tasks_10k`: `ray.util.state.list_tasks(limit=10000)` (what `ray list tasks --limit 10000` calls)
  with 10,000 finished tasks in the cluster; the median of 5 calls once the list is complete.
- `gcs_task_events_100k`: the GCS process's RSS once 100,000 finished tasks have been reported (Ray's
  `gcs_server`, OpenRay's `ray.gcs.server`), next to its RSS before the tasks.
- `agent_idle_cpu`: a `ray start --head` node's agent (Ray's `dashboard/agent.py`, OpenRay's `ray.agent`)
  while its metrics port is scraped every 5 s and nothing else runs: CPU seconds over wall seconds, in %.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

import ray
from procs import TOKEN_ENV, cpu_seconds, free_port, proc_info, processes_of_run, terminate

Rows = dict[str, dict[str, Any]]
MIB = 1024 * 1024
_started_head = False


@ray.remote
def nothing() -> int:
    return 0


def one_row(key: str, value: float, **details: Any) -> Rows:
    return {key: {"value": value, "details": details}}


def _run_tasks(n: int, batch: int = 1000) -> float:
    start = time.perf_counter()
    for _ in range(n // batch):
        ray.get([nothing.remote() for _ in range(batch)])
    return time.perf_counter() - start


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def _process(*names: str) -> Any:
    """This run's process one of whose command-line arguments is one of `names` or ends with it."""
    for proc in processes_of_run(os.environ.get(TOKEN_ENV), None):
        if any(arg.strip() == name or arg.endswith("/" + name) for arg in proc.cmdline for name in names):
            return proc
    raise RuntimeError(f"no process of this run matches {names}")


def _listening_on(port: int) -> Any:
    """The process serving `port`. Ray's agent renames itself (setproctitle), and the new title can overwrite its
    environment, where this run's token was: 2 of 3 lookups by token failed (2026-12-02)."""
    import psutil

    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return proc_info(conn.pid)
    return None


def state_list_tasks_10k(duration_s: float) -> Rows:
    from ray.util.state import list_tasks

    ray.init()
    submit_s = _run_tasks(10_000)
    deadline = time.monotonic() + 120
    while True:  # task events reach the GCS within a report interval or so
        rows = list_tasks(limit=10_000, filters=[("state", "=", "FINISHED")], raise_on_missing_output=False)
        if len(rows) >= 10_000 or time.monotonic() > deadline:
            break
        time.sleep(1)
    if len(rows) < 10_000:
        raise RuntimeError(f"only {len(rows)} of 10000 finished tasks were listed after 120 s")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        listed = list_tasks(limit=10_000, raise_on_missing_output=False)
        times.append(time.perf_counter() - start)
    return one_row("state_list_tasks_10k", statistics.median(times), all_s=[round(t, 3) for t in times],
                   rows=len(listed), submit_10k_s=round(submit_s, 2))


def gcs_task_events_100k(duration_s: float) -> Rows:
    ray.init()
    gcs = _process("gcs_server", "ray.gcs.server")  # Ray's binary, OpenRay's `python -m ray.gcs.server`
    ray.get(nothing.remote())
    time.sleep(3)
    before = _rss_bytes(gcs.pid) or 0
    submit_s = _run_tasks(100_000)
    # The last reports arrive within a second or two; then the RSS settles.
    samples = []
    for _ in range(8):
        time.sleep(1)
        samples.append(_rss_bytes(gcs.pid) or 0)
    after = max(samples)
    return one_row("gcs_rss_100k_task_events", after / MIB, before_mib=round(before / MIB, 1),
                   growth_mib=round((after - before) / MIB, 1), submit_100k_s=round(submit_s, 1),
                   process=gcs.short_name)


def agent_idle_cpu(duration_s: float) -> Rows:
    """A head started as KubeRay starts one (`ray start --head`, free ports), idle; its agent's metrics port is
    scraped every 5 s (Prometheus' usual interval is 5-15 s) for max(60, 12 x duration) seconds."""
    global _started_head
    metrics_port = free_port()
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    _started_head = True
    done = subprocess.run(
        [ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={free_port()}",
         f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={metrics_port}",
         "--disable-usage-stats"], capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ray start --head failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}")
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    deadline = time.monotonic() + 60
    while True:
        try:
            text = urllib.request.urlopen(url, timeout=10).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    agent = _listening_on(metrics_port) or _process("ray::DashboardAgent", "dashboard/agent.py", "ray.agent")
    time.sleep(10)  # past start-up
    window = max(60.0, 12 * duration_s)
    cpu0, start = cpu_seconds(agent.pid), time.monotonic()
    scrapes = 0
    while time.monotonic() - start < window:
        text = urllib.request.urlopen(url, timeout=10).read()
        scrapes += 1
        time.sleep(max(0.0, start + 5 * scrapes - time.monotonic()))
    cpu1, wall = cpu_seconds(agent.pid), time.monotonic() - start
    if cpu0 is None or cpu1 is None:
        raise RuntimeError("the agent exited during the measurement")
    return one_row("agent_idle_cpu_scraped", 100 * (cpu1 - cpu0) / wall, window_s=round(wall, 1), scrapes=scrapes,
                   metrics_bytes=len(text), rss_mib=round((_rss_bytes(agent.pid) or 0) / MIB, 1),
                   process=agent.short_name)


def cleanup() -> None:
    """After the figures are written: the `ray start` head's processes (found by this run's token; never
    `ray stop`, which would stop every Ray process on the machine)."""
    if _started_head:
        terminate([p.pid for p in processes_of_run(os.environ.get(TOKEN_ENV), None)])


WORKLOADS = {fn.__name__: fn for fn in (state_list_tasks_10k, gcs_task_events_100k, agent_idle_cpu)}
