"""Issue 11 item 6: the dashboard web UI under load, in Debian's Chromium, OpenRay next to Ray 2.60.

    .venv/bin/python bench/dashboard_ui.py [--actors 1000] [--tasks 10000] [--jobs 50] [--cpu-seconds 30]
                                           [--openray-only] [--ray-python P]

OpenRay: starts a one-node cluster with the dashboard, makes the workload (`dashboard_workload.py`: actors,
95% of them killed; finished tasks; finished submitted jobs), signs in through the login page, then for each
view clicks its navigation link and times click -> the view's data on screen. Then it keeps one tab open on
the Actors view and measures the dashboard process's CPU (% of one core) over `--cpu-seconds`.

Ray 2.60 (its virtualenv from .ci/real-ray-venv, or --ray-python): the same workload on a `ray start --head`
in its own PID and network namespace (Ray's `ray stop` would stop every Ray process on the machine otherwise;
the browser runs in that namespace too), signed in with Ray's cookie, then click -> data for its Actors and
Jobs views (Ray's React UI: a table row showing the workload's actor class / job entrypoint) and its
dashboard's CPU (the dashboard process and its module subprocesses) with one tab on Actors.

Prints a table and writes bench/results/dashboard-ui-latest.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from dashboard_workload import ACTOR_CLASS, JOB_MARKER, READY, make_workload  # noqa: E402

VIEWS = (  # nav link, what shows that its data arrived
    ("overview", "[data-testid=nodes-alive]"),
    ("jobs", "[data-testid=jobs-table] tbody tr a"),
    ("cluster", "[data-testid=node-table] tbody tr a"),
    ("actors", "[data-testid=actor-table] tbody tr a"),
    ("metrics", "[data-testid=chart] canvas"),
    ("logs", "[data-testid=log-nodes] a"),
)
# Ray 2.60's UI (React + MUI): its navigation links by their text; a table row with the workload's data.
RAY_VIEWS = (("jobs", "Jobs", JOB_MARKER), ("actors", "Actors", ACTOR_CLASS))
# Own PID, mount and network namespaces, loopback up (as bench/runner.py runs Ray's autoscaling rows).
ISOLATE = ["unshare", "--pid", "--fork", "--mount-proc", "--net", "--kill-child", "sh", "-c",
           'ip link set lo up && exec "$@"', "isolated"]
RAY_DASHBOARD_PORT = 8265


def chromium() -> str:
    return shutil.which("chromium") or "/usr/bin/chromium"


def cpu_pct(procs: list[psutil.Process], seconds: float) -> float:
    """CPU of `procs` together (user + system), in % of one core, over `seconds`."""
    def total() -> float:
        t = 0.0
        for p in procs:
            try:
                c = p.cpu_times()
                t += c.user + c.system
            except psutil.NoSuchProcess:
                pass
        return t

    before, t0 = total(), time.monotonic()
    time.sleep(seconds)
    return round(100 * (total() - before) / (time.monotonic() - t0), 1)


def time_views(page, views, rounds: int = 2) -> dict[str, float]:
    """click -> data for each view: `views` are (name, click(), ready locator, away()); the last round counts
    (a person clicks around more than once)."""
    times = {}
    for _ in range(rounds):
        for name, click, ready, away in views:
            away()
            page.wait_for_timeout(300)
            t0 = time.perf_counter()
            click()
            ready().first.wait_for(timeout=30000)
            times[name] = round(time.perf_counter() - t0, 3)
    return times


# ------------------------------------------------------------------------------------------ OpenRay
def dashboard_process(cluster) -> tuple[psutil.Process, bool]:
    """The dashboard's process, and whether the head's node agent shares it (ray.agent.with_dashboard)."""
    proc = psutil.Process(cluster.head_node.processes["dashboard"].pid)
    return proc, "ray.agent.with_dashboard" in " ".join(proc.cmdline())


def run_openray(args: argparse.Namespace) -> dict:
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    from playwright.sync_api import sync_playwright
    from ray._common import process_registry
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="openray-ui-bench-")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "_temp_dir": temp_dir, "include_dashboard": True})
    result: dict = {}
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
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(dashboard + "/")
            page.fill("input[name=token]", os.environ["RAY_AUTH_TOKEN"])
            page.click("button[type=submit]")
            page.wait_for_selector("[data-testid=nodes-alive]")

            def nav(name: str):
                return lambda: page.click(f"nav a[data-nav={name}]")

            result["click_to_data_s"] = time_views(page, [
                (name, nav(name), lambda ready=ready: page.locator(ready), nav("jobs" if name == "overview" else "overview"))
                for name, ready in VIEWS])
            page.click("nav a[data-nav=actors]")
            page.locator("[data-testid=actor-table] tbody tr a").first.wait_for()
            proc, with_agent = dashboard_process(cluster)
            result["cpu_includes_node_agent"] = with_agent
            result["dashboard_cpu_pct_one_tab_actors"] = cpu_pct([proc], args.cpu_seconds)
            browser.close()
    finally:
        ray_module = sys.modules.get("ray")
        if ray_module is not None and ray_module.is_initialized():
            ray_module.shutdown()
        cluster.shutdown()
        process_registry.stop_all(temp_dir, force=True, grace_period_s=2)
        shutil.rmtree(temp_dir, ignore_errors=True)
    return result


# ------------------------------------------------------------------------------------------ Ray 2.60
def real_ray_python() -> str | None:
    try:
        return subprocess.run([str(REPO / ".ci/real-ray-venv")], check=True, capture_output=True,
                              text=True, timeout=1800).stdout.strip()
    except (subprocess.SubprocessError, OSError) as e:
        print(f"no Ray 2.60 virtualenv: {e}", file=sys.stderr)
        return None


def run_ray(args: argparse.Namespace, ray_python: str) -> dict:
    """Runs `--ray-inside` in its own namespaces; returns what it wrote (or the error)."""
    out = Path(tempfile.mkdtemp(prefix="rayui-out-")) / "ray.json"
    cmd = ISOLATE + [sys.executable, str(Path(__file__).resolve()), "--ray-inside", "--ray-python", ray_python,
                     "--actors", str(args.actors), "--tasks", str(args.tasks), "--jobs", str(args.jobs),
                     "--cpu-seconds", str(args.cpu_seconds), "--out", str(out)]
    log = BENCH / "results" / "logs" / "dashboard-ui-ray.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=3600,
                              check=False)
    result = json.loads(out.read_text()) if out.exists() else {}
    shutil.rmtree(out.parent, ignore_errors=True)
    if done.returncode != 0 and "error" not in result:
        result["error"] = f"exit {done.returncode}; see {log.relative_to(REPO)}"
    return result


def ray_dashboard_processes() -> list[psutil.Process]:
    """Ray's dashboard head process and its children (module subprocesses), in this PID namespace."""
    procs = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if re.search(r"ray/dashboard/dashboard\.py", cmdline):
            procs.append(p)
            procs += p.children(recursive=True)
    return procs


def ray_inside(args: argparse.Namespace) -> None:
    """Inside the namespaces: Ray's head, the workload (Ray's python), the browser; writes `--out`."""
    from playwright.sync_api import sync_playwright

    token = secrets.token_hex(32)
    ray_bin = Path(args.ray_python).parent
    temp_dir = tempfile.mkdtemp(prefix="rayui", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{ray_bin}:{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    dashboard = f"http://127.0.0.1:{RAY_DASHBOARD_PORT}"
    result: dict = {}
    workload = None
    try:
        started = subprocess.run(
            [str(ray_bin / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", "--num-cpus=4",
             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={RAY_DASHBOARD_PORT}",
             f"--temp-dir={temp_dir}", "--disable-usage-stats"],
            env=env, capture_output=True, text=True, timeout=300, check=False)
        if started.returncode != 0:
            raise RuntimeError(f"ray start --head failed: {(started.stdout + started.stderr)[-800:]}")
        workload = subprocess.Popen(
            [args.ray_python, str(BENCH / "dashboard_workload.py"), "--address", "127.0.0.1:6379",
             "--dashboard", dashboard, "--actors", str(args.actors), "--tasks", str(args.tasks),
             "--jobs", str(args.jobs)], env=env, cwd=temp_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for line in workload.stdout:
            if line.startswith(READY):
                result.update(json.loads(line[len(READY):]))
                break
        else:
            raise RuntimeError(f"the workload on Ray exited ({workload.wait()})")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_cookies([{"name": "ray-authentication-token", "value": token, "url": dashboard}])
            page = context.new_page()
            page.goto(dashboard + "/")

            def nav(text: str):
                return lambda: page.get_by_role("link", name=text, exact=True).first.click()

            page.get_by_role("link", name="Overview", exact=True).first.wait_for(timeout=60000)
            result["click_to_data_s"] = time_views(page, [
                (name, nav(text), lambda marker=marker: page.locator("tbody tr", has_text=marker), nav("Overview"))
                for name, text, marker in RAY_VIEWS])
            nav("Actors")()
            page.locator("tbody tr", has_text=ACTOR_CLASS).first.wait_for(timeout=30000)
            shots = BENCH / "results"
            page.screenshot(path=str(shots / "dashboard-ui-ray-actors.png"))
            procs = ray_dashboard_processes()
            result["dashboard_processes"] = len(procs)
            result["dashboard_cpu_pct_one_tab_actors"] = cpu_pct(procs, args.cpu_seconds)
            browser.close()
    except Exception as e:  # noqa: BLE001 - reported in the table, the run goes on
        result["error"] = f"{type(e).__name__}: {e}"[:2000]
    finally:
        if workload is not None:
            workload.stdin.close()
            try:
                workload.wait(timeout=60)
            except subprocess.TimeoutExpired:
                workload.kill()
        # Only this PID namespace's Ray processes (unshare --mount-proc): `ray stop` sees nothing else.
        subprocess.run([str(ray_bin / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120,
                       check=False)
        shutil.rmtree(temp_dir, ignore_errors=True)
        Path(args.out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------ report
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--cpu-seconds", type=float, default=30)
    parser.add_argument("--openray-only", action="store_true")
    parser.add_argument("--ray-python", help="Ray 2.60's interpreter (default: .ci/real-ray-venv)")
    parser.add_argument("--ray-inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_inside:
        ray_inside(args)
        return

    result: dict = {"actors": args.actors, "tasks": args.tasks, "jobs": args.jobs,
                    "note": "loaded machine (2 cores shared)"}
    result["openray"] = run_openray(args)
    if not args.openray_only:
        ray_python = args.ray_python or real_ray_python()
        result["ray"] = run_ray(args, ray_python) if ray_python else {"error": "no Ray 2.60 virtualenv"}
    out = BENCH / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dashboard-ui-latest.json").write_text(json.dumps(result, indent=1))
    o, r = result["openray"], result.get("ray") or {}
    print(f"Dashboard UI, {args.actors} actors (95% dead), {args.tasks} tasks, {args.jobs} jobs ({result['note']}); "
          f"workload made in {o.get('workload_s')} s (OpenRay), {r.get('workload_s', '-')} s (Ray)")
    print(f"{'view':<10} {'OpenRay click -> data (s)':>26} {'Ray 2.60':>10}   target < 1 s")
    ray_times = r.get("click_to_data_s") or {}
    for name, seconds in (o.get("click_to_data_s") or {}).items():
        theirs = f"{ray_times[name]:.3f}" if name in ray_times else "-"
        print(f"{name:<10} {seconds:>26.3f} {theirs:>10}   {'ok' if seconds < 1 else 'SLOW'}")
    agent = " (its process also runs the head's node agent)" if o.get("cpu_includes_node_agent") else ""
    print(f"dashboard CPU with one tab on Actors: OpenRay {o.get('dashboard_cpu_pct_one_tab_actors')}% of a core"
          f"{agent} (target < 5%); Ray 2.60 {r.get('dashboard_cpu_pct_one_tab_actors', '-')}% "
          f"({r.get('dashboard_processes', '-')} processes)")
    if r.get("error"):
        print(f"Ray 2.60: {r['error']}")
    sys.exit(0)


if __name__ == "__main__":
    main()
