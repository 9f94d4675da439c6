"""A real kube-apiserver + etcd for the operator's API-level tests (what KubeRay's envtest gives it).

No kubelet, scheduler or controller-manager: pods never run and nothing is garbage-collected, so a
test sets pod or Job status itself (through the real status subresource) where it needs "Running".
The binaries are the e2e harness's (`tests/e2e/cluster/bin-dir`, or the cache it fills).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def find_bin_dir() -> Path | None:
    """The directory holding kube-apiserver, or None when it is not built."""
    candidates: list[Path] = []
    script = REPO / "tests" / "e2e" / "cluster" / "bin-dir"
    if script.is_file():
        try:
            out = subprocess.run([str(script)], capture_output=True, text=True, check=True, timeout=30)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    cache = Path(os.environ.get("OPENRAY_CACHE", Path.home() / ".cache" / "openray"))
    candidates += [Path(p) for p in sorted(glob.glob(str(cache / "k8s-*" / "bin")), reverse=True)]
    for candidate in candidates:
        if (candidate / "kube-apiserver").is_file():
            return candidate
    return None


def find_etcd(bin_dir: Path | None) -> str | None:
    """The harness's etcd, else `$OPENRAY_TEST_ETCD`, else one on PATH (e.g. Debian's 3.4)."""
    if bin_dir is not None and (bin_dir / "etcd").is_file():
        return str(bin_dir / "etcd")
    return os.environ.get("OPENRAY_TEST_ETCD") or shutil.which("etcd")


def find_kubectl(bin_dir: Path | None) -> str | None:
    if bin_dir is not None and (bin_dir / "kubectl").is_file():
        return str(bin_dir / "kubectl")
    return shutil.which("kubectl")


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all held open while choosing, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(folder: Path) -> None:
    """A CA, an admin client certificate (system:masters) and the service-account key pair."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=openray-test-ca", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "admin.key", "-out", "admin.csr",
             "-subj", "/O=system:masters/CN=openray-admin", cwd=folder)
    _openssl("x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "admin.crt", "-days", "2", cwd=folder)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)


class ApiServer:
    """etcd + kube-apiserver on free 127.0.0.1 ports under `workdir`; `stop()` removes every trace."""

    def __init__(self, bin_dir: Path, etcd: str, workdir: Path, kubectl: str) -> None:
        self.bin_dir = bin_dir
        self.etcd = etcd
        self.workdir = workdir
        self.kubectl_path = kubectl
        self.kubeconfig = workdir / "kubeconfig"
        self._procs: list[subprocess.Popen] = []

    def start(self, timeout_s: float = 300) -> None:
        pki = self.workdir / "pki"
        make_pki(pki)
        etcd_port, peer_port, api_port = free_ports(3)
        etcd_log = open(self.workdir / "etcd.log", "wb")  # noqa: SIM115 — closed with the process
        version = subprocess.run([self.etcd, "--version"], capture_output=True, text=True).stdout
        no_fsync = [] if "Version: 3.4." in version else ["--unsafe-no-fsync"]  # a 3.5+ flag
        self._procs.append(subprocess.Popen(
            [self.etcd, "--name", "default", "--data-dir", str(self.workdir / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer_port}", *no_fsync],
            stdout=etcd_log, stderr=subprocess.STDOUT, start_new_session=True,
        ))
        api_log = open(self.workdir / "apiserver.log", "wb")  # noqa: SIM115
        self._procs.append(subprocess.Popen(
            [str(self.bin_dir / "kube-apiserver"),
             f"--etcd-servers=http://127.0.0.1:{etcd_port}",
             f"--cert-dir={self.workdir / 'serving'}",
             f"--secure-port={api_port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
             "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
             "--disable-admission-plugins=ServiceAccount", "--authorization-mode=RBAC",
             f"--client-ca-file={pki / 'ca.crt'}",
             f"--service-account-issuer=https://127.0.0.1:{api_port}/",
             f"--service-account-key-file={pki / 'sa.pub'}",
             f"--service-account-signing-key-file={pki / 'sa.key'}"],
            stdout=api_log, stderr=subprocess.STDOUT, start_new_session=True,
        ))
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": f"https://127.0.0.1:{api_port}",
                                                      "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(pki / "admin.crt"),
                                                 "client-key": str(pki / "admin.key")}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        }))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}; see {self.workdir}/*.log")
            probe = subprocess.run([self.kubectl_path, "--kubeconfig", str(self.kubeconfig), "get", "--raw", "/readyz"],
                                   capture_output=True, text=True)
            if probe.returncode == 0:
                return
            time.sleep(1)
        raise RuntimeError(f"kube-apiserver was not ready in {timeout_s}s; see {self.workdir}/apiserver.log")

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self._procs.clear()


class Kubectl:
    """kubectl against one API server, as a user runs it."""

    def __init__(self, kubectl: str, kubeconfig: Path) -> None:
        self.path = kubectl
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60) -> str:
        proc = subprocess.run([self.path, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc.stdout

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        out = self("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(out) if out.strip() else None

    def items(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self(*args))["items"]

    def apply(self, manifest: dict[str, Any] | str, namespace: str) -> str:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self("apply", "-n", namespace, "-f", "-", stdin=text)

    def wait_established(self, *crds: str, timeout: float = 60) -> None:
        """Until each CRD is served. Not `kubectl wait --for=condition=Established`: right after `apply` a CRD may
        have no `.status.conditions` yet, and kubectl then fails at once ("accessor error: <nil>") instead of
        waiting (seen in CI)."""
        deadline = time.monotonic() + timeout
        for crd in crds:
            query = '{.status.conditions[?(@.type=="Established")].status}'
            while self("get", "crd", crd, "-o", f"jsonpath={query}", check=False).strip() != "True":
                if time.monotonic() > deadline:
                    raise AssertionError(f"CRD {crd} not Established after {timeout:.0f} s")
                time.sleep(0.2)


def wait_for(description: str, check: Callable[[], Any], timeout_s: float = 150, interval_s: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail with `description` and the last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {description}; last value: {last!r}")
