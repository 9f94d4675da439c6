"""Issue 11 item 6: the dashboard web UI under load, in Debian's Chromium (OpenRay only, for now).

    .venv/bin/python bench/dashboard_ui.py [--actors 1000] [--tasks 10000] [--jobs 50] [--cpu-seconds 30]

Starts a one-node cluster with the dashboard, makes the workload (actors, most of them killed; finished
tasks; finished submitted jobs), signs in through the login page, then for each view clicks its navigation
link and times click -> the view's data on screen. Then it keeps one tab open on the Actors view and
measures the dashboard process's CPU (% of one core) over `--cpu-seconds`. Prints a table and writes
bench/results/dashboard-ui-latest.json (git-ignored).

Not done here: the same run on Ray 2.60's dashboard (its time to data for the Actors and Jobs views).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
VIEWS = (  # nav link, what shows that its data arrived
    ("overview", "[data-testid=nodes-alive]"),
    ("jobs", "[data-testid=jobs-table] tbody tr a"),
    ("cluster", "[data-testid=node-table] tbody tr a"),
    ("actors", "[data-testid=actor-table] tbody tr a"),
    ("metrics", "[data-testid=chart] canvas"),
    ("logs", "[data-testid=log-nodes] a"),
)


def make_workload(address: str, dashboard: str, actors: int, tasks: int, jobs: int) -> dict:
    import ray
    from ray._common import auth
    from ray.job_submission import JobStatus, JobSubmissionClient

    ray.init(address=address)

    @ray.remote(num_cpus=0)
    class Idle:
        def ready(self) -> bool:
            return True

    @ray.remote
    def noop(i: int) -> int:
        return i

    started = time.perf_counter()
    handles = [Idle.remote() for _ in range(actors)]
    ray.get([h.ready.remote() for h in handles])
    for h in handles[: actors - max(1, actors // 20)]:  # 95% dead
        ray.kill(h)
    for start in range(0, tasks, 1000):
        ray.get([noop.remote(i) for i in range(start, min(tasks, start + 1000))])
    client = JobSubmissionClient(dashboard, headers=auth.http_headers())
    ids = [client.submit_job(entrypoint=f"echo bench-job-{i}") for i in range(jobs)]
    deadline = time.monotonic() + 600
    while any(client.get_job_status(j) not in (JobStatus.SUCCEEDED, JobStatus.FAILED) for j in ids):
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(1)
    return {"workload_s": round(time.perf_counter() - started, 1), "alive_handles": handles}


def dashboard_process(cluster) -> tuple[psutil.Process, bool]:
    """The dashboard's process, and whether the head's node agent shares it (ray.agent.with_dashboard)."""
    proc = psutil.Process(cluster.head_node.processes["dashboard"].pid)
    return proc, "ray.agent.with_dashboard" in " ".join(proc.cmdline())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--cpu-seconds", type=float, default=30)
    args = parser.parse_args()

    import secrets

    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    from playwright.sync_api import sync_playwright
    from ray._common import process_registry
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="openray-ui-bench-")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "_temp_dir": temp_dir, "include_dashboard": True})
    result: dict = {"runtime": "openray", "actors": args.actors, "tasks": args.tasks, "jobs": args.jobs,
                    "note": "loaded machine (2 cores shared)"}
    try:
        dashboard = "http://" + cluster.head_node.dashboard_url
        for _ in range(200):
            try:
                requests.get(dashboard + "/api/version", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        work = make_workload(cluster.address, dashboard, args.actors, args.tasks, args.jobs)
        result["workload_s"] = work["workload_s"]
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(dashboard + "/")
            page.fill("input[name=token]", os.environ["RAY_AUTH_TOKEN"])
            page.click("button[type=submit]")
            page.wait_for_selector("[data-testid=nodes-alive]")
            times = {}
            for _ in range(2):  # the second round is the one reported (a person clicks around more than once)
                for name, ready in VIEWS:
                    page.click("nav a[data-nav=overview]" if name != "overview" else "nav a[data-nav=jobs]")
                    page.wait_for_timeout(300)
                    t0 = time.perf_counter()
                    page.click(f"nav a[data-nav={name}]")
                    page.locator(ready).first.wait_for(timeout=30000)
                    times[name] = round(time.perf_counter() - t0, 3)
            result["click_to_data_s"] = times
            page.click("nav a[data-nav=actors]")
            page.locator("[data-testid=actor-table] tbody tr a").first.wait_for()
            proc, with_agent = dashboard_process(cluster)
            result["cpu_includes_node_agent"] = with_agent
            before = proc.cpu_times()
            t0 = time.monotonic()
            time.sleep(args.cpu_seconds)
            after = proc.cpu_times()
            elapsed = time.monotonic() - t0
            result["dashboard_cpu_pct_one_tab_actors"] = round(
                100 * ((after.user - before.user) + (after.system - before.system)) / elapsed, 1)
            browser.close()
    finally:
        cluster.shutdown()
        process_registry.stop_all(temp_dir, force=True, grace_period_s=2)
        shutil.rmtree(temp_dir, ignore_errors=True)
    out = REPO / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dashboard-ui-latest.json").write_text(json.dumps(result, indent=1))
    print(f"OpenRay dashboard UI, {args.actors} actors (95% dead), {args.tasks} tasks, {args.jobs} jobs "
          f"({result['note']}); workload made in {result.get('workload_s')} s")
    print(f"{'view':<10} click -> data (s)   target < 1 s")
    for name, seconds in result.get("click_to_data_s", {}).items():
        print(f"{name:<10} {seconds:>8.3f}            {'ok' if seconds < 1 else 'SLOW'}")
    cpu = result.get("dashboard_cpu_pct_one_tab_actors")
    agent = " (its process also runs the head's node agent)" if result.get("cpu_includes_node_agent") else ""
    print(f"dashboard CPU with one tab on Actors: {cpu}% of a core{agent} (target < 5%)")
    sys.exit(0)


if __name__ == "__main__":
    main()
