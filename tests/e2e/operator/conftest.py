"""Fixtures of the operator's API-level tests: a private API server, the CRDs, the operator process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from apiserver import REPO, ApiServer, Kubectl, find_bin_dir, find_etcd, find_kubectl, free_ports, wait_for


def _unavailable(message: str) -> None:
    if os.environ.get("OPENRAY_E2E_REQUIRED") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    bin_dir = find_bin_dir()
    kubectl = find_kubectl(bin_dir)
    etcd = find_etcd(bin_dir)
    if bin_dir is None or kubectl is None or etcd is None:
        _unavailable("kube-apiserver/etcd not built: run `make tools` (tests/e2e/cluster/build-binaries)")
    server = ApiServer(bin_dir, etcd, tmp_path_factory.mktemp("apiserver"), kubectl)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kubectl(api_server: ApiServer) -> Kubectl:
    k = Kubectl(api_server.kubectl_path, api_server.kubeconfig)
    k("apply", "-f", str(REPO / "crds"))
    k.wait_established("rayclusters.ray.io", "rayjobs.ray.io")
    return k


@dataclass
class OperatorProcess:
    log_path: Path
    metrics_port: int


@pytest.fixture(scope="session")
def operator(api_server: ApiServer, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """`python -m ray_operator` against the API server (as the chart runs it, with leader election)."""
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {**os.environ, "RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV": "10", "PYTHONUNBUFFERED": "1"}
    metrics_port, health_port = free_ports(2)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ray_operator", "--kubeconfig", str(api_server.kubeconfig),
             f"--metrics-addr=:{metrics_port}", f"--health-probe-bind-address=:{health_port}",
             "--enable-metrics", "--leader-election-namespace=default"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        def leader() -> str:
            if proc.poll() is not None:
                raise RuntimeError(f"the operator exited with {proc.returncode}:\n{log_path.read_text()[-5000:]}")
            return kubectl("get", "lease", "ray-operator-leader", "-n", "default", check=False)

        wait_for("the operator to take the leader lease", leader, 240)
        yield OperatorProcess(log_path, metrics_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if os.environ.get("OPENRAY_SHOW_OPERATOR_LOG"):
            print(log_path.read_text()[-20000:])


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A namespace per test (without a controller-manager it is never fully deleted; the API server goes)."""
    name = f"op-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "rayjobs,rayclusters", "--all", "-n", name, "--wait=false", check=False)
