"""RayCluster against a real API server: what `kubectl` shows a user after the operator reconciles."""

from __future__ import annotations

import copy
import json
import subprocess
import time
import urllib.request

import yaml
from apiserver import REPO, wait_for

SAMPLE = yaml.safe_load((REPO / "examples" / "raycluster-sample.yaml").read_text())


def _pods(kubectl, namespace, cluster, node_type=None):
    selector = f"ray.io/cluster={cluster}" + (f",ray.io/node-type={node_type}" if node_type else "")
    return [p for p in kubectl.items("pods", namespace, selector) if not p["metadata"].get("deletionTimestamp")]


def _set_running(kubectl, namespace, pod_name, ip):
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        }
    }
    kubectl("patch", "pod", pod_name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status))


def _cluster(kubectl, namespace, name="raycluster-sample"):
    return kubectl.get("raycluster", name, namespace)


def test_cluster_pods_service_and_status(operator, kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
    head = wait_for("the head pod", lambda: _pods(kubectl, namespace, "raycluster-sample", "head"))[0]
    workers = wait_for("one worker pod", lambda: _pods(kubectl, namespace, "raycluster-sample", "worker"))

    assert head["metadata"]["name"].startswith("raycluster-sample-head-")
    assert head["metadata"]["labels"]["ray.io/group"] == "headgroup"
    assert head["metadata"]["ownerReferences"][0]["kind"] == "RayCluster"
    args = head["spec"]["containers"][0]["args"][0]
    assert "ray start --head " in args and " --num-cpus=1 " in args and " --memory=2147483648 " in args
    worker = workers[0]
    assert worker["metadata"]["name"].startswith("raycluster-sample-small-group-worker-")
    assert worker["spec"]["initContainers"][0]["name"] == "wait-gcs-ready"
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env["RAY_ADDRESS"] == f"raycluster-sample-head-svc.{namespace}.svc.cluster.local:6379"

    svc = wait_for("the head service", lambda: kubectl.get("service", "raycluster-sample-head-svc", namespace))
    assert svc["spec"]["clusterIP"] == "None"
    assert sorted(p["name"] for p in svc["spec"]["ports"]) == ["client", "dashboard", "gcs-server", "metrics"]

    status = wait_for("status counts", lambda: (_cluster(kubectl, namespace) or {}).get("status", {}).get("desiredCPU"))
    assert status == "400m"

    # Pods never run without a kubelet; mark them Running + Ready through the status subresource.
    _set_running(kubectl, namespace, head["metadata"]["name"], "10.244.0.10")
    _set_running(kubectl, namespace, worker["metadata"]["name"], "10.244.0.11")
    wait_for("state ready", lambda: _cluster(kubectl, namespace)["status"].get("state") == "ready")
    status = _cluster(kubectl, namespace)["status"]
    assert status["availableWorkerReplicas"] == 1 and status["desiredWorkerReplicas"] == 1
    assert status["head"]["podIP"] == "10.244.0.10"
    assert status["endpoints"]["dashboard"] == "8265"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"HeadPodReady": "True", "RayClusterProvisioned": "True"}

    table = kubectl("get", "raycluster", "raycluster-sample", "-n", namespace)
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "DESIRED", "WORKERS", "AVAILABLE", "WORKERS", "CPUS", "MEMORY", "GPUS",
                              "STATUS", "AGE"]
    assert row.split()[:7] == ["raycluster-sample", "1", "1", "400m", "1536Mi", "0", "ready"]

    # Reconciling again (the periodic resync runs every 10 s here) changes nothing.
    before = {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in _pods(kubectl, namespace, "raycluster-sample")}
    cluster_version = _cluster(kubectl, namespace)["metadata"]["resourceVersion"]
    time.sleep(12)
    after = {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in _pods(kubectl, namespace, "raycluster-sample")}
    assert after == before
    assert _cluster(kubectl, namespace)["metadata"]["resourceVersion"] == cluster_version


def test_scaling_workers_to_delete_and_replacement(operator, kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
    wait_for("one worker", lambda: len(_pods(kubectl, namespace, "raycluster-sample", "worker")) == 1)

    kubectl("patch", "raycluster", "raycluster-sample", "-n", namespace, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 3}]')
    wait_for("three workers", lambda: len(_pods(kubectl, namespace, "raycluster-sample", "worker")) == 3)

    # Above maxReplicas (5) is clamped.
    kubectl("patch", "raycluster", "raycluster-sample", "-n", namespace, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 9}]')
    wait_for("five workers", lambda: len(_pods(kubectl, namespace, "raycluster-sample", "worker")) == 5)
    wait_for("desired 5", lambda: _cluster(kubectl, namespace)["status"].get("desiredWorkerReplicas") == 5)

    kubectl("patch", "raycluster", "raycluster-sample", "-n", namespace, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2}]')
    wait_for("two workers", lambda: len(_pods(kubectl, namespace, "raycluster-sample", "worker")) == 2)

    # workersToDelete removes exactly that pod (replicas drop with it, as the autoscaler does) and is cleared.
    victim, keeper = sorted(p["metadata"]["name"] for p in _pods(kubectl, namespace, "raycluster-sample", "worker"))
    patch = [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1},
        {"op": "add", "path": "/spec/workerGroupSpecs/0/scaleStrategy", "value": {"workersToDelete": [victim]}},
    ]
    kubectl("patch", "raycluster", "raycluster-sample", "-n", namespace, "--type=json", "-p", json.dumps(patch))
    wait_for("only the keeper left", lambda: [p["metadata"]["name"] for p in
                                              _pods(kubectl, namespace, "raycluster-sample", "worker")] == [keeper])
    wait_for("workersToDelete cleared", lambda: _cluster(kubectl, namespace)["spec"]["workerGroupSpecs"][0]
             .get("scaleStrategy", {}).get("workersToDelete") == [])

    # A deleted worker is replaced; so is a failed one.
    kubectl("delete", "pod", keeper, "-n", namespace, "--wait=false")
    replacement = wait_for("a replacement worker", lambda: [p["metadata"]["name"] for p in
                           _pods(kubectl, namespace, "raycluster-sample", "worker") if p["metadata"]["name"] != keeper])
    kubectl("patch", "pod", replacement[0], "-n", namespace, "--subresource=status", "--type=merge",
            "-p", '{"status": {"phase": "Failed"}}')
    wait_for("the failed worker replaced", lambda: [p["metadata"]["name"] for p in
             _pods(kubectl, namespace, "raycluster-sample", "worker")
             if p["metadata"]["name"] not in (keeper, replacement[0])])
    assert len(_pods(kubectl, namespace, "raycluster-sample", "worker")) == 1
    events = kubectl("get", "events", "-n", namespace, "-o", "json")
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"CreatedHeadPod", "CreatedWorkerPod", "DeletedWorkerPod", "CreatedService"} <= reasons


def test_suspend_and_resume(operator, kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
    wait_for("two pods", lambda: len(_pods(kubectl, namespace, "raycluster-sample")) == 2)
    kubectl("patch", "raycluster", "raycluster-sample", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    wait_for("no pods", lambda: not _pods(kubectl, namespace, "raycluster-sample"))
    wait_for("state suspended", lambda: _cluster(kubectl, namespace)["status"].get("state") == "suspended")
    assert kubectl.get("service", "raycluster-sample-head-svc", namespace) is not None  # kept while suspended
    kubectl("patch", "raycluster", "raycluster-sample", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait_for("pods back", lambda: len(_pods(kubectl, namespace, "raycluster-sample")) == 2)
    wait_for("state cleared", lambda: _cluster(kubectl, namespace)["status"].get("state") != "suspended")


def test_invalid_cluster_gets_event_and_status_while_others_reconcile(operator, kubectl, namespace):
    bad = copy.deepcopy(SAMPLE)
    bad["metadata"]["name"] = "bad-cluster"
    group = bad["spec"]["workerGroupSpecs"][0]
    group["minReplicas"], group["maxReplicas"] = 4, 2
    bad["spec"]["workerGroupSpecs"].append(copy.deepcopy(group))
    kubectl.apply(bad, namespace)
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))

    reason = wait_for("status.reason", lambda: (_cluster(kubectl, namespace, "bad-cluster") or {})
                      .get("status", {}).get("reason"))
    assert "minReplicas (4) is greater than maxReplicas (2)" in reason
    assert "'small-group' is used by more than one worker group" in reason
    events = json.loads(kubectl("get", "events", "-n", namespace, "--field-selector",
                                "involvedObject.name=bad-cluster", "-o", "json"))["items"]
    assert [e["type"] for e in events if e["reason"] == "InvalidRayClusterSpec"] == ["Warning"]
    assert not _pods(kubectl, namespace, "bad-cluster")
    # The good cluster next to it is reconciled as usual.
    wait_for("the good cluster's pods", lambda: len(_pods(kubectl, namespace, "raycluster-sample")) == 2)

    # Fixing the spec makes it reconcile.
    kubectl("patch", "raycluster", "bad-cluster", "-n", namespace, "--type=json", "-p",
            '[{"op": "remove", "path": "/spec/workerGroupSpecs/1"},'
            ' {"op": "replace", "path": "/spec/workerGroupSpecs/0/minReplicas", "value": 1}]')
    wait_for("the fixed cluster's pods", lambda: len(_pods(kubectl, namespace, "bad-cluster")) == 2)


def test_gpu_worker_pending_is_explained(operator, kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-gpu.yaml"))
    worker = wait_for("the gpu worker", lambda: _pods(kubectl, namespace, "raycluster-gpu", "worker"))[0]
    assert "--num-gpus=1" in worker["spec"]["containers"][0]["args"][0]
    # What kube-scheduler writes on a node without GPUs.
    unschedulable = {"status": {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]}}
    kubectl("patch", "pod", worker["metadata"]["name"], "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps(unschedulable))
    message = wait_for("the provisioning condition to quote the scheduler", lambda: next(
        (c["message"] for c in (_cluster(kubectl, namespace, "raycluster-gpu") or {}).get("status", {}).get("conditions", [])
         if c["type"] == "RayClusterProvisioned" and "Insufficient" in c["message"]), None))
    assert "Insufficient nvidia.com/gpu" in message
    assert _cluster(kubectl, namespace, "raycluster-gpu")["status"]["desiredGPU"] == "1"


def test_operator_metrics(operator, kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))

    def scrape():
        text = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read().decode()
        return text if f'namespace="{namespace}"' in text else None

    text = wait_for("kuberay_cluster_info for the cluster", scrape)
    assert "kuberay_cluster_info{" in text and "kuberay_cluster_condition_provisioned{" in text


def test_failed_or_deleted_head_is_recreated(operator, kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
    first = wait_for("the head pod", lambda: _pods(kubectl, namespace, "raycluster-sample", "head"))[0]["metadata"]["name"]
    kubectl("patch", "pod", first, "-n", namespace, "--subresource=status", "--type=merge",
            "-p", '{"status": {"phase": "Failed"}}')
    second = wait_for("a new head", lambda: [p["metadata"]["name"] for p in
                      _pods(kubectl, namespace, "raycluster-sample", "head") if p["metadata"]["name"] != first])
    assert kubectl.get("pod", first, namespace) is None
    kubectl("delete", "pod", second[0], "-n", namespace, "--wait=false")
    wait_for("a third head", lambda: [p["metadata"]["name"] for p in _pods(kubectl, namespace, "raycluster-sample", "head")
                                      if p["metadata"]["name"] not in (first, second[0])])
    assert len(_pods(kubectl, namespace, "raycluster-sample", "head")) == 1


def test_pod_the_api_server_rejects_is_reported(operator, kubectl, namespace):
    bad = copy.deepcopy(SAMPLE)
    bad["metadata"]["name"] = "rejected"
    bad["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["name"] = "Not_A_DNS_Label"
    kubectl.apply(bad, namespace)
    condition = wait_for("a ReplicaFailure condition", lambda: next(
        (c for c in (_cluster(kubectl, namespace, "rejected") or {}).get("status", {}).get("conditions", [])
         if c["type"] == "ReplicaFailure"), None))
    assert condition["reason"] == "FailedToCreateWorkerPod"
    assert "Not_A_DNS_Label" in condition["message"]
    assert len(_pods(kubectl, namespace, "rejected", "head")) == 1  # the head is still made
    events = json.loads(kubectl("get", "events", "-n", namespace, "--field-selector",
                                "involvedObject.name=rejected,reason=FailedToCreateWorkerPod", "-o", "json"))["items"]
    assert events and events[0]["type"] == "Warning"
    # Backing off, not hot-looping: a handful of attempts in ten seconds, not hundreds.
    time.sleep(10)
    events = json.loads(kubectl("get", "events", "-n", namespace, "--field-selector",
                                "involvedObject.name=rejected,reason=FailedToCreateWorkerPod", "-o", "json"))["items"]
    assert len(events) < 15


def test_api_server_rejects_malformed_gcs_fault_tolerance_options(kubectl, namespace):
    """The CRD types gcsFaultToleranceOptions, so a typo or a missing address fails at `kubectl apply`."""

    # kubectl (--validate=strict by default) refuses unknown fields; the API server refuses a missing redisAddress
    # and a backend OpenRay does not have.
    for options, message in (
        ({"redisAdress": "redis:6379"}, 'unknown field "spec.gcsFaultToleranceOptions.redisAdress"'),
        ({"externalStorageNamespace": "ns"}, "spec.gcsFaultToleranceOptions.redisAddress: Required value"),
        ({"redisAddress": "redis:6379", "backend": "rocksdb"}, 'Unsupported value: "rocksdb"'),
        ({"redisAddress": "redis:6379", "redisPassword": {"valu": "x"}},
         'unknown field "spec.gcsFaultToleranceOptions.redisPassword.valu"'),
    ):
        out = subprocess.run([kubectl.path, "--kubeconfig", str(kubectl.kubeconfig), "apply", "-n", namespace,
                              "-f", "-"], input=json.dumps(_ft_cluster(options)), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode != 0, f"{options} was accepted: {out.stdout}"
        assert message in out.stderr, out.stderr
        assert kubectl.get("raycluster", "ft-cluster", namespace) is None

    kubectl.apply(_ft_cluster({"redisAddress": "redis:6379", "redisPassword": {"value": "secret"}}), namespace)
    applied = kubectl.get("raycluster", "ft-cluster", namespace)
    assert applied["spec"]["gcsFaultToleranceOptions"]["backend"] == "redis"


def _ft_cluster(options: dict) -> dict:
    cluster = copy.deepcopy(SAMPLE)
    cluster["metadata"]["name"] = "ft-cluster"
    cluster["spec"]["gcsFaultToleranceOptions"] = options
    return cluster
