"""Issue 10 items 1 and 7: the GCS's tables stay bounded (task events, dead actors) and say what they dropped;
drivers run directly are listed FAILED when they crash or are killed, SUCCEEDED when they end cleanly; an exited
driver's pending demand leaves `ray status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request

import pytest
import ray
from local_ray import local_ray_with_dashboard
from polling import wait_for
from ray._common import auth
from ray.protocol import actor_pb2 as apb
from ray.util import state
from ray.util.state.exception import RayStateApiException

MAX_TASKS = 30
MAX_DEAD_ACTORS_IN_GCS = 6
MAX_DEAD_ACTORS_IN_DASHBOARD = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    old = os.environ.get("RAY_DASHBOARD_MAX_ACTORS_TO_CACHE")
    os.environ["RAY_DASHBOARD_MAX_ACTORS_TO_CACHE"] = str(MAX_DEAD_ACTORS_IN_DASHBOARD)  # the dashboard inherits it
    try:
        with local_ray_with_dashboard(tmp_path_factory.mktemp("bounds") / "ray", _system_config={
                "task_events_max_num_task_in_gcs": MAX_TASKS,
                "maximum_gcs_destroyed_actor_cached_count": MAX_DEAD_ACTORS_IN_GCS}) as c:
            yield c
    finally:
        if old is None:
            os.environ.pop("RAY_DASHBOARD_MAX_ACTORS_TO_CACHE", None)
        else:
            os.environ["RAY_DASHBOARD_MAX_ACTORS_TO_CACHE"] = old


@ray.remote
def one():
    return 1


@ray.remote
class Doomed:
    def ping(self):
        return "pong"


def test_task_event_table_keeps_the_newest_attempts_and_reports_the_dropped(cluster):
    url = cluster["url"]
    ray.get([one.remote() for _ in range(MAX_TASKS + 20)])

    def full():
        rows = state.list_tasks(address=url, limit=1000, raise_on_missing_output=False)
        return rows if len(rows) == MAX_TASKS else None

    rows = wait_for(full, interval=0.3)
    assert all(r.name == "one" for r in rows)
    with pytest.raises(RayStateApiException, match="data truncation"):
        state.list_tasks(address=url, limit=1000)
    query = urllib.parse.urlencode({"limit": 1000})
    request = urllib.request.Request(f"{url}/api/v0/tasks?{query}", headers=auth.http_headers())
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())["data"]["result"]
    assert body["num_after_truncation"] == MAX_TASKS
    assert body["total"] >= MAX_TASKS + 20  # the driver's own attempt is dropped too when it is the oldest
    assert any("task attempts were dropped" in w and "RAY_task_events_max_num_task_in_gcs" in w
               for w in body["warnings"])


def test_dead_actors_are_bounded_in_the_gcs_and_in_the_dashboard(cluster):
    url = cluster["url"]
    for _ in range(MAX_DEAD_ACTORS_IN_GCS + 3):
        actor = Doomed.remote()
        assert ray.get(actor.ping.remote()) == "pong"
        ray.kill(actor)
    from ray._private.worker import global_worker

    gcs = global_worker.core_worker.gcs

    def gcs_dead():
        reply = gcs.call(gcs.stubs.actor.GetAllActorInfo, apb.GetAllActorInfoRequest())
        dead = [a for a in reply.actor_table_data if a.state == apb.ActorTableData.DEAD]
        return len(dead) == MAX_DEAD_ACTORS_IN_GCS

    wait_for(gcs_dead, interval=0.3)
    listed = state.list_actors(address=url, filters=[("state", "=", "DEAD")])
    assert len(listed) == MAX_DEAD_ACTORS_IN_DASHBOARD


DRIVER = textwrap.dedent("""
    import os, sys, time, ray
    ray.init(address=sys.argv[1])
    print("job", ray.get_runtime_context().get_job_id(), flush=True)
    mode = sys.argv[2]
    if mode == "crash":
        raise RuntimeError("the driver crashed on purpose")
    if mode == "hang":
        @ray.remote(num_cpus=64)
        def never():
            pass
        never.remote()
        time.sleep(600)
""")


def _start_driver(tmp_path, gcs: str, mode: str) -> tuple[subprocess.Popen, str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen([sys.executable, str(script), gcs, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("job "), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.split()[1]


def _job(url: str, job_id: str):
    jobs = [j for j in state.list_jobs(address=url) if j.job_id == job_id]
    return jobs[0] if jobs else None


def test_driver_jobs_report_how_the_driver_ended(cluster, tmp_path):
    url, gcs = cluster["url"], cluster["gcs"]
    clean, clean_id = _start_driver(tmp_path, gcs, "clean")
    assert clean.wait(60) == 0
    crash, crash_id = _start_driver(tmp_path, gcs, "crash")
    assert crash.wait(60) == 1
    killed, killed_id = _start_driver(tmp_path, gcs, "hang")
    try:
        # Its infeasible task is demand while it lives ...
        wait_for(lambda: "{'CPU': 64.0}" in _status(gcs), interval=0.3)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(30)
    finally:
        if killed.poll() is None:
            killed.kill()
    # ... and leaves `ray status` once it is gone (issue 10 item 7).
    wait_for(lambda: "{'CPU': 64.0}" not in _status(gcs), interval=0.3)

    assert wait_for(lambda: (j := _job(url, clean_id)) and j.status != "RUNNING" and j,
                    interval=0.3).status == "SUCCEEDED"
    crashed = wait_for(lambda: (j := _job(url, crash_id)) and j.status != "RUNNING" and j, interval=0.3)
    assert crashed.status == "FAILED"
    assert "RuntimeError: the driver crashed on purpose" in crashed.message
    gone = wait_for(lambda: (j := _job(url, killed_id)) and j.status != "RUNNING" and j, interval=0.3)
    assert gone.status == "FAILED" and "killed or crashed" in gone.message
    listed = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "job", "list", "--address", url],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "FAILED" in listed.stdout


def _status(gcs: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "status", "--address", gcs],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout
