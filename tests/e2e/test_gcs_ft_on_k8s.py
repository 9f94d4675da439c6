"""GCS fault tolerance on the real cluster: a RayJob whose cluster keeps its GCS in Redis (a Redis pod built from
Debian's package, images/redis) survives the deletion of its head pod mid-run; when the RayCluster goes, the
redis-cleanup Job removes its keys and the finalizer lets it go."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest

from .kube import Kube
from .test_ray_on_k8s import operator as operator  # noqa: F401 - the module-scoped fixture (helm install)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

JOB_CODE = """
import time
import ray

ray.init()

@ray.remote
def inc(x):
    return x + 1

total = 0
for i in range(70):
    total += ray.get(inc.remote(i))
    print("step", i, flush=True)
    time.sleep(1.5)
assert total == sum(range(1, 71)), total
print("ft job done", total, flush=True)
"""


def _redis(password: str) -> list[dict]:
    labels = {"app": "redis"}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-password-secret"},
         "stringData": {"password": password}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "redis", "labels": labels},
         "spec": {"containers": [{
             "name": "redis", "image": "localhost/openray-redis:dev", "imagePullPolicy": "Never",
             "command": ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "",
                         "--appendonly", "no", "--dir", "/tmp", "--requirepass", "$(REDIS_PASSWORD)"],
             "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis-password-secret",
                                                                             "key": "password"}}}],
             "ports": [{"containerPort": 6379}],
             "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis"},
         "spec": {"selector": labels, "ports": [{"port": 6379, "targetPort": 6379}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ft-job-code"},
         "data": {"ft_job.py": JOB_CODE}},
    ]


def _container(name: str) -> dict:
    return {"name": name, "image": "localhost/openray-head:dev", "imagePullPolicy": "Never",
            "resources": {"limits": {"cpu": "1", "memory": "2Gi"}, "requests": {"cpu": "200m", "memory": "256Mi"}},
            "volumeMounts": [{"mountPath": "/home/ray/ft", "name": "code"}]}


RAYJOB = {
    "apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "ft-job"},
    "spec": {
        "entrypoint": "python /home/ray/ft/ft_job.py",
        "entrypointNumCpus": 1,  # the driver runs on the worker (the head has no CPUs), so it outlives the head
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 20,  # a moment to read the pods' logs if the job failed
        "rayClusterSpec": {
            "rayVersion": "2.60.0",
            "gcsFaultToleranceOptions": {
                "redisAddress": "redis:6379",
                "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "redis-password-secret", "key": "password"}}},
            },
            "headGroupSpec": {
                "rayStartParams": {"num-cpus": "0"},
                "template": {"spec": {"containers": [_container("ray-head")],
                                      "volumes": [{"name": "code", "configMap": {"name": "ft-job-code"}}]}},
            },
            "workerGroupSpecs": [{
                "groupName": "small", "replicas": 1, "minReplicas": 1, "maxReplicas": 1,
                "rayStartParams": {"num-cpus": "2"},
                "template": {"spec": {"containers": [_container("ray-worker")],
                                      "volumes": [{"name": "code", "configMap": {"name": "ft-job-code"}}]}},
            }],
        },
    },
}


def _status(kube: Kube, namespace: str) -> dict:
    return kube.kubectl_json("get", "rayjob", "ft-job", "-n", namespace).get("status") or {}


def _pods(kube: Kube, namespace: str, cluster: str, node_type: str) -> list[dict]:
    pods = kube.kubectl_json("get", "pods", "-n", namespace, "-l",
                             f"ray.io/cluster={cluster},ray.io/node-type={node_type}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def _redis_keys(kube: Kube, namespace: str, password: str) -> list[str]:
    out = kube.kubectl("exec", "-n", namespace, "redis", "--", "redis-cli", "-a", password, "--no-auth-warning",
                       "--scan", "--pattern", "RAY*", timeout=60)
    return sorted(line for line in out.splitlines() if line.strip())


def _diagnostics(kube: Kube, namespace: str, cluster: str) -> str:
    """The Ray logs of every pod of the cluster still there (what the failure looked like from inside), and for a
    container that restarted, why its last run ended and what it printed (its files under /tmp/ray went with it)."""
    out = []
    for node_type in ("head", "worker"):
        for pod in _pods(kube, namespace, cluster, node_type):
            name = pod["metadata"]["name"]
            for status in pod.get("status", {}).get("containerStatuses", []):
                if status.get("restartCount"):
                    out.append(f"--- {name} container {status['name']} restarted {status['restartCount']}x, last "
                               f"state {json.dumps(status.get('lastState'))}")
                    previous = kube.kubectl("logs", "-n", namespace, name, "-c", status["name"], "--previous",
                                            "--tail", "60", check=False)
                    out.append(f"--- {name} {status['name']} (previous run)\n{previous}")
            for log in ("gcs_server.out", "gcs_server.err", "raylet.out", "raylet.err", "agent.log",
                        "dashboard.log"):
                text = kube.kubectl("exec", "-n", namespace, name, "--", "bash", "-c",
                                    f"tail -n 25 /tmp/ray/session_latest/logs/{log} 2>/dev/null", check=False)
                if text.strip():
                    out.append(f"--- {name} {log}\n{text}")
    return "\n".join(out)


@pytest.fixture
def redis_namespace(kube: Kube, namespace: str) -> Iterator[tuple[str, str]]:
    password = secrets.token_hex(12)
    for manifest in _redis(password):
        kube.apply(manifest, namespace)
    kube.wait_for("the redis pod", lambda: kube.kubectl_json("get", "pod", "redis", "-n", namespace)
                  .get("status", {}).get("phase") == "Running", timeout=300, interval=2)
    yield namespace, password


def test_head_pod_deleted_mid_rayjob_new_head_takes_over_and_job_succeeds(kube: Kube, operator: str,  # noqa: F811
                                                                         redis_namespace) -> None:
    namespace, password = redis_namespace
    kube.apply(RAYJOB, namespace)
    kube.wait_for("the Ray job to run", lambda: _status(kube, namespace).get("jobStatus") == "RUNNING",
                  timeout=900, interval=3)
    cluster = _status(kube, namespace)["rayClusterName"]
    head = _pods(kube, namespace, cluster, "head")[0]
    env = {e["name"]: e for e in head["spec"]["containers"][0]["env"]}
    assert env["RAY_REDIS_ADDRESS"]["value"] == "redis:6379"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-password-secret"
    assert head["metadata"]["annotations"]["ray.io/ft-enabled"] == "true"
    assert "livenessProbe" in head["spec"]["containers"][0] and "readinessProbe" in head["spec"]["containers"][0]
    worker = _pods(kube, namespace, cluster, "worker")[0]
    wenv = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert wenv["RAY_gcs_rpc_server_reconnect_timeout_s"] == "600"
    rc = kube.kubectl_json("get", "raycluster", cluster, "-n", namespace)
    assert "ray.io/gcs-ft-redis-cleanup-finalizer" in rc["metadata"]["finalizers"]
    keys = _redis_keys(kube, namespace, password)
    uid = rc["metadata"]["uid"]
    assert f"RAY{uid}@NODE" in keys and f"RAY{uid}@KV" in keys, keys

    time.sleep(15)  # the job is well under way
    old = head["metadata"]["name"]
    kube.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
    kube.wait_for("a new head pod to be ready",
                  lambda: any(p["metadata"]["name"] != old and _ready(p)
                              for p in _pods(kube, namespace, cluster, "head")), timeout=600, interval=3)
    status = _status(kube, namespace)
    assert status.get("jobStatus") in ("RUNNING", "SUCCEEDED"), (
        f"{json.dumps(status)}\n{_diagnostics(kube, namespace, cluster)}")

    kube.wait_for("the RayJob to finish", lambda: _status(kube, namespace).get("jobDeploymentStatus")
                  in ("Complete", "Failed"), timeout=900, interval=3)
    status = _status(kube, namespace)
    logs = kube.kubectl("logs", "-n", namespace, "job/ft-job", check=False)
    assert status.get("jobStatus") == "SUCCEEDED", (
        f"{json.dumps(status)}\nsubmitter logs:\n{logs}\n{_diagnostics(kube, namespace, cluster)}")

    # shutdownAfterJobFinishes deletes the RayCluster: its pods go, the redis-cleanup Job empties Redis, the
    # finalizer goes, and so does the RayCluster.
    kube.wait_for("the RayCluster to be gone", lambda: kube.kubectl(
        "get", "raycluster", cluster, "-n", namespace, "--ignore-not-found", check=False).strip() == "",
        timeout=600, interval=3)
    cleanup = kube.kubectl_json("get", "job", f"{cluster}-redis-cleanup", "-n", namespace)
    assert cleanup["status"].get("succeeded") == 1, cleanup["status"]
    assert _redis_keys(kube, namespace, password) == []
