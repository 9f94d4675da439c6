"""Dead-node detection with real processes (`cluster_utils.Cluster`): a SIGKILLed raylet is declared dead within
seconds (its port refuses connections), a stopped one only after the whole health-check grace period."""

from __future__ import annotations

import os
import signal
import time

import pytest
import ray
from ray._common import process_registry
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

RAY_HEALTH_CHECK_MESSAGE = "health check failed due to missing too many heartbeats"
UNEXPECTED_TERMINATION = 2  # Ray's NodeDeathInfo.Reason


@pytest.fixture
def make_cluster(tmp_path):
    clusters: list[Cluster] = []
    stopped: list[int] = []

    def make(system_config: dict | None = None) -> tuple[Cluster, ray.cluster_utils.Node]:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "_temp_dir": str(tmp_path / "ray"), "_system_config": system_config or {}})
        clusters.append(cluster)
        worker = cluster.add_node(num_cpus=1, resources={"worker": 1})
        cluster.wait_for_nodes()
        cluster.connect()
        return cluster, worker

    make.stopped = stopped  # pids the test SIGSTOPped: continued before the cleanup
    try:
        yield make
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        for cluster in clusters:
            cluster.shutdown()
        process_registry.stop_all(str(tmp_path / "ray"), force=True, grace_period_s=2)


def _node_entry(node_id: str) -> dict:
    return next(n for n in ray.nodes() if n["NodeID"] == node_id)


def _wait_dead(node_id: str, timeout: float) -> float:
    """Seconds until `ray.nodes()` shows the node dead (polled every 0.1 s); fails after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not _node_entry(node_id)["Alive"]:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"node {node_id} still alive {timeout} s later: {_node_entry(node_id)}")


@ray.remote
def where() -> str:
    return ray.get_runtime_context().get_node_id()


def test_sigkilled_raylet_is_dead_within_seconds_and_tasks_pinned_to_it_fail(make_cluster):
    # Ray's defaults: 5 missed health checks 3 s apart, so missed reports alone would take 15 s.
    cluster, worker = make_cluster()
    pinned = where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(worker.node_id, soft=False))
    assert ray.get(pinned.remote(), timeout=60) == worker.node_id

    os.kill(worker.processes["raylet"].pid, signal.SIGKILL)
    detected = _wait_dead(worker.node_id, timeout=20)
    assert detected < 8, f"took {detected:.1f} s"  # ~2 s here; 8 leaves room for a loaded machine
    entry = _node_entry(worker.node_id)
    assert entry["DeathReason"] == UNEXPECTED_TERMINATION
    assert entry["DeathReasonMessage"] == RAY_HEALTH_CHECK_MESSAGE
    # The head is untouched, and a task pinned to the dead node gets Ray's error at once.
    assert _node_entry(cluster.head_node.node_id)["Alive"]
    start = time.monotonic()
    with pytest.raises(ray.exceptions.TaskUnschedulableError, match="NodeAffinitySchedulingStrategy"):
        ray.get(pinned.remote(), timeout=30)
    assert time.monotonic() - start < 10
    assert ray.get(where.remote(), timeout=60) == cluster.head_node.node_id


def test_stopped_raylet_whose_port_still_accepts_keeps_the_whole_grace_period(make_cluster):
    # 5 periods of 2 s: a stopped raylet sends no report, but its port accepts connections (the kernel's
    # backlog), so it is declared dead by the missed reports alone, not at the first probes (from 1 s on).
    _, worker = make_cluster({"health_check_period_ms": 2000, "health_check_failure_threshold": 5})
    raylet = worker.processes["raylet"].pid
    os.kill(raylet, signal.SIGSTOP)
    make_cluster.stopped.append(raylet)
    stopped = time.monotonic()
    time.sleep(4)  # probes have run for 3 s by now (a SIGKILLed raylet is dead after ~2 s)
    assert _node_entry(worker.node_id)["Alive"]
    _wait_dead(worker.node_id, timeout=40)
    # 10 s after its last report; a report or two may have been late already under load
    assert time.monotonic() - stopped >= 6
    entry = _node_entry(worker.node_id)
    assert entry["DeathReason"] == UNEXPECTED_TERMINATION
    assert entry["DeathReasonMessage"] == RAY_HEALTH_CHECK_MESSAGE
