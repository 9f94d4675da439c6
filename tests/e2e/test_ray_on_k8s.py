"""Operator + images + runtime together on the real cluster, driven with helm and kubectl as a user would.

The chart from helm/ installs the operator (its pod runs localhost/openray-operator:dev); the seed's
examples/rayjob-sample.yaml, unchanged, runs to SUCCEEDED with its pip runtime env installed in
the pods; a RayCluster's head and workers form one Ray cluster that scales with `replicas`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kube import Kube

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def operator(kube: Kube) -> Iterator[str]:
    """`helm install` of the chart into its own namespace; uninstalled afterwards. Returns the namespace."""
    namespace = f"openray-system-{uuid.uuid4().hex[:6]}"
    try:
        kube.helm("install", "kuberay-operator", str(REPO / "helm"), "--namespace", namespace,
                  "--create-namespace", "--wait", "--timeout", "6m", timeout=420)
        yield namespace
    finally:
        kube.helm("uninstall", "kuberay-operator", "--namespace", namespace, "--wait", check=False)
        kube.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False, timeout=180)


def test_operator_pod_runs_from_its_image(kube: Kube, operator: str) -> None:
    pods = kube.kubectl_json("get", "pods", "-n", operator)["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod = pods[0]
    assert pod["spec"]["containers"][0]["image"] == "localhost/openray-operator:dev"
    assert pod["status"]["phase"] == "Running"
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"


def _rayjob_status(kube: Kube, namespace: str, name: str) -> dict:
    return kube.kubectl_json("get", "rayjob", name, "-n", namespace).get("status") or {}


def test_seed_rayjob_runs_to_success(kube: Kube, operator: str, namespace: str) -> None:
    out = kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "rayjob-sample.yaml"))
    assert "rayjob.ray.io/rayjob-sample created" in out

    def finished() -> bool:
        status = _rayjob_status(kube, namespace, "rayjob-sample")
        return status.get("jobStatus") in ("SUCCEEDED", "FAILED", "STOPPED") or status.get(
            "jobDeploymentStatus") in ("Complete", "Failed")

    kube.wait_for("rayjob-sample to finish", finished, timeout=900, interval=3)
    kube.wait_for("rayjob-sample Complete",
                  lambda: _rayjob_status(kube, namespace, "rayjob-sample").get("jobDeploymentStatus")
                  in ("Complete", "Failed"), timeout=120, interval=2)
    status = _rayjob_status(kube, namespace, "rayjob-sample")
    logs = kube.kubectl("logs", "-n", namespace, "job/rayjob-sample", check=False)
    assert status.get("jobStatus") == "SUCCEEDED", f"status {status}\nsubmitter logs:\n{logs}"
    assert status.get("jobDeploymentStatus") == "Complete", status
    for i in range(1, 6):
        assert f"test_counter got {i}" in logs, logs
    assert re.search(r"^2\.26\.0$", logs, re.MULTILINE), logs  # requests==2.26.0 from the runtime env

    table = kube.kubectl("get", "rayjob", "-n", namespace)
    assert re.search(r"JOB STATUS\s+DEPLOYMENT STATUS\s+RAY CLUSTER NAME", table), table
    assert re.search(r"rayjob-sample\s+SUCCEEDED\s+Complete\s+rayjob-sample-raycluster-", table), table
    clusters = kube.kubectl("get", "raycluster", "-n", namespace)
    assert re.search(r"DESIRED WORKERS\s+AVAILABLE WORKERS", clusters), clusters
