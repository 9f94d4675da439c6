"""RayJob against a real API server: the seed's v1alpha1 file, the submitter Job, failures, suspend, retries."""

from __future__ import annotations

import base64
import copy
import datetime
import json

import yaml
from apiserver import REPO, wait_for

SEED_DOCS = list(yaml.safe_load_all((REPO / "examples" / "rayjob-sample.yaml").read_text()))
SEED_ENV = {"pip": ["requests==2.26.0", "pendulum==2.1.2"], "env_vars": {"counter_name": "test_counter"}}


def _job(kubectl, namespace, name="rayjob-sample"):
    return kubectl.get("rayjob", name, namespace) or {}


def _status(kubectl, namespace, name="rayjob-sample"):
    return _job(kubectl, namespace, name).get("status") or {}


def _make_cluster_ready(kubectl, namespace, cluster):
    def pods():
        found = [p for p in kubectl.items("pods", namespace, f"ray.io/cluster={cluster}")
                 if not p["metadata"].get("deletionTimestamp")]
        return found if len(found) >= 2 else None

    for index, pod in enumerate(wait_for(f"pods of {cluster}", pods)):
        status = {"status": {"phase": "Running", "podIP": f"10.244.1.{index + 2}",
                             "conditions": [{"type": "Ready", "status": "True"}]}}
        kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status",
                "--type=merge", "-p", json.dumps(status))
    wait_for(f"{cluster} ready", lambda: (kubectl.get("raycluster", cluster, namespace) or {})
             .get("status", {}).get("state") == "ready")


def _fail_submitter(kubectl, namespace, name):
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit", "lastTransitionTime": now, "lastProbeTime": now},
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit", "lastTransitionTime": now, "lastProbeTime": now},
    ]
    status = {"status": {"startTime": now, "failed": 3, "conditions": conditions}}
    kubectl("patch", "job", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status))


def test_seed_v1alpha1_rayjob_creates_cluster_and_submitter(operator, kubectl, namespace):
    out = kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "rayjob-sample.yaml"))
    assert "rayjob.ray.io/rayjob-sample created" in out

    status = wait_for("Initializing", lambda: _status(kubectl, namespace).get("jobDeploymentStatus") == "Initializing"
                      and _status(kubectl, namespace))
    cluster_name = status["rayClusterName"]
    assert cluster_name.startswith("rayjob-sample-raycluster-") and len(cluster_name) == len("rayjob-sample-raycluster-") + 5
    assert status["jobId"].startswith("rayjob-sample-")
    assert "ray.io/rayjob-finalizer" in _job(kubectl, namespace)["metadata"]["finalizers"]

    cluster = wait_for("the job's RayCluster", lambda: kubectl.get("raycluster", cluster_name, namespace))
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"] == {"dashboard-host": "0.0.0.0", "num-cpus": "1"}
    assert cluster["metadata"]["labels"]["ray.io/originated-from-crd"] == "RayJob"
    assert cluster["metadata"]["ownerReferences"][0]["name"] == "rayjob-sample"

    _make_cluster_ready(kubectl, namespace, cluster_name)
    status = wait_for("Running", lambda: _status(kubectl, namespace).get("jobDeploymentStatus") == "Running"
                      and _status(kubectl, namespace))
    assert status["dashboardURL"] == f"{cluster_name}-head-svc.{namespace}.svc.cluster.local:8265"

    submitter = kubectl.get("job", "rayjob-sample", namespace)
    container = submitter["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "ray-job-submitter" and container["image"] == "rayproject/ray:2.4.0"
    script = container["args"][0]
    address = f"http://{cluster_name}-head-svc.{namespace}.svc.cluster.local:8265"
    assert f"ray job submit --address {address} --no-wait --runtime-env-json" in script
    assert f"--submission-id {status['jobId']} -- python /home/ray/samples/sample_code.py" in script
    env_json = script.split("--runtime-env-json ", 1)[1].split(" --submission-id", 1)[0].strip("'")
    assert json.loads(env_json) == SEED_ENV

    header = kubectl("get", "rayjob", "-n", namespace).splitlines()[0]
    assert header.split() == ["NAME", "JOB", "STATUS", "DEPLOYMENT", "STATUS", "RAY", "CLUSTER", "NAME",
                              "START", "TIME", "END", "TIME", "AGE"]

    _fail_submitter(kubectl, namespace, "rayjob-sample")
    status = wait_for("Failed", lambda: _status(kubectl, namespace).get("jobDeploymentStatus") == "Failed"
                      and _status(kubectl, namespace))
    assert status["reason"] == "SubmissionFailed"
    assert "backoff limit" in status["message"]
    assert status["endTime"] and status["failed"] == 1

    # Deleting the RayJob clears the operator's finalizer, so it really goes.
    kubectl("delete", "rayjob", "rayjob-sample", "-n", namespace, "--timeout=60s")
    assert kubectl.get("rayjob", "rayjob-sample", namespace) is None


def test_invalid_runtime_env_is_validation_failed(operator, kubectl, namespace):
    bad = copy.deepcopy(SEED_DOCS[0])
    bad["metadata"]["name"] = "bad-env"
    bad["spec"]["runtimeEnv"] = "%%% not base64 %%%"
    kubectl.apply(bad, namespace)
    status = wait_for("ValidationFailed", lambda: _status(kubectl, namespace, "bad-env").get("jobDeploymentStatus")
                      == "ValidationFailed" and _status(kubectl, namespace, "bad-env"))
    assert status["reason"] == "ValidationFailed"
    assert "spec.runtimeEnv is not valid base64" in status["message"]
    events = json.loads(kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=bad-env",
                                "-o", "json"))["items"]
    assert any(e["reason"] == "InvalidRayJobSpec" and e["type"] == "Warning" for e in events)
    assert not kubectl.items("rayclusters", namespace)

    # A name over 47 characters is refused the same way.
    long = copy.deepcopy(SEED_DOCS[0])
    long["metadata"]["name"] = "a" * 48
    kubectl.apply(long, namespace)
    message = wait_for("name error", lambda: _status(kubectl, namespace, "a" * 48).get("message"))
    assert "at most 47" in message


def test_suspend_resume_and_deadline(operator, kubectl, namespace):
    job = copy.deepcopy(SEED_DOCS[0])
    job["apiVersion"] = "ray.io/v1"
    job["metadata"]["name"] = "suspended"
    del job["spec"]["runtimeEnv"]
    job["spec"]["runtimeEnvYAML"] = "env_vars:\n  counter_name: test_counter\n"
    job["spec"].update(suspend=True, shutdownAfterJobFinishes=True)
    kubectl.apply(job, namespace)
    wait_for("Suspended", lambda: _status(kubectl, namespace, "suspended").get("jobDeploymentStatus") == "Suspended")
    assert not kubectl.items("rayclusters", namespace)

    kubectl("patch", "rayjob", "suspended", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    name = wait_for("a cluster after resume", lambda: _status(kubectl, namespace, "suspended").get("rayClusterName"))
    wait_for("the cluster object", lambda: kubectl.get("raycluster", name, namespace))
    kubectl("patch", "rayjob", "suspended", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    wait_for("Suspended again", lambda: _status(kubectl, namespace, "suspended").get("jobDeploymentStatus") == "Suspended")
    assert kubectl.get("raycluster", name, namespace) is None

    deadline = copy.deepcopy(SEED_DOCS[0])
    deadline["metadata"]["name"] = "deadline"
    deadline["spec"]["activeDeadlineSeconds"] = 3
    kubectl.apply(deadline, namespace)
    status = wait_for("DeadlineExceeded", lambda: _status(kubectl, namespace, "deadline").get("reason")
                      == "DeadlineExceeded" and _status(kubectl, namespace, "deadline"))
    assert status["jobDeploymentStatus"] == "Failed"
    assert "activeDeadlineSeconds" in status["message"]

    pre = copy.deepcopy(SEED_DOCS[0])
    pre["metadata"]["name"] = "pre-running"
    pre["spec"]["preRunningDeadlineSeconds"] = 3
    kubectl.apply(pre, namespace)
    status = wait_for("PreRunningDeadlineExceeded", lambda: _status(kubectl, namespace, "pre-running").get("reason")
                      == "PreRunningDeadlineExceeded" and _status(kubectl, namespace, "pre-running"))
    assert status["jobDeploymentStatus"] == "Failed" and "preRunningDeadlineSeconds" in status["message"]


def test_backoff_limit_retries_on_a_new_cluster(operator, kubectl, namespace):
    job = copy.deepcopy(SEED_DOCS[0])
    job["metadata"]["name"] = "retry"
    job["spec"]["backoffLimit"] = 1
    job["spec"]["runtimeEnv"] = base64.b64encode(b'{"env_vars": {"A": "b"}}').decode()
    kubectl.apply(job, namespace)
    first = wait_for("a cluster", lambda: _status(kubectl, namespace, "retry").get("rayClusterName"))
    _make_cluster_ready(kubectl, namespace, first)
    wait_for("the submitter", lambda: kubectl.get("job", "retry", namespace))
    _fail_submitter(kubectl, namespace, "retry")

    second = wait_for("a new cluster", lambda: (_status(kubectl, namespace, "retry").get("rayClusterName") or first) != first
                      and _status(kubectl, namespace, "retry")["rayClusterName"])
    assert _status(kubectl, namespace, "retry")["failed"] == 1
    wait_for("the first cluster deleted", lambda: kubectl.get("raycluster", first, namespace) is None)
    wait_for("the second cluster", lambda: kubectl.get("raycluster", second, namespace))


def test_cluster_selector_uses_an_existing_cluster_and_never_deletes_it(operator, kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
    _make_cluster_ready(kubectl, namespace, "raycluster-sample")
    job = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "on-shared"},
        "spec": {"entrypoint": "python -c 'print(1)'", "clusterSelector": {"ray.io/cluster": "raycluster-sample"},
                 "shutdownAfterJobFinishes": True},
    }
    kubectl.apply(job, namespace)
    status = wait_for("Running", lambda: _status(kubectl, namespace, "on-shared").get("jobDeploymentStatus") == "Running"
                      and _status(kubectl, namespace, "on-shared"))
    assert status["rayClusterName"] == "raycluster-sample"
    assert [c["metadata"]["name"] for c in kubectl.items("rayclusters", namespace)] == ["raycluster-sample"]
    submitter = kubectl.get("job", "on-shared", namespace)
    assert submitter["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/openray-head:dev"
    _fail_submitter(kubectl, namespace, "on-shared")
    wait_for("Failed", lambda: _status(kubectl, namespace, "on-shared").get("jobDeploymentStatus") == "Failed")
    assert kubectl.get("raycluster", "raycluster-sample", namespace) is not None
