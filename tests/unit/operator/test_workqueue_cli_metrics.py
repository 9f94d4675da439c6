import threading

import pytest
from prometheus_client import generate_latest
from ray_operator import metrics
from ray_operator.__main__ import build_config, parse_args
from ray_operator.handlers.common import status_patch
from ray_operator.workqueue import WorkQueue, run_workers


def test_queue_dedups_and_never_hands_a_key_to_two_workers():
    queue = WorkQueue()
    queue.add("a")
    queue.add("a")
    assert queue.get(timeout_s=1) == "a"
    queue.add("a")  # re-added while processing: handed out again only after done()
    assert queue.get(timeout_s=0.1) is None
    queue.done("a")
    assert queue.get(timeout_s=1) == "a"
    queue.done("a")
    assert queue.get(timeout_s=0.1) is None


def test_delayed_add_and_workers():
    queue = WorkQueue()
    seen: list[str] = []
    done = threading.Event()

    def work(key):
        seen.append(key)
        if len(seen) == 2:
            done.set()
            return None, False
        return 0.05, False  # requeue once

    run_workers(queue, work, 2, "t")
    queue.add("k")
    assert done.wait(10)
    assert seen == ["k", "k"]
    queue.close()


def test_crashing_reconcile_is_retried_not_fatal():
    queue = WorkQueue(base_backoff_s=0.01)
    calls = []
    finished = threading.Event()

    def work(key):
        calls.append(key)
        if len(calls) < 3:
            raise RuntimeError("boom")
        finished.set()
        return None, False

    run_workers(queue, work, 1, "crash")
    queue.add("x")
    assert finished.wait(10)
    queue.close()


def test_cli_accepts_kuberay_flags():
    args = parse_args(["--metrics-addr=:9090", "--enable-leader-election=false", "--watch-namespace=a, b",
                       "--reconcile-concurrency", "3", "--feature-gates=X=true", "--qps=5", "--enable-metrics"])
    cfg = build_config(args)
    assert cfg.metrics_port == 9090 and not cfg.enable_leader_election and cfg.enable_metrics
    assert cfg.watch_namespaces == ["a", "b"] and cfg.reconcile_concurrency == 3
    with pytest.raises(SystemExit):
        parse_args(["--enable-leader-election=maybe"])


def test_status_patch_removes_vanished_keys():
    assert status_patch({"a": 1, "b": 2}, {"a": 1, "c": 3}) == {"b": None, "c": 3}
    assert status_patch({"a": 1}, {"a": 1}) == {}


def test_kuberay_gauges(monkeypatch):
    monkeypatch.setattr(metrics, "ENABLED", True)
    cluster = {"metadata": {"name": "m1", "namespace": "ns", "uid": "u1", "creationTimestamp": "2026-11-21T23:00:00Z"},
               "status": {"conditions": [{"type": "RayClusterProvisioned", "status": "True",
                                          "lastTransitionTime": "2026-11-21T23:00:42Z"}]}}
    metrics.observe_cluster(cluster)
    text = generate_latest().decode()
    assert 'kuberay_cluster_info{name="m1",namespace="ns",owner_kind="None",uid="u1"} 1.0' in text
    assert 'kuberay_cluster_condition_provisioned{condition="true",name="m1",namespace="ns",uid="u1"} 1.0' in text
    assert 'kuberay_cluster_provisioned_duration_seconds{name="m1",namespace="ns",uid="u1"} 42.0' in text
    job = {"metadata": {"name": "j1", "namespace": "ns", "uid": "u2"},
           "status": {"jobDeploymentStatus": "Complete", "startTime": "2026-11-21T23:00:00Z",
                      "endTime": "2026-11-21T23:01:00Z", "succeeded": 1}}
    metrics.observe_job(job)
    text = generate_latest().decode()
    assert 'kuberay_job_deployment_status{deployment_status="Complete",name="j1",namespace="ns",uid="u2"} 1.0' in text
    assert "kuberay_job_execution_duration_seconds{" in text and "60.0" in text
    metrics.forget_cluster("ns", "m1")
    metrics.forget_job("ns", "j1")
    assert 'name="m1"' not in generate_latest().decode()


def test_own_status_writes_do_not_wake_the_reconciler():
    from ray_operator.config import OperatorConfig
    from ray_operator.controller import Controller

    controller = Controller(kube=None, cfg=OperatorConfig())  # type: ignore[arg-type]
    body = {"metadata": {"name": "c", "namespace": "n", "generation": 1, "labels": {"a": "b"}}, "status": {}}
    controller.on_cluster_event(body)
    assert controller.clusters.get(timeout_s=1) == ("n", "c")
    controller.clusters.done(("n", "c"))
    body["status"] = {"state": "ready"}  # only the status moved
    controller.on_cluster_event(body)
    assert controller.clusters.get(timeout_s=0.2) is None
    body["metadata"]["generation"] = 2  # the user edited the spec
    controller.on_cluster_event(body)
    assert controller.clusters.get(timeout_s=1) == ("n", "c")
