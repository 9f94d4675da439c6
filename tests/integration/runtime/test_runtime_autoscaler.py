"""The autoscaler on real processes: `ray.cluster_utils.AutoscalingCluster` (the fake_multinode provider adds
raylets on this machine) scales up from queued tasks, placement groups and request_resources(), keeps to
max_workers, removes idle nodes only after draining them (a node running a task, or holding an object someone
references, stays), reports infeasible demand and failed launches without launching in a loop; and
`ray start --head --autoscaling-config=` with a bad config starts a working cluster that says what is wrong.
Each cluster lives in the test's own temp dir."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from polling import wait_for
from ray._common import process_registry
from ray.autoscaler.sdk import request_resources
from ray.cluster_utils import AutoscalingCluster
from ray.util import placement_group, remove_placement_group

RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def _workers() -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"] and "node:__internal_head__" not in n["Resources"]]


def _status(address: str, *flags: str) -> str:
    return subprocess.run([*RAY, "status", "--address", address, *flags], capture_output=True, text=True,
                          timeout=60).stdout


def _monitor_log(temp_dir: Path) -> str:
    logs = [p for p in temp_dir.glob("session_2*/logs/monitor.log")]  # not session_latest (a link)
    return "\n".join(p.read_text() for p in logs)


def _launched(temp_dir: Path) -> int:
    return sum(int(n) for n in re.findall(r"Adding (\d+) node\(s\)", _monitor_log(temp_dir)))


@pytest.fixture
def autoscaling(tmp_path, monkeypatch):
    """Starts an AutoscalingCluster in this test's temp dir; connects the driver; always cleans up."""
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setenv("AUTOSCALER_METRIC_PORT", "0")  # tests run side by side: any free port
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    started = []

    def start(worker_node_types: dict, head_resources: dict | None = None, **config) -> AutoscalingCluster:
        cluster = AutoscalingCluster(head_resources=head_resources or {"CPU": 0}, worker_node_types=worker_node_types,
                                     **config)
        cluster.start()
        started.append(cluster)
        ray.init("auto")
        return cluster

    try:
        yield start
    finally:
        ray.shutdown()
        for cluster in started:
            cluster.shutdown()
        process_registry.stop_all(str(tmp_path / "ray"), force=True, grace_period_s=2)


@ray.remote(num_cpus=1)
class Square:
    """Holds its CPU while it lives (a task blocked in ray.get would lend its CPU out)."""

    def square(self, i: int):
        return i * i, ray.get_runtime_context().get_node_id()


def test_scale_up_for_queued_actors_then_down_after_the_idle_timeout(autoscaling, tmp_path):
    cluster = autoscaling({"cpu2": {"resources": {"CPU": 2}, "node_config": {}, "min_workers": 0, "max_workers": 2}},
                          idle_timeout_minutes=0.1)
    assert _workers() == []
    actors = [Square.remote() for _ in range(4)]  # four CPUs at once: two new 2-CPU nodes
    results = ray.get([a.square.remote(i) for i, a in enumerate(actors)], timeout=120)
    assert sorted(r[0] for r in results) == [0, 1, 4, 9]  # every call's result
    assert len({r[1] for r in results}) == 2
    text = _status(cluster.address)
    assert "Autoscaler status" in text and re.search(r"^ \d cpu2$", text, re.M), text
    assert " 1 ray.head.default" in text
    for a in actors:
        ray.kill(a)
    # The same text from the dashboard, and the autoscaler's metrics where the GCS says they are.
    import requests
    from ray._common import auth
    from ray._common.gcs_client import GcsClient

    dashboard = cluster._node.dashboard_url
    reply = requests.get(f"http://{dashboard}/api/cluster_status?format=1", headers=auth.http_headers(),
                         timeout=30).json()
    assert reply["result"] and "Autoscaler status" in reply["data"]["clusterStatus"], reply
    gcs = GcsClient(cluster.address)
    try:
        metrics_address = gcs.internal_kv_get(b"AutoscalerMetricsAddress").decode()
    finally:
        gcs.close()
    metrics = requests.get(f"http://{metrics_address}/metrics", timeout=30).text
    assert 'autoscaler_active_nodes{NodeType="cpu2"' in metrics and "autoscaler_started_nodes_total" in metrics
    # Idle for 6 s: drained, then removed; never more than max_workers launched.
    wait_for(lambda: _workers() == [], 60, "the idle workers to be removed", interval=0.2)
    log = _monitor_log(tmp_path / "ray")
    assert _launched(tmp_path / "ray") == 2, log
    assert log.count("Removing 1 node of type cpu2 (idle for") == 2, log
    text = _status(cluster.address)
    assert not re.search(r"^ \d cpu2$", text, re.M) and "Pending:\n (no pending nodes)" in text, text
    assert "cpu2: NodeTerminated" in text


@ray.remote(num_cpus=1)
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return ray.get_runtime_context().get_node_id()


@ray.remote(num_cpus=1)
def big_object():
    import numpy as np

    return np.ones(2 * 1024 * 1024, dtype=np.uint8), ray.get_runtime_context().get_node_id()


def test_a_node_is_removed_only_once_its_task_is_done_and_its_objects_are_freed(autoscaling, tmp_path):
    autoscaling({"cpu1": {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 1}},
                idle_timeout_minutes=0.05)  # 3 s
    # A task far longer than the idle timeout: its node is busy, never drained meanwhile.
    started = time.monotonic()
    node = ray.get(slow.remote(10), timeout=120)
    assert time.monotonic() - started >= 10
    assert [w["NodeID"] for w in _workers()] == [node]
    # An object in the node's store that the driver still references: the node stays.
    ref = big_object.remote()
    array, holder = ray.get(ref, timeout=60)
    assert array.sum() == 2 * 1024 * 1024
    time.sleep(8)  # well past the idle timeout
    assert [w["NodeID"] for w in _workers()] == [holder]
    assert ray.get(ref)[0].sum() == 2 * 1024 * 1024  # still readable from there
    del ref, array
    wait_for(lambda: _workers() == [], 60, "the node to be removed once its object is freed", interval=0.2)


def test_placement_group_bundles_request_resources_and_infeasible_demand(autoscaling, tmp_path):
    cluster = autoscaling({"cpu1": {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 3}},
                          idle_timeout_minutes=0.05)
    temp_dir = tmp_path / "ray"
    # A STRICT_SPREAD group of two bundles: one new node per bundle.
    pg = placement_group([{"CPU": 1}] * 2, strategy="STRICT_SPREAD")
    assert ray.get(pg.ready(), timeout=120)
    assert len(_workers()) == 2
    remove_placement_group(pg)
    # request_resources(): the cluster grows to fit it though nothing runs, and it is shown in `ray status`.
    request_resources(num_cpus=3)
    wait_for(lambda: len(_workers()) == 3, 90, "three workers for request_resources(num_cpus=3)",
             interval=0.2)
    text = _status(cluster.address)
    assert "From request_resources:\n {'CPU': 1.0}: 3 from request_resources()" in text, text
    time.sleep(5)
    assert len(_workers()) == 3  # idle past the timeout, but the standing request keeps them
    request_resources()  # cleared: they go
    wait_for(lambda: _workers() == [], 60, "the workers to go once the request is cleared", interval=0.2)
    # A task no node type can hold: reported, and never a launch for it.
    before = _launched(temp_dir)
    ref = slow.options(num_cpus=8).remote(0)
    text = wait_for(lambda: (t := _status(cluster.address)) and "No available node types can fulfill" in t and t,
                    30, "the infeasible demand in ray status", interval=0.2)
    assert "{'CPU': 8.0}: 1+ pending tasks/actors" in text, text
    time.sleep(5)
    assert _launched(temp_dir) == before and _workers() == []
    assert "No available node types can fulfill resource requests {'CPU': 8.0}" in _monitor_log(temp_dir)
    ray.cancel(ref, force=True)


def test_a_node_type_that_fails_to_start_is_reported_and_retried_with_back_off(autoscaling, tmp_path):
    # Its nodes' processes cannot start (a broken Python home, as a broken image would): each launch fails.
    cluster = autoscaling({
        "broken": {"resources": {"CPU": 1}, "node_config": {"env": {"PYTHONHOME": "/nonexistent"}},
                   "min_workers": 1, "max_workers": 1},
        "good": {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 1}})
    text = wait_for(lambda: (t := _status(cluster.address, "-v")) and "LaunchFailed" in t and t, 60,
                    "the failed launch in ray status", interval=0.2)
    assert "broken: LaunchFailed" in text and "raylet" in text, text
    assert "Failed to launch 1 node(s) of type broken" in text and "Retrying in" in text, text
    # The rest of the cluster works: a task gets a node of the good type.
    assert ray.get(slow.remote(0), timeout=120)
    time.sleep(10)
    log = _monitor_log(tmp_path / "ray")
    attempts = log.count("Adding 1 node(s) of type broken")
    assert 1 <= attempts <= 3, log  # back-off of 5 s, then 10 s: never a launch every round


def test_ray_start_with_a_bad_autoscaling_config_starts_a_cluster_that_says_what_is_wrong(cli, port, tmp_path):
    config = {"cluster_name": "t", "max_workers": 2, "provider": {"type": "fake_multinode"},
              "head_node_type": "missing",
              "available_node_types": {"ray.head.default": {"resources": {}, "max_workers": 0},
                                       "w": {"resources": {"CPU": 1}, "min_workers": 1, "max_workers": 1}}}
    path = tmp_path / "cluster.yaml"
    path.write_text(json.dumps(config))
    env = {"AUTOSCALER_UPDATE_INTERVAL_S": "1", "AUTOSCALER_METRIC_PORT": "0"}
    out = cli.ray("start", "--head", f"--port={port}", "--num-cpus=1", f"--autoscaling-config={path}",
                  "--include-dashboard=false", **env)
    assert "the autoscaling config cannot be used" in out.stderr
    assert "`head_node_type` must be one of `available_node_types`" in out.stderr
    address = f"127.0.0.1:{port}"
    text = wait_for(lambda: (t := cli.ray("status", f"--address={address}").stdout) and "invalid" in t and t, 30,
                    "the config error in ray status", interval=0.2)
    assert "The autoscaling config is invalid: `head_node_type` must be one of" in text
    # Fixed: the autoscaler reads it again and keeps min_workers.
    config["head_node_type"] = "ray.head.default"
    path.write_text(json.dumps(config))
    text = wait_for(lambda: (t := cli.ray("status", f"--address={address}").stdout) and " 1 w\n" in t and t, 60,
                    "the worker of min_workers", interval=0.2)
    assert "invalid" not in text
    logs = list(Path(cli.temp_dir).glob("session_2*/logs/monitor.log"))
    assert logs and "The autoscaling config is invalid" in logs[0].read_text()
    cli.ray("stop")
    time.sleep(0.5)
    assert cli.recorded_pids() == []


def test_ray_stop_drains_the_node_first_so_its_running_task_finishes(cli, port, tmp_path, monkeypatch):
    """What a worker pod's `preStop: ray stop` relies on: the raylet drains, the task running there completes
    and its result reaches the driver, then the node stops."""
    cli.ray("start", "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false")
    worker_tmp = tmp_path / "worker"
    worker_tmp.mkdir()
    worker_env = {**cli.env, "TMPDIR": str(worker_tmp)}
    subprocess.run([*RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1"], env=worker_env, check=True,
                   capture_output=True, timeout=120)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.init(address=f"127.0.0.1:{port}")
    try:
        ref = slow.remote(6)
        wait_for(lambda: "Busy workers on node." in _status(f"127.0.0.1:{port}", "-v"), 60,
                 "the task to start", interval=0.2)
        started = time.monotonic()
        stop = subprocess.run([*RAY, "stop"], env=worker_env, capture_output=True, text=True, timeout=120)
        stopped_after = time.monotonic() - started
        assert stop.returncode == 0, stop.stderr
        node = ray.get(ref, timeout=30)  # the task finished on the node being stopped
        assert node not in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert 2 < stopped_after < 16, stopped_after  # it waited for the task, not for the grace period
        assert process_registry.recorded_processes(str(worker_tmp / "ray")) == []
    finally:
        ray.shutdown()
        process_registry.stop_all(str(worker_tmp / "ray"), force=True, grace_period_s=2)
