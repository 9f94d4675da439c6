"""GCS fault tolerance with a real Redis: the GCS is SIGKILLed mid-workload and started again; nothing is lost.

Also what happens without Redis: the health endpoints tell the truth and nothing lingers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import ray
from polling import wait_for
from ray._common import process_registry
from ray.cluster_utils import Cluster


@pytest.fixture
def ft_cluster(tmp_path, redis_server):
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "_temp_dir": str(tmp_path / "ray"), "include_dashboard": True,
        "redis_address": redis_server.address, "redis_password": redis_server.password,
    })
    try:
        yield cluster
    finally:
        cluster.shutdown()
        process_registry.stop_all(str(tmp_path / "ray"), force=True, grace_period_s=2)


@ray.remote(max_restarts=-1, max_task_retries=-1)
class Counter:
    def __init__(self):
        self.value = 0

    def add(self, n: int) -> int:
        self.value += n
        return self.value

    def pid(self) -> int:
        return os.getpid()


@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote
def slow(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x + 1


def test_gcs_killed_mid_workload_and_restarted_from_redis_loses_nothing(ft_cluster, redis_server, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    cluster = ft_cluster
    cluster.add_node(num_cpus=2)
    cluster.connect(namespace="ft")
    head = cluster.head_node
    accepted, lost, wrong = 0, 0, []

    # Before the kill: a detached named actor, a placement group, KV, a put object, a submitted job.
    counter = Counter.options(name="counter", lifetime="detached").remote()
    assert ray.get(counter.add.remote(5)) == 5
    actor_pid = ray.get(counter.pid.remote())
    pg = ray.util.placement_group([{"CPU": 0.1}], name="kept_pg")
    ray.get(pg.ready(), timeout=60)
    core = ray._private.worker.global_worker.core_worker
    core.internal_kv_put(b"ft-key", b"ft-value")
    big = ray.put(b"y" * (2 << 20))
    assert head.wait_for_dashboard(60), "the dashboard did not start listening"
    client = JobSubmissionClient(f"http://{head.dashboard_url}")
    job = client.submit_job(entrypoint="python -c \"import time; time.sleep(8); print('job survived the GCS')\"",
                            submission_id="ft_job")
    wait_for(lambda: client.get_job_status(job) == JobStatus.RUNNING, 120, "the job to run", interval=0.2,
             ignore_errors=True)
    long_running = [slow.remote(i, 6) for i in range(2)]
    before = [square.remote(i) for i in range(50)]
    accepted += len(before) + len(long_running)
    assert sorted(k.decode() for k in redis_server.keys()) == sorted(
        f"RAYdefault@{t}" for t in ("CLUSTER", "NODE", "JOB", "KV", "ACTOR", "ACTOR_TASK_SPEC", "PLACEMENT_GROUP"))

    # SIGKILL the GCS; work keeps going on raylets and workers meanwhile; then start it again.
    killed_at = time.monotonic()
    head.kill_gcs_server()
    during = [square.remote(i) for i in range(50, 80)]  # leases come from raylets, not the GCS
    accepted += len(during)
    assert ray.get(counter.add.remote(1), timeout=30) == 6  # the actor keeps running: its state is intact
    accepted += 1
    time.sleep(3)
    head.start_gcs_server()

    # Raylets and this driver reconnect; the actor was adopted, not restarted; named things resolve.
    for i, value in enumerate(ray.get(before + during, timeout=120)):
        if value != i * i:
            wrong.append((i, value))
    for i, value in enumerate(ray.get(long_running, timeout=120)):
        if value != i + 1:
            wrong.append(("slow", i, value))
    first_after = ray.get(square.remote(9), timeout=120)
    print(f"GCS kill to first task after restart: {time.monotonic() - killed_at:.1f} s")
    assert first_after == 81
    again = ray.get_actor("counter", namespace="ft")
    assert ray.get(again.add.remote(1), timeout=60) == 7
    assert ray.get(again.pid.remote()) == actor_pid
    accepted += 2
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 2, nodes
    assert core.internal_kv_get(b"ft-key") == b"ft-value"
    assert ray.get(big) == b"y" * (2 << 20)
    assert ray.util.get_placement_group("kept_pg").id == pg.id
    from ray.util import placement_group_table

    assert placement_group_table(pg)["state"] == "CREATED"
    # A new actor of a class first exported before the kill (the function table survived) on a new worker.
    fresh = Counter.remote()
    assert ray.get(fresh.add.remote(2), timeout=60) == 2
    accepted += 1
    status = wait_for(lambda: (s := client.get_job_status(job)).is_terminal() and s, 120, "the job to finish",
                      interval=0.2, ignore_errors=True)
    assert status == JobStatus.SUCCEEDED, client.get_job_logs(job)
    assert "job survived the GCS" in client.get_job_logs(job)
    assert [j.submission_id for j in client.list_jobs() if j.submission_id] == ["ft_job"]  # + this driver
    accepted += 1
    lost = len(wrong)
    print(f"{accepted} accepted, {lost} lost")
    assert lost == 0, wrong
    ray.kill(again)


@ray.remote(num_cpus=1)
def first_seen_here(x: int) -> int:
    return x * 3


def test_a_task_runs_on_a_leased_worker_while_the_gcs_is_down_even_its_first_of_a_function(ft_cluster):
    """A worker that never ran a function gets it with the task from its submitter: no read of the function table
    in the GCS, so neither a dead nor a restarting GCS holds the task up (Ray's GCS restarts in milliseconds)."""
    cluster = ft_cluster
    cluster.connect(namespace="ft")
    # Both take the head's 2 CPUs: one lease, one worker, and `queued` (exported to the GCS now) runs on that
    # worker after `busy`, by which time the GCS is gone.
    busy = slow.options(num_cpus=2).remote(1, 4)
    queued = first_seen_here.options(num_cpus=2).remote(5)
    wait_for(lambda: ray.available_resources().get("CPU", 0) == 0, 60, "the first task to hold its lease",
             interval=0.2, ignore_errors=True)
    cluster.head_node.kill_gcs_server()
    try:
        started = time.monotonic()
        assert ray.get(busy, timeout=30) == 2
        assert ray.get(queued, timeout=15) == 15
        assert ray.get(first_seen_here.options(num_cpus=2).remote(6), timeout=15) == 18
        print(f"first task of a function on a worker with the GCS down: {time.monotonic() - started:.2f} s")
    finally:
        cluster.head_node.start_gcs_server()


def test_ray_start_takes_redis_flags_and_a_wrong_password_is_a_clear_error(cli, redis_server, port):
    started = cli.ray("start", "--head", f"--port={port}", f"--redis-address={redis_server.address}",
                      "--num-cpus=1", "--include-dashboard=false", REDIS_PASSWORD=redis_server.password)
    assert "Ray runtime started" in started.stdout + started.stderr
    assert b"RAYdefault@NODE" in redis_server.keys()
    cli.ray("stop", "--force")

    # KubeRay's redis-cleanup Job runs this in the head image: the cluster's keys go, another cluster's stay.
    import redis
    from ray_operator.builders.gcs_ft import CLEANUP_SCRIPT

    other = redis.Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
    other.hset("RAYother@KV", "k", "v")
    other.close()
    env = {**cli.env, "RAY_REDIS_ADDRESS": redis_server.address, "REDIS_PASSWORD": redis_server.password,
           "RAY_external_storage_namespace": "default"}
    cleanup = subprocess.run([sys.executable, "-c", CLEANUP_SCRIPT], env=env, capture_output=True, text=True,
                             timeout=60)
    assert cleanup.returncode == 0, cleanup.stderr
    assert redis_server.keys() == [b"RAYother@KV"]

    bad = cli.ray("start", "--head", f"--port={port}", f"--redis-address={redis_server.address}",
                  "--redis-password=wrong", "--num-cpus=1", "--include-dashboard=false", check=False)
    assert bad.returncode != 0
    assert "Redis at" in bad.stderr and "refused the GCS" in bad.stderr and "--redis-password" in bad.stderr, bad.stderr

    malformed = cli.ray("start", "--head", "--redis-address=nonsense", check=False)
    assert malformed.returncode != 0 and "Invalid Redis address 'nonsense'" in malformed.stderr


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_without_redis_health_endpoints_tell_the_truth_and_nothing_lingers(cli, port):
    from ray._common.net import free_port

    agent_port = free_port()
    cli.ray("start", "--head", f"--port={port}", "--num-cpus=1", f"--dashboard-agent-listen-port={agent_port}",
            RAY_gcs_rpc_server_reconnect_timeout_s="5")
    info = json.loads(next((cli.root / "ray").glob("session_latest/node_*.json")).read_text())
    dashboard = info["dashboard_url"]
    raylet_healthz = f"http://127.0.0.1:{agent_port}/api/local_raylet_healthz"
    assert _get(raylet_healthz) == (200, "success")
    assert _get(f"http://{dashboard}/api/gcs_healthz") == (200, "success")

    # The raylet gone: the agent's raylet check fails at once, and the agent exits instead of lingering.
    os.kill(info["pids"]["raylet"], signal.SIGKILL)
    status, body = wait_for(lambda: (r := _get(raylet_healthz))[0] != 200 and r, 30, "local_raylet_healthz to fail",
                            interval=0.05, ignore_errors=True)
    assert status == 503 and "Local Raylet failed" in body
    assert _get(f"http://127.0.0.1:{agent_port}/api/healthz")[0] == 503
    wait_for(lambda: not _alive(info["pids"]["agent"]), 60, "the agent to exit", interval=0.2,
             ignore_errors=True)

    # The GCS gone: gcs_healthz fails within seconds; the dashboard exits after gcs_rpc_server_reconnect_timeout_s.
    os.kill(info["pids"]["gcs_server"], signal.SIGKILL)
    status, _ = wait_for(lambda: (r := _get(f"http://{dashboard}/api/gcs_healthz"))[0] != 200 and r, 30,
                         "gcs_healthz to fail", interval=0.2, ignore_errors=True)
    assert status == 503
    wait_for(lambda: not _alive(info["pids"]["dashboard"]), 60, "the dashboard to exit", interval=0.2,
             ignore_errors=True)
    assert "Dashboard exiting because it could not reach the GCS" in (
        cli.root / "ray" / "session_latest" / "logs" / "dashboard.log").read_text()


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@ray.remote(num_cpus=1)
class SlowStart:
    def __init__(self, marker: str):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(4)

    def pid(self) -> int:
        return os.getpid()


def test_gcs_killed_while_an_actor_is_being_created_leaves_one_instance_and_no_leaked_lease(ft_cluster, tmp_path):
    cluster = ft_cluster
    cluster.connect(namespace="ft")
    head = cluster.head_node
    marker = tmp_path / "constructed"
    actor = SlowStart.options(name="slow").remote(str(marker))
    wait_for(lambda: marker.exists() and marker.read_text(), 60, "the constructor to start", interval=0.2,
             ignore_errors=True)
    head.kill_gcs_server()  # the constructor's reply to the GCS is lost with it
    time.sleep(1)
    head.start_gcs_server()
    assert ray.get(actor.pid.remote(), timeout=120) == int(marker.read_text().split()[0])
    assert ray.get(ray.get_actor("slow", namespace="ft").pid.remote(), timeout=60) == int(marker.read_text().split()[0])
    assert len(marker.read_text().split()) == 1, "the actor was constructed twice"
    ray.kill(actor)
    wait_for(lambda: ray.available_resources().get("CPU") == 2, 60,
             "every CPU to be free again (no leaked lease)", interval=0.2, ignore_errors=True)


def test_a_batched_write_lands_in_redis_in_one_transaction(redis_server):
    """The GCS writes an actor's row, its creation spec and lease together: all of them, in the tables a
    restarted GCS reads (Ray's RAY<namespace>@<TABLE> hashes)."""
    import asyncio

    from ray.gcs.redis_store import RedisStoreClient

    async def scenario() -> tuple[dict, dict]:
        store = RedisStoreClient(redis_server.address, password=redis_server.password, namespace="batch")
        await store.connect()
        await store.put("ACTOR_LEASE", b"a1", b"lease")
        await store.write([("ACTOR", b"a1", b"row"), ("ACTOR_TASK_SPEC", b"a1", b"spec")], [("ACTOR_LEASE", b"a1")])
        tables = {t: await store.get_all(t) for t in ("ACTOR", "ACTOR_TASK_SPEC", "ACTOR_LEASE")}
        await store.write([], [("ACTOR_TASK_SPEC", b"a1")])
        after = await store.get_all("ACTOR_TASK_SPEC")
        await store.close()
        return tables, after

    import redis

    admin = redis.Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
    admin.config_resetstat()
    tables, after = asyncio.run(scenario())
    stats = admin.info("commandstats")
    assert stats["cmdstat_exec"]["calls"] == 2 and stats["cmdstat_multi"]["calls"] == 2  # one MULTI/EXEC a write
    assert tables == {"ACTOR": {b"a1": b"row"}, "ACTOR_TASK_SPEC": {b"a1": b"spec"}, "ACTOR_LEASE": {}}
    assert after == {}
    assert sorted(redis_server.keys()) == [b"RAYbatch@ACTOR"]
