"""`helm install` of the chart into a real API server: every object is accepted, and the operator's
ServiceAccount may do what the reconcilers do (checked with `kubectl auth can-i`)."""

from __future__ import annotations

import subprocess

import pytest
from apiserver import REPO, find_bin_dir


def _helm() -> str:
    bin_dir = find_bin_dir()
    if bin_dir is None or not (bin_dir / "helm").is_file():
        pytest.skip("helm is not built: run `make tools`")
    return str(bin_dir / "helm")


@pytest.mark.parametrize("single_namespace", [False, True])
def test_helm_install_and_rbac(kubectl, api_server, single_namespace):
    release = "kuberay-operator" if not single_namespace else "kuberay-operator-ns"
    namespace = "ray-system" if not single_namespace else "ray-team"
    args = [_helm(), "install", release, str(REPO / "helm"), "--kubeconfig", str(api_server.kubeconfig),
            "--namespace", namespace, "--create-namespace"]
    if single_namespace:
        args += ["--set", "singleNamespaceInstall=true", "--set", "fullnameOverride=kuberay-operator-ns",
                 "--set", "serviceAccount.name=kuberay-operator-ns"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        account = f"system:serviceaccount:{namespace}:{release}"
        deployment = kubectl.get("deployment", release, namespace)
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == release
        where = namespace if single_namespace else "some-other-namespace"
        for verb, resource in [("create", "pods"), ("delete", "pods"), ("watch", "pods"), ("create", "services"),
                               ("create", "jobs.batch"), ("patch", "rayclusters.ray.io/status"),
                               ("patch", "rayjobs.ray.io"), ("create", "rayclusters.ray.io"), ("create", "events"),
                               ("get", "services/proxy")]:
            answer = kubectl("auth", "can-i", verb, resource, "-n", where, f"--as={account}", check=False).strip()
            assert answer == "yes", (verb, resource, where, answer)
        lease = kubectl("auth", "can-i", "update", "leases.coordination.k8s.io", "-n", namespace, f"--as={account}",
                        check=False).strip()
        assert lease == "yes"
        if single_namespace:
            outside = kubectl("auth", "can-i", "create", "pods", "-n", "elsewhere", f"--as={account}", check=False)
            assert outside.strip() == "no"
    finally:
        subprocess.run([_helm(), "uninstall", release, "--kubeconfig", str(api_server.kubeconfig), "-n", namespace],
                       capture_output=True, timeout=120)
