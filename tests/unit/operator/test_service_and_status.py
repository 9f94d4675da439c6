from ray_operator.builders.replicas import desired_replicas, desired_resources, worker_counts
from ray_operator.builders.service import build_head_service
from ray_operator.builders.status import build_cluster_status

NOW = "2026-11-21T23:00:00Z"
LATER = "2026-11-21T23:05:00Z"


def _pod(name, node_type, phase="Running", ready=True, ip="10.244.0.5"):
    return {
        "metadata": {"name": name, "labels": {"ray.io/node-type": node_type}},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_head_service_is_headless_with_default_ports(raycluster):
    svc = build_head_service(raycluster)
    assert svc["metadata"]["name"] == "demo-head-svc"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [
        ("client", 10001),
        ("dashboard", 8265),
        ("gcs-server", 6379),
        ("metrics", 8080),
        ("serve", 8000),
    ]
    assert svc["spec"]["selector"]["ray.io/node-type"] == "head"
    assert build_head_service(raycluster, cluster_ip_service=True)["spec"].get("clusterIP") is None


def test_seed_head_ports_plus_metrics(seed_rayjob):
    cluster = {"metadata": {"name": "c", "namespace": "default", "uid": "u"}, "kind": "RayCluster",
               "spec": seed_rayjob["spec"]["rayClusterSpec"]}
    names = [p["name"] for p in build_head_service(cluster)["spec"]["ports"]]
    assert names == ["client", "dashboard", "gcs-server", "metrics", "serve"]


def test_replicas_are_clamped_and_counted(raycluster):
    group = raycluster["spec"]["workerGroupSpecs"][0]
    assert desired_replicas(group) == 2  # replicas 3 clamped to max 2
    assert desired_replicas({"minReplicas": 1}) == 1
    assert desired_replicas({"replicas": 3, "suspend": True}) == 0
    group["numOfHosts"] = 2
    assert worker_counts(raycluster["spec"]) == {
        "desiredWorkerReplicas": 4,
        "minWorkerReplicas": 2,
        "maxWorkerReplicas": 4,
    }


def test_desired_resources_sum_requests_else_limits(raycluster, seed_rayjob):
    assert desired_resources(raycluster["spec"]) == {
        "desiredCPU": "2",  # head limit 1 + 2 workers × request 500m
        "desiredMemory": "4Gi",
        "desiredGPU": "2",
        "desiredTPU": "0",
    }
    seed = desired_resources(seed_rayjob["spec"]["rayClusterSpec"])
    assert seed["desiredCPU"] == "400m" and seed["desiredMemory"] == "0"


def test_status_ready_only_when_every_pod_runs_and_is_ready(raycluster):
    svc = build_head_service(raycluster)
    pods = [_pod("demo-head-x", "head"), _pod("w1", "worker"), _pod("w2", "worker", ready=False)]
    status = build_cluster_status(raycluster, pods, svc, NOW)
    assert "state" not in status
    assert status["availableWorkerReplicas"] == 2 and status["readyWorkerReplicas"] == 1
    assert status["head"] == {"podName": "demo-head-x", "podIP": "10.244.0.5", "serviceName": "demo-head-svc",
                              "serviceIP": "10.244.0.5"}
    assert status["endpoints"]["dashboard"] == "8265"
    provisioned = next(c for c in status["conditions"] if c["type"] == "RayClusterProvisioned")
    assert provisioned["status"] == "False" and "1 of 3 pods" in provisioned["message"]

    pods[2] = _pod("w2", "worker")
    raycluster["status"] = status
    status = build_cluster_status(raycluster, pods, svc, LATER)
    assert status["state"] == "ready"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "HeadPodReady": "True",
        "RayClusterProvisioned": "True",
    }


def test_status_is_stable_when_nothing_changes(raycluster):
    svc = build_head_service(raycluster)
    pods = [_pod("h", "head"), _pod("w1", "worker"), _pod("w2", "worker")]
    first = build_cluster_status(raycluster, pods, svc, NOW)
    raycluster["status"] = first
    assert build_cluster_status(raycluster, pods, svc, LATER) == first


def test_pending_gpu_pod_is_explained(raycluster):
    pending = {
        "metadata": {"name": "w1", "labels": {"ray.io/node-type": "worker"}},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}],
        },
    }
    status = build_cluster_status(raycluster, [_pod("h", "head"), pending], None, NOW)
    provisioned = next(c for c in status["conditions"] if c["type"] == "RayClusterProvisioned")
    assert "Insufficient nvidia.com/gpu" in provisioned["message"]


def test_suspended_state_when_no_pods_remain(raycluster):
    raycluster["spec"]["suspend"] = True
    status = build_cluster_status(raycluster, [], None, NOW)
    assert status["state"] == "suspended"
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types["RayClusterSuspended"] == "True" and types["RayClusterSuspending"] == "False"
    raycluster["status"] = status
    raycluster["spec"]["suspend"] = False
    assert "state" not in build_cluster_status(raycluster, [], None, LATER)
