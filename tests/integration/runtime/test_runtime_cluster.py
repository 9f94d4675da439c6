"""Multi-process and multi-node behaviour: `ray start` clusters, `ray.init` addresses, cleanup, node death."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import ray
from ray._common import process_registry
from ray._common.gcs_client import GcsClient
from ray.cluster_utils import Cluster


def _run_driver(cli, code: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**cli.env, **env},
                          capture_output=True, text=True, timeout=timeout)


def _shm_dirs(temp_dir: str) -> set[str]:
    """Shared-memory dirs of the sessions under `temp_dir` (other helpers' clusters run concurrently)."""
    sessions = [p.name for p in Path(temp_dir).glob("session_2*")]
    return {p.name for s in sessions for p in Path("/dev/shm").glob(f"openray-{s}*")}


def test_seed_commands_status_and_a_second_node(cli, port):
    cli.ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
            '--resources={"bob": 5}', "--num-cpus=5", "--include-dashboard=false")
    status = cli.ray("status").stdout
    assert " 0.0/5.0 CPU" in status and " 0.0/5.0 bob" in status
    assert status.count(" 1 node_") == 1
    cli.ray("start", f"--address=127.0.0.1:{port}", "--num-cpus=2", "--node-ip-address=127.0.0.1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = cli.ray("status").stdout
        if status.count(" 1 node_") == 2 and " 0.0/7.0 CPU" in status:
            break
        time.sleep(0.2)
    assert status.count(" 1 node_") == 2 and " 0.0/7.0 CPU" in status
    # A driver connects with address="auto" and uses both nodes' resources.
    out = _run_driver(cli, """
        import ray
        ray.init(address="auto")
        @ray.remote(resources={"bob": 1})
        def where():
            return ray.get_runtime_context().get_node_id()
        print(ray.cluster_resources()["CPU"], len(set(ray.get([where.remote() for _ in range(4)]))))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["7.0", "1"]
    pids = cli.recorded_pids()
    cli.ray("stop")
    cli.assert_no_processes(pids)


def test_init_errors_and_existing_cluster_rules(cli, port):
    cli.ray("start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
            "--include-dashboard=false")
    out = _run_driver(cli, """
        import ray
        try:
            ray.init(num_cpus=2)
        except ValueError as e:
            print("ERR1", e)
        ray.init()
        try:
            ray.init()
        except RuntimeError as e:
            print("ERR2", e)
        ray.init(ignore_reinit_error=True)
        print("OK", ray.is_initialized())
        ray.shutdown()
        print("DOWN", ray.is_initialized())
    """)
    assert out.returncode == 0, out.stderr
    assert "ERR1 When connecting to an existing cluster, num_cpus and num_gpus must not be provided." in out.stdout
    assert "ERR2 Maybe you called ray.init twice by accident?" in out.stdout
    assert "OK True" in out.stdout and "DOWN False" in out.stdout
    out = _run_driver(cli, "import ray; ray.init(address='auto')", RAY_ADDRESS="")
    assert out.returncode == 0
    cli.ray("stop")
    out = _run_driver(cli, "import ray; ray.init(address='auto')")
    assert out.returncode != 0 and "Could not find any running Ray instance" in out.stderr


def test_shutdown_and_a_crashed_driver_leave_no_process_or_shared_memory(cli):
    code = """
        import json, os, sys
        import numpy as np
        import ray
        ray.init(num_cpus=2, include_dashboard=False)
        @ray.remote
        def big():
            return np.ones(1_000_000)
        ref = big.remote()
        ray.get(ref)
        keep = ray.put(np.zeros(1_000_000))
        pids = [p["pid"] for p in map(json.loads, [open(os.path.join(d, f)).read()
                for d in [os.path.join(os.environ["TMPDIR"], "ray", "ray_processes")] for f in os.listdir(d)])]
        import psutil
        workers = [c.pid for p in pids for c in psutil.Process(p).children(recursive=True)]
        print(json.dumps(pids + workers), flush=True)
        if sys.argv[-1] == "crash":
            os._exit(1)
        ray.shutdown()
    """
    for mode in ("shutdown", "crash"):
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), mode], env=cli.env,
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.strip(), out.stderr
        pids = json.loads(out.stdout.strip().splitlines()[-1])
        assert len(pids) >= 3  # gcs, raylet and at least one worker
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in pids):
            time.sleep(0.1)
        cli.assert_no_processes(pids)
        assert not _shm_dirs(cli.temp_dir), f"shared memory left behind after {mode}"


def test_infeasible_task_prints_rays_warning(cli):
    out = _run_driver(cli, """
        import ray
        ray.init(num_cpus=1, include_dashboard=False)
        @ray.remote(num_cpus=4)
        def too_big():
            return 1
        ref = too_big.remote()
        ready, _ = ray.wait([ref], timeout=3)
        print("READY", len(ready))
    """)
    assert out.returncode == 0, out.stderr
    assert "READY 0" in out.stdout
    assert "The following resource request cannot be scheduled right now: {'CPU': 4.0}" in out.stderr
    assert "No available node types can fulfill resource request" in out.stderr


def test_detached_actor_outlives_its_driver(cli, port):
    cli.ray("start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
            "--include-dashboard=false")
    create = _run_driver(cli, """
        import ray
        ray.init(namespace="keep")
        @ray.remote
        class Store:
            def __init__(self): self.v = 0
            def add(self, n): self.v += n; return self.v
        s = Store.options(name="store", lifetime="detached").remote()
        t = Store.options(name="temp").remote()
        print(ray.get(s.add.remote(5)), ray.get(t.add.remote(1)))
    """)
    assert create.returncode == 0, create.stderr
    use = _run_driver(cli, """
        import time
        import ray
        ray.init(namespace="keep")
        print(ray.get(ray.get_actor("store").add.remote(1)))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                ray.get_actor("temp")
                time.sleep(0.2)
            except ValueError:
                print("temp gone")
                break
    """)
    assert use.returncode == 0, use.stderr
    assert use.stdout.split("\n")[:2] == ["6", "temp gone"]


@pytest.fixture
def two_node_cluster(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "_temp_dir": str(tmp_path / "ray"),
        "_system_config": {"health_check_period_ms": 200, "health_check_failure_threshold": 25},
    })
    try:
        yield cluster
    finally:
        cluster.shutdown()
        process_registry.stop_all(str(tmp_path / "ray"), force=True, grace_period_s=2)


def test_cluster_utils_places_work_by_resource_and_survives_node_death(two_node_cluster):
    cluster = two_node_cluster
    worker = cluster.add_node(num_cpus=2, resources={"special": 1})
    cluster.wait_for_nodes()
    cluster.connect()

    @ray.remote(resources={"special": 1})
    def on_special():
        import numpy as np

        return ray.get_runtime_context().get_node_id(), np.arange(300_000)

    node_id, arr = ray.get(on_special.remote())
    assert node_id == worker.node_id
    assert arr[-1] == 299_999  # a large object fetched from the other node

    @ray.remote(max_restarts=1, max_task_retries=-1, num_cpus=1)
    class Pinned:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    # Fill the head's only CPU so the actor lands on the worker node.
    @ray.remote(num_cpus=1)
    class Blocker:
        def ok(self):
            return True

    blocker = Blocker.options(scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
        cluster.head_node.node_id, soft=False)).remote()
    assert ray.get(blocker.ok.remote())
    actor = Pinned.remote()
    assert ray.get(actor.node.remote()) == worker.node_id

    started = Path(cluster.head_node.session_dir) / "slow-task-started"

    @ray.remote(resources={"special": 1}, max_retries=2)
    def slow_where(flag):
        import time as t

        Path(flag).write_text("x")
        t.sleep(3)
        return ray.get_runtime_context().get_node_id()

    ref = on_special.remote()
    # Done, but not read here: a read would leave a copy in the head's store, which outlives the node
    # (as Ray's secondary copies do).
    assert ray.wait([ref], timeout=60)[0] == [ref]
    slow = slow_where.remote(str(started))
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    replacement = cluster.add_node(num_cpus=2, resources={"special": 1})
    cluster.remove_node(worker, allow_graceful=False)
    # The running task is retried on the node that still has the resource it needs.
    assert ray.get(slow, timeout=120) == replacement.node_id
    # An object whose only copy was on the dead node is gone (no lineage reconstruction here).
    with pytest.raises(ray.exceptions.ObjectLostError):
        ray.get(ref, timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        if worker.node_id not in alive:
            break
        time.sleep(0.2)
    assert worker.node_id not in alive
    # The actor is restarted on a live node and its calls go on.
    assert ray.get(actor.node.remote(), timeout=60) == replacement.node_id


def test_store_bytes_return_to_zero_when_refs_go_away(tmp_path):
    import numpy as np

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path / "ray"))
    try:
        client = GcsClient(ray.get_runtime_context().gcs_address)

        def used() -> float:
            time.sleep(0.5)  # the raylet reports every 100 ms
            return sum(n.object_store_used_bytes for n in client.get_all_resource_usage())

        @ray.remote
        def make():
            return np.ones(1_000_000)

        refs = [ray.put(np.zeros(1_000_000)), make.remote()]
        ray.get(refs)
        assert used() >= 16_000_000
        del refs
        deadline = time.monotonic() + 10
        while used() and time.monotonic() < deadline:
            pass
        assert used() == 0
        client.close()
    finally:
        ray.shutdown()


def test_gpus_are_assigned_per_task_and_visible_in_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, _temp_dir=str(tmp_path / "ray"))
    try:
        assert ray.cluster_resources()["GPU"] == 2.0

        @ray.remote(num_gpus=1)
        def whole(barrier_s):
            import os
            import time as t

            t.sleep(barrier_s)
            return ray.get_gpu_ids(), os.environ["CUDA_VISIBLE_DEVICES"]

        @ray.remote(num_gpus=0.5)
        def half():
            return ray.get_runtime_context().get_accelerator_ids()["GPU"]

        results = ray.get([whole.remote(1.0), whole.remote(1.0)])
        ids = sorted(r[0][0] for r in results)
        assert ids == [0, 1]
        assert sorted(r[1] for r in results) == ["0", "1"]
        assert all(len(r) == 1 for r in ray.get([half.remote() for _ in range(4)]))
        assert ray.get_gpu_ids() == []  # the driver has none
    finally:
        ray.shutdown()


def test_a_full_store_spills_to_disk_and_restores_without_losing_objects(tmp_path):
    import numpy as np


    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False,
             _temp_dir=str(tmp_path / "ray"))
    try:
        arrays = [np.full(2_500_000, i, dtype=np.float64) for i in range(10)]  # 10 x 20 MB into 100 MB
        refs = [ray.put(a) for a in arrays]

        @ray.remote
        def total(a):
            return float(a.sum())

        assert ray.get([total.remote(r) for r in refs]) == [float(a.sum()) for a in arrays]
        for ref, arr in zip(refs, arrays, strict=True):
            assert np.array_equal(ray.get(ref), arr)
        cw = ray._private.worker.global_worker.core_worker

        async def stats():
            return await cw.raylet.request("get_node_stats", None)

        s = cw.run_sync(stats())
        assert s["spilled_bytes_total"] > 0 and s["restored_bytes_total"] > 0
        assert s["object_store_used_bytes"] <= 100 * 1024 * 1024
    finally:
        ray.shutdown()


def test_worker_output_is_printed_on_the_driver_with_rays_prefix(cli):
    out = _run_driver(cli, """
        import sys, time
        import ray
        ray.init(num_cpus=1, include_dashboard=False)
        @ray.remote
        def hello(i):
            print("hello from task", i)
            print("to stderr", file=sys.stderr)
        @ray.remote
        class Talker:
            def say(self):
                print("actor says hi")
        ray.get([hello.remote(i) for i in range(2)])
        ray.get(Talker.remote().say.remote())
        time.sleep(1.5)
    """)
    assert out.returncode == 0, out.stderr
    assert "(hello pid=" in out.stdout and ") hello from task 1" in out.stdout
    assert "(Talker pid=" in out.stdout and ") actor says hi" in out.stdout
    assert "(hello pid=" in out.stderr and ") to stderr" in out.stderr
    quiet = _run_driver(cli, """
        import time
        import ray
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        @ray.remote
        def hello():
            print("should not appear")
        ray.get(hello.remote())
        time.sleep(1)
    """)
    assert quiet.returncode == 0 and "should not appear" not in quiet.stdout


def test_runtime_envs_beyond_env_vars_go_through_the_node_agent(tmp_path):
    pytest.importorskip("ray.agent")
    pytest.importorskip("ray._common.runtime_env.packaging")
    work = tmp_path / "work"
    work.mkdir()
    (work / "shipped_module.py").write_text("VALUE = 'shipped'\n")
    ray.init(num_cpus=1, runtime_env={"working_dir": str(work), "env_vars": {"FROM_JOB": "yes"}},
             _temp_dir=str(tmp_path / "ray"))
    try:
        @ray.remote
        def use_it():
            import os

            import shipped_module

            return shipped_module.VALUE, os.environ["FROM_JOB"]

        assert ray.get(use_it.remote(), timeout=120) == ("shipped", "yes")

        @ray.remote(runtime_env={"pip": ["definitely-not-a-real-package-xyz==9.9"]})
        def never_runs():
            return 1

        with pytest.raises(ray.exceptions.RuntimeEnvSetupError, match="definitely-not-a-real-package"):
            ray.get(never_runs.remote(), timeout=300)
    finally:
        ray.shutdown()
