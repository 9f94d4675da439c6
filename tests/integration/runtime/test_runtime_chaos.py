"""Chaos: one workload (tasks, an actor with restarts, objects, a submitted job) while, in turn, a worker, a
raylet (of the non-head node), the GCS (with Redis, started again), the dashboard and an agent are SIGKILLed.

Each run prints `<victim>: N accepted, M lost` and fails when M > 0 or a result is wrong. Bounded: a two-node
loopback cluster, ~100 units of work, each run well under a minute on an idle machine.
"""

from __future__ import annotations

import os
import sys
import time

import psutil
import pytest
import ray
from polling import wait_for
from ray._common import process_registry
from ray.cluster_utils import Cluster

VICTIMS = ["worker", "raylet", "gcs", "dashboard", "agent"]
JOB_SCRIPT = """
import ray
ray.init()

@ray.remote(max_retries=5)
def inc(x):
    import time
    time.sleep(0.05)
    return x + 1

assert ray.get([inc.remote(i) for i in range(40)], timeout=240) == list(range(1, 41))
print("chaos job ok")
"""


@ray.remote(max_retries=5)
def work(i: int, blob: bytes) -> tuple[int, int]:
    time.sleep(0.2)
    return i * 7 + len(blob), os.getpid()


@ray.remote(max_restarts=-1, max_task_retries=-1)
class Tripler:
    def triple(self, x: int) -> int:
        return 3 * x

    def pid(self) -> int:
        return os.getpid()


def _task_workers(node) -> list[psutil.Process]:
    """Worker processes of a node (forked from its template, so grandchildren of its raylet)."""
    raylet = psutil.Process(node.processes["raylet"].pid)
    return [w for template in raylet.children() for w in template.children()]


def _job_status(core, submission_id: str) -> str | None:
    from ray.dashboard.modules.job.common import JobInfoStorage

    info = JobInfoStorage(core.gcs).get_sync(submission_id)  # the GCS, not the dashboard (which may be dead)
    return info.status.value if info else None


@pytest.mark.parametrize("victim", VICTIMS)
def test_workload_survives_sigkill_of(victim, tmp_path, redis_server):
    from ray.job_submission import JobSubmissionClient

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "_temp_dir": str(tmp_path / "ray"), "include_dashboard": True,
        "redis_address": redis_server.address, "redis_password": redis_server.password,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 6},
    })
    try:
        head = cluster.head_node
        other = cluster.add_node(num_cpus=2)
        cluster.connect(namespace="chaos")
        core = ray._private.worker.global_worker.core_worker
        script = tmp_path / "chaos_job.py"
        script.write_text(JOB_SCRIPT)
        assert head.wait_for_dashboard(60), "the dashboard did not start listening"
        client = JobSubmissionClient(f"http://{head.dashboard_url}")
        job = client.submit_job(entrypoint=f"{sys.executable} {script}", submission_id=f"chaos_{victim}")

        blobs = [b"%d" % i * (150_000 + i) for i in range(4)]  # through the object store, not inline
        objects = [ray.put(b) for b in blobs]
        actor = Tripler.remote()
        actor_pid = ray.get(actor.pid.remote(), timeout=60)
        expected: list[tuple[ray.ObjectRef, object]] = [(o, b) for o, b in zip(objects, blobs, strict=True)]

        def submit(start: int, n: int) -> None:
            for i in range(start, start + n):
                blob = blobs[i % len(blobs)]
                expected.append((work.options(scheduling_strategy="SPREAD").remote(i, objects[i % len(blobs)]),
                                 i * 7 + len(blob)))
                expected.append((actor.triple.remote(i), 3 * i))

        submit(0, 30)
        time.sleep(1.0)  # work is in flight on both nodes
        _kill(victim, cluster, head, other, actor_pid)
        submit(30, 30)
        lost, wrong = 0, []
        for ref, want in expected:
            try:
                got = ray.get(ref, timeout=240)
            except Exception as e:  # noqa: BLE001 - a lost result, whatever the error
                lost += 1
                wrong.append((want, repr(e)[:200]))
                continue
            got = got[0] if isinstance(got, tuple) else got
            if got != want:
                wrong.append((want, got))
        status = wait_for(lambda: (s := _job_status(core, job)) in ("SUCCEEDED", "FAILED", "STOPPED") and s, 240,
                          "the submitted job to finish", interval=0.2, ignore_errors=True)
        if status != "SUCCEEDED":
            lost += 1
            wrong.append(("job", status))
        accepted = len(expected) + 1
        print(f"{victim}: {accepted} accepted, {lost} lost")
        assert lost == 0 and not wrong, wrong[:10]
        if victim == "worker":
            assert ray.get(actor.pid.remote()) != actor_pid  # it was really killed, and restarted
    finally:
        cluster.shutdown()
        process_registry.stop_all(str(tmp_path / "ray"), force=True, grace_period_s=2)


def _kill(victim: str, cluster: Cluster, head, other, actor_pid: int) -> None:
    if victim == "worker":
        os.kill(actor_pid, 9)
        busy = [w for w in _task_workers(other) + _task_workers(head) if w.pid != actor_pid]
        assert busy, "no task worker running to kill"
        busy[0].kill()
    elif victim == "raylet":
        other.processes["raylet"].kill()
    elif victim == "gcs":
        head.kill_gcs_server()
        time.sleep(2)
        head.start_gcs_server()
    elif victim == "dashboard":
        head.processes["dashboard"].kill()
    elif victim == "agent":
        other.processes["agent"].kill()
    else:
        raise ValueError(victim)
