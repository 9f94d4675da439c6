"""The operator running with only the chart's RBAC (single-namespace install, its ServiceAccount's
token): it takes the leader Lease and reconciles a RayCluster in the namespace it watches."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from apiserver import REPO, ApiServer, Kubectl, find_bin_dir, find_etcd, find_kubectl, free_ports, wait_for


@pytest.fixture(scope="module")
def rbac_api(tmp_path_factory: pytest.TempPathFactory):
    """An API server of its own: no admin-powered operator may act on these namespaces."""
    bin_dir = find_bin_dir()
    kubectl_path = find_kubectl(bin_dir)
    etcd = find_etcd(bin_dir)
    if bin_dir is None or kubectl_path is None or etcd is None or not (bin_dir / "helm").is_file():
        pytest.skip("kube-apiserver/etcd/helm not built: run `make tools`")
    server = ApiServer(bin_dir, etcd, tmp_path_factory.mktemp("rbac-apiserver"), kubectl_path)
    try:
        server.start()
        yield server, Kubectl(kubectl_path, server.kubeconfig), str(bin_dir / "helm")
    finally:
        server.stop()


def test_operator_with_the_charts_namespaced_rbac(rbac_api, tmp_path):
    server, kubectl, helm = rbac_api
    kubectl("create", "namespace", "team")
    install = subprocess.run(
        [helm, "install", "kuberay-operator", str(REPO / "helm"), "--kubeconfig", str(server.kubeconfig),
         "-n", "ray-system", "--create-namespace", "--set", "singleNamespaceInstall=true",
         "--set", "watchNamespace={team}"], capture_output=True, text=True, timeout=180)
    assert install.returncode == 0, install.stdout + install.stderr
    token = kubectl("create", "token", "kuberay-operator", "-n", "ray-system").strip()
    config = json.loads(server.kubeconfig.read_text())
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "operator"
    sa_kubeconfig = tmp_path / "operator-kubeconfig"
    sa_kubeconfig.write_text(json.dumps(config))

    metrics, health = free_ports(2)
    log_path = tmp_path / "operator.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ray_operator", "--kubeconfig", str(sa_kubeconfig), "--watch-namespace=team",
             "--leader-election-namespace=ray-system", f"--metrics-addr=:{metrics}",
             f"--health-probe-bind-address=:{health}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        kubectl("apply", "-n", "team", "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
        wait_for("the operator's pods in team", lambda: proc.poll() is None and len(
            kubectl.items("pods", "team", "ray.io/cluster=raycluster-sample")) == 2, 240)
        wait_for("status written", lambda: (kubectl.get("raycluster", "raycluster-sample", "team") or {})
                 .get("status", {}).get("desiredWorkerReplicas") == 1)
        assert kubectl.get("lease", "ray-operator-leader", "ray-system") is not None
        events = json.loads(kubectl("get", "events", "-n", "team", "-o", "json"))["items"]
        assert "CreatedHeadPod" in {e["reason"] for e in events}
        # The cluster's auth Secret too (token authentication is on by default): the chart grants secrets.
        assert kubectl.get("secret", "raycluster-sample", "team") is not None
        assert "CreatedSecret" in {e["reason"] for e in events}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    text = log_path.read_text()
    # A 403 from the API server, not the milliseconds of a log line's time ("14:07:37,403 INFO").
    assert "Forbidden" not in text and not re.search(r"(?<![\d,.:])403(?!\d)", text), text[-3000:]
