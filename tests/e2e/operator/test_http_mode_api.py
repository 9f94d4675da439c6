"""A RayJob in HTTPMode run to completion: the reconcilers against a real API server and a real
OpenRay head on this machine (the pods cannot run without a kubelet, so the head stands in for the
cluster's head pod, and the test marks the pods Running)."""

from __future__ import annotations

import json
import uuid

import pytest
from apiserver import REPO, ApiServer, Kubectl, find_bin_dir, find_etcd, find_kubectl, wait_for
from local_head import local_head
from ray_operator import constants as c
from ray_operator.config import OperatorConfig
from ray_operator.handlers.raycluster import reconcile_raycluster
from ray_operator.handlers.rayjob import reconcile_rayjob
from ray_operator.kube import Kube, load_config

RAYJOB = {
    "apiVersion": "ray.io/v1",
    "kind": "RayJob",
    "metadata": {"name": "http-job"},
    "spec": {
        "submissionMode": "HTTPMode",
        "entrypoint": "python -c \"import os; print('hello', os.environ['GREETING'])\"",
        "runtimeEnvYAML": "env_vars:\n  GREETING: from-the-rayjob\n",
        "metadata": {"owner": "api-test"},
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 0,
        "rayClusterSpec": {
            "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [
                {"name": "ray-head", "image": "localhost/openray-head:dev"}]}}},
        },
    },
}


@pytest.fixture(scope="module")
def quiet_api(tmp_path_factory: pytest.TempPathFactory):
    """An API server of its own, with no operator process: this test drives the reconcilers itself."""
    bin_dir = find_bin_dir()
    kubectl_path = find_kubectl(bin_dir)
    etcd = find_etcd(bin_dir)
    if bin_dir is None or kubectl_path is None or etcd is None:
        pytest.skip("kube-apiserver/etcd not built: run `make tools`")
    server = ApiServer(bin_dir, etcd, tmp_path_factory.mktemp("quiet-apiserver"), kubectl_path)
    try:
        server.start()
        kubectl = Kubectl(kubectl_path, server.kubeconfig)
        kubectl("apply", "-f", str(REPO / "crds"))
        kubectl("wait", "--for=condition=Established", "crd/rayjobs.ray.io", "crd/rayclusters.ray.io", "--timeout=60s")
        yield server, kubectl
    finally:
        server.stop()


def test_http_mode_job_runs_to_complete_and_cluster_is_deleted(quiet_api, tmp_path):
    server, kubectl = quiet_api
    namespace = f"http-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kube = Kube(load_config(str(server.kubeconfig)))
    cfg = OperatorConfig()

    with local_head(tmp_path) as dashboard:
        kubectl.apply(RAYJOB, namespace)

        def step():
            """One pass of both reconcilers, as the operator's work queues would run them."""
            for cluster in kube.list_custom(c.RAYCLUSTER_PLURAL, namespace):
                reconcile_raycluster(kube, cfg, namespace, cluster["metadata"]["name"])
            reconcile_rayjob(kube, cfg, namespace, "http-job", lambda rayjob, svc: dashboard)
            return (kubectl.get("rayjob", "http-job", namespace) or {}).get("status") or {}

        status = wait_for("Initializing", lambda: step().get("jobDeploymentStatus") == "Initializing" and step())
        cluster = status["rayClusterName"]
        pods = wait_for("the cluster's head pod", lambda: step() and kubectl.items("pods", namespace,
                                                                                   f"ray.io/cluster={cluster}"))
        for pod in pods:
            kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Running", "podIP": "10.244.2.2",
                                                 "conditions": [{"type": "Ready", "status": "True"}]}}))
        status = wait_for("Complete", lambda: step().get("jobDeploymentStatus") == "Complete" and step(), 180, 1)

        assert status["jobStatus"] == "SUCCEEDED"
        assert status["dashboardURL"] == f"{cluster}-head-svc.{namespace}.svc.cluster.local:8265"
        assert status["startTime"] and status["endTime"] and status["succeeded"] == 1
        assert status["rayJobInfo"]["startTime"] and status["rayJobInfo"]["endTime"]
        info = dashboard.get_job_info_sync(status["jobId"])
        assert info["status"] == "SUCCEEDED" and info["metadata"] == {"owner": "api-test"}
        events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
        assert "SubmittedRayJob" in {e["reason"] for e in events}
        # shutdownAfterJobFinishes with a TTL of 0: the cluster goes right away; the RayJob stays.
        wait_for("the cluster deleted", lambda: step() and kubectl.get("raycluster", cluster, namespace) is None)
        assert kubectl.get("rayjob", "http-job", namespace)["status"]["jobDeploymentStatus"] == "Complete"
