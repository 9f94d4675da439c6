"""`helm lint` and `helm template` on the chart, with the real helm binary (skipped when it is not built,
except in CI, where `make test` builds it first)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "helm"


def _helm() -> str:
    cache = Path(os.environ.get("OPENRAY_CACHE", Path.home() / ".cache" / "openray"))
    for candidate in sorted(glob.glob(str(cache / "k8s-*" / "bin" / "helm")), reverse=True):
        return candidate
    found = shutil.which("helm")
    if found is None:
        message = "helm is not built: run `make tools` (tests/e2e/cluster/build-binaries)"
        if os.environ.get("CI"):  # `make test` builds tools first: in CI a missing helm is a broken build
            pytest.fail(message)
        pytest.skip(message)
    return found


def _template(*args: str) -> list[dict]:
    out = subprocess.run([_helm(), "template", "kuberay-operator", str(CHART), "--namespace", "ray-system", *args],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_helm_lint_passes():
    proc = subprocess.run([_helm(), "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_default_install_is_cluster_wide_with_leader_election_and_metrics():
    docs = _template("--include-crds")
    assert {d["metadata"]["name"] for d in _by_kind(docs, "CustomResourceDefinition")} == {
        "rayclusters.ray.io", "rayjobs.ray.io"}
    deployment = _by_kind(docs, "Deployment")[0]
    assert deployment["metadata"]["name"] == "kuberay-operator"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "localhost/openray-operator:dev"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["python", "-m", "ray_operator"]
    assert "--enable-leader-election=true" in container["args"]
    assert "--enable-metrics=true" in container["args"]
    assert not any(a.startswith("--watch-namespace") for a in container["args"])
    assert container["securityContext"]["runAsNonRoot"] is True
    assert _by_kind(docs, "ClusterRole") and _by_kind(docs, "ClusterRoleBinding")
    assert not [r for r in _by_kind(docs, "Role") if not r["metadata"]["name"].endswith("-leader-election")]
    lease_rules = _by_kind(docs, "Role")[0]["rules"]
    assert any("leases" in rule["resources"] for rule in lease_rules)
    service = _by_kind(docs, "Service")[0]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert _by_kind(docs, "ServiceAccount")[0]["metadata"]["name"] == "kuberay-operator"


def test_single_namespace_install_uses_roles_and_watches_listed_namespaces():
    docs = _template("--set", "singleNamespaceInstall=true", "--set", "watchNamespace={team-a,team-b}",
                     "--set", "leaderElectionEnabled=false", "--set", "image.tag=v9")
    assert not _by_kind(docs, "ClusterRole")
    roles = _by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    container = _by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert "--watch-namespace=team-a,team-b" in container["args"]
    assert "--enable-leader-election=false" in container["args"]
    assert container["image"] == "localhost/openray-operator:v9"


def test_rbac_can_be_turned_off():
    docs = _template("--set", "rbacEnable=false")
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
