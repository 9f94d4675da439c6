"""RayJobs run to completion (HTTPMode, and K8sJobMode with its real submitter script): the reconcilers
against a real API server and a real OpenRay head on this machine (the pods cannot run without a kubelet, so the head stands in for the
cluster's head pod, and the test marks the pods Running)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

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
        kubectl.wait_established("rayjobs.ray.io", "rayclusters.ray.io")
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
            reconcile_rayjob(kube, cfg, namespace, "http-job", lambda rayjob, svc, *token_and_hint: dashboard)
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
        info = dashboard.get_job_info(status["jobId"])
        assert info["status"] == "SUCCEEDED" and info["metadata"] == {"owner": "api-test"}
        events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
        assert "SubmittedRayJob" in {e["reason"] for e in events}
        # shutdownAfterJobFinishes with a TTL of 0: the cluster goes right away; the RayJob stays.
        wait_for("the cluster deleted", lambda: step() and kubectl.get("raycluster", cluster, namespace) is None)
        assert kubectl.get("rayjob", "http-job", namespace)["status"]["jobDeploymentStatus"] == "Complete"


def test_k8s_job_mode_submitter_script_runs_against_openray(quiet_api, tmp_path):
    """The submitter Job's own script (wait for GCS, submit once, follow logs) run here against a real
    head, then the Job marked Complete as the Job controller would: the RayJob turns Complete."""
    server, kubectl = quiet_api
    namespace = f"k8sjob-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kube = Kube(load_config(str(server.kubeconfig)))
    cfg = OperatorConfig()
    rayjob = json.loads(json.dumps(RAYJOB))
    rayjob["metadata"]["name"] = "k8s-job"
    del rayjob["spec"]["submissionMode"]
    del rayjob["spec"]["runtimeEnvYAML"]
    rayjob["spec"]["runtimeEnv"] = "eyJlbnZfdmFycyI6IHsiR1JFRVRJTkciOiAiZnJvbS1iYXNlNjQifX0="  # {"env_vars": {"GREETING": "from-base64"}}

    with local_head(tmp_path) as dashboard:
        kubectl.apply(rayjob, namespace)

        def step():
            for cluster in kube.list_custom(c.RAYCLUSTER_PLURAL, namespace):
                reconcile_raycluster(kube, cfg, namespace, cluster["metadata"]["name"])
            reconcile_rayjob(kube, cfg, namespace, "k8s-job", lambda rayjob, svc, *token_and_hint: dashboard)
            return (kubectl.get("rayjob", "k8s-job", namespace) or {}).get("status") or {}

        cluster = wait_for("a cluster", lambda: step().get("rayClusterName"))
        pods = wait_for("the head pod", lambda: step() and kubectl.items("pods", namespace, f"ray.io/cluster={cluster}"))
        for pod in pods:
            kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Running", "podIP": "10.244.3.2",
                                                 "conditions": [{"type": "Ready", "status": "True"}]}}))
        status = wait_for("Running", lambda: step().get("jobDeploymentStatus") == "Running" and step())
        job = kubectl.get("job", "k8s-job", namespace)
        script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
        local = script.replace(f"http://{status['dashboardURL']}", dashboard.base_url)
        # In the pod the token comes from the cluster's Secret; here the stand-in head's.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "RAY_AUTH_TOKEN": dashboard.token}
        run = subprocess.run(["/bin/bash", "-ce", local], capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "hello from-base64" in run.stdout

        # A second run (a restarted submitter pod) must not submit again: it only follows the logs.
        again = subprocess.run(["/bin/bash", "-ce", local], capture_output=True, text=True, env=env, timeout=300)
        assert again.returncode == 0 and "hello from-base64" in again.stdout, again.stdout + again.stderr

        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        done = {"status": {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now, "lastProbeTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now, "lastProbeTime": now}]}}
        kubectl("patch", "job", "k8s-job", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(done))
        status = wait_for("Complete", lambda: step().get("jobDeploymentStatus") == "Complete" and step(), 120, 1)
        assert status["jobStatus"] == "SUCCEEDED"
