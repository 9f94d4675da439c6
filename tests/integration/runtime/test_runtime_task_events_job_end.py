"""Issue 10 item 1: no task event is lost when a job ends. A driver (run directly, or a submitted job's
entrypoint) that runs tasks and exits at once (its workers are ended by the raylet a moment later, its own last
report goes with `ray.shutdown`) leaves every task listed FINISHED, with where it ran (the worker its owner
names, and that worker's node and pid from its own first report), in the state API that a second process reads
over HTTP, as Ray's drivers and workers flush their task events when they exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from local_ray import local_ray_with_dashboard
from polling import wait_for
from ray.util import state
from ray.util.state.api import StateApiClient


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with local_ray_with_dashboard(tmp_path_factory.mktemp("job_end") / "ray") as c:
        yield c


def _alive(pids: set[int]) -> list[str]:
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return alive


# Runs tasks, a task that owns tasks of its own, an actor and its calls, and exits at once: nothing waits for a
# report interval to pass.
DRIVER = textwrap.dedent("""
    import os, sys, ray
    ray.init(address=sys.argv[1])
    print("job", ray.get_runtime_context().get_job_id(), flush=True)

    @ray.remote
    def quick(i):
        return os.getpid()

    @ray.remote
    def outer(n):  # owns its inner tasks: their FINISHED events are its worker's to report
        return [os.getpid(), *ray.get([quick.remote(i) for i in range(n)])]

    @ray.remote
    class Counter:
        def add(self, i):
            return os.getpid()

    pids = ray.get([quick.remote(i) for i in range(int(sys.argv[2]))])
    pids += ray.get(outer.remote(int(sys.argv[3])))
    counter = Counter.remote()
    pids += ray.get([counter.add.remote(i) for i in range(int(sys.argv[4]))])
    print("pids", " ".join(sorted({str(pid) for pid in pids})), flush=True)
""")
N, INNER, CALLS = 30, 10, 5
TOTAL = N + 1 + INNER + 1 + CALLS  # tasks, outer, its inner tasks, the actor's creation, its calls


def test_a_driver_that_exits_at_once_leaves_every_task_finished_with_where_it_ran(cluster, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    done = subprocess.run([sys.executable, str(script), cluster["gcs"], str(N), str(INNER), str(CALLS)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _check_the_jobs_tasks(cluster["url"], done.stdout)


def test_a_submitted_job_that_ends_leaves_every_task_finished_with_where_it_ran(cluster, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    client = JobSubmissionClient(cluster["url"])
    job = client.submit_job(entrypoint=f"{sys.executable} {script} {cluster['gcs']} {N} {INNER} {CALLS}")
    status = wait_for(lambda: (s := client.get_job_status(job)).is_terminal() and s, 120, interval=0.3)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs
    _check_the_jobs_tasks(cluster["url"], logs)


def _check_the_jobs_tasks(url: str, output: str) -> None:
    lines = dict(line.split(" ", 1) for line in output.splitlines() if line.startswith(("job ", "pids ")))
    job_id, worker_pids = lines["job"], {int(p) for p in lines["pids"].split()}

    # The job's workers are ended by their raylet (the actor's by the GCS through it), every one of them: also the
    # one that ran `outer`, which may hold a lease on itself for its inner tasks when its job ends.
    wait_for(lambda: not _alive(worker_pids), 30, interval=0.3)
    # The GCS fails what it saw no end of 2 s after the job ends: past that, the table is what it will stay.
    time.sleep(3)
    rows = state.list_tasks(address=url, filters=[("job_id", "=", job_id)], detail=True, limit=1000)
    assert len(rows) == TOTAL, sorted((r.name, r.state) for r in rows)
    not_finished = [(r.name, r.state, r.error_message) for r in rows if r.state != "FINISHED"]
    assert not_finished == [], not_finished
    # Where each ran: its owner names the worker (from the reply), whose own first report named its node and pid.
    no_worker = [r.name for r in rows if not r.worker_id or not r.node_id or r.worker_pid not in worker_pids]
    assert no_worker == [], f"{len(no_worker)} of {TOTAL} tasks lack where they ran: {no_worker}"
    assert all(r.start_time_ms and r.end_time_ms and r.start_time_ms <= r.end_time_ms for r in rows)

    # The driver's own task ended too (its last report went with ray.shutdown at exit).
    [driver] = StateApiClient(address=url).list("tasks", filters=[("job_id", "=", job_id),
                                                                  ("type", "=", "DRIVER_TASK")],
                                                detail=True, exclude_driver=False)
    assert driver.state == "FINISHED"
