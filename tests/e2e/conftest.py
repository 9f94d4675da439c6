"""Fixtures for the end-to-end tests: a real Kubernetes cluster and the kubectl/helm a user runs.

The cluster is the one `$KUBECONFIG` points at when it answers (e.g. kind on a laptop), else the
harness's one-node cluster (`make cluster-up`; kubeconfig at `$OPENRAY_E2E_DIR/kubeconfig`).
Without a reachable cluster the tests skip, unless `OPENRAY_E2E_REQUIRED=1` (set by
`make test-e2e`), where that is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kube import Kube

HARNESS_DIR = Path(__file__).parent / "cluster"
DEFAULT_E2E_DIR = "/var/tmp/openray-e2e"


def _harness_bin_dir() -> Path | None:
    try:
        out = subprocess.run([str(HARNESS_DIR / "bin-dir")], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return Path(out.stdout.strip())


def _tool(name: str) -> str | None:
    """The harness's build of a tool when there is one, else the one on PATH."""
    bin_dir = _harness_bin_dir()
    if bin_dir is not None and (bin_dir / name).is_file():
        return str(bin_dir / name)
    return shutil.which(name)


def _unavailable(message: str) -> None:
    """No cluster to test against: an error when the run requires one, else a skip."""
    if os.environ.get("OPENRAY_E2E_REQUIRED") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _reachable(kubectl: str, kubeconfig: str) -> bool:
    if not Path(kubeconfig).is_file():
        return False
    proc = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "--request-timeout=10s", "get", "--raw", "/readyz"],
        capture_output=True, text=True,
    )
    return proc.returncode == 0


@pytest.fixture(scope="session")
def kube() -> Kube:
    """The cluster the e2e tests run against (see the module docstring for how it is chosen)."""
    kubectl = _tool("kubectl")
    if kubectl is None:
        _unavailable("kubectl not found: run `make tools` (or put kubectl on PATH)")
        raise AssertionError("unreachable")
    harness_kubeconfig = str(Path(os.environ.get("OPENRAY_E2E_DIR", DEFAULT_E2E_DIR)) / "kubeconfig")
    candidates = [c for c in os.environ.get("KUBECONFIG", "").split(os.pathsep) if c] + [harness_kubeconfig]
    for kubeconfig in candidates:
        if _reachable(kubectl, kubeconfig):
            return Kube(kubeconfig=kubeconfig, kubectl_path=kubectl, helm_path=_tool("helm"))
    _unavailable(f"no reachable Kubernetes cluster (tried {', '.join(candidates)}): run `make cluster-up`")
    raise AssertionError("unreachable")


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace for one test; deleted with everything in it afterwards, even on failure."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    kube.wait_for(
        f"the default ServiceAccount in {name}",
        lambda: kube.kubectl("get", "serviceaccount", "default", "-n", name, check=False) != "",
        timeout=60,
    )
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False, timeout=180)
