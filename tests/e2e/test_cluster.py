"""The e2e harness itself: the cluster behaves like a real one for the operator and Ray pods.

A Ready node; a pod from a locally built image runs and its logs are readable; Services, cluster
DNS and the in-cluster API Service work from pods; exec and port-forward work (the Ray tests use
both); pods reach PyPI through this machine's network with its CA bundle (runtime envs pip-install
inside pods).
"""

from __future__ import annotations

import re
import subprocess
import textwrap
import urllib.request

import pytest

from .kube import Kube

# Built by tests/e2e/cluster/build-images from tests/e2e/cluster/images/probe/Dockerfile.
PROBE_IMAGE = "localhost/openray-e2e-probe:dev"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def pod_manifest(name: str, command: list[str], restart: str = "Never") -> dict:
    """A pod of the probe image running `command`, labelled app=<name>."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": PROBE_IMAGE, "imagePullPolicy": "Never", "command": command}],
        },
    }


def run_to_completion(kube: Kube, namespace: str, name: str, command: list[str], timeout: float = 180) -> str:
    """Runs a one-shot pod; returns its logs after it succeeded (fails with them otherwise)."""
    kube.apply(pod_manifest(name, command), namespace)

    def finished() -> bool:
        phase = kube.kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}")
        return phase in ("Succeeded", "Failed")

    kube.wait_for(f"pod {name} to finish", finished, timeout=timeout)
    logs = kube.kubectl("logs", name, "-n", namespace)
    phase = kube.kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}")
    assert phase == "Succeeded", f"pod {name} ended {phase}; logs:\n{logs}"
    return logs


def test_one_node_is_ready(kube: Kube) -> None:
    nodes = kube.kubectl_json("get", "nodes")["items"]
    assert nodes, "the cluster has no nodes"
    ready = {
        n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
        for n in nodes
    }
    assert "True" in ready.values(), f"no Ready node: {ready}"
    table = kube.kubectl("get", "nodes")
    assert re.search(r"\sReady\s", table), table


def test_pod_from_a_local_image_runs_and_logs(kube: Kube, namespace: str) -> None:
    logs = run_to_completion(kube, namespace, "probe", ["python", "/probe.py"])
    assert re.search(r"openray-e2e-probe python 3\.\d+\.\d+ requests \d+\.\d+", logs), logs


@pytest.fixture
def web_service(kube: Kube, namespace: str) -> str:
    """A pod serving a known page on 8080 behind a ClusterIP Service named `web`; returns its ClusterIP."""
    serve = "mkdir -p /srv && echo hello-from-openray-e2e > /srv/index.html && cd /srv && exec python -m http.server 8080"
    kube.apply(pod_manifest("web", ["sh", "-c", serve], restart="Always"), namespace)
    kube.apply(textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          selector: {app: web}
          ports: [{name: http, port: 8080, targetPort: 8080}]
        """), namespace)
    kube.kubectl("wait", "--for=condition=Ready", "pod/web", "-n", namespace, "--timeout=180s", timeout=200)
    return kube.kubectl("get", "service", "web", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}")


def test_service_and_cluster_dns_from_a_pod(kube: Kube, namespace: str, web_service: str) -> None:
    script = textwrap.dedent(f"""\
        import socket, urllib.request
        print("fqdn", socket.gethostbyname("web.{namespace}.svc.cluster.local"))
        print("short", socket.gethostbyname("web"))
        print("body", urllib.request.urlopen("http://web:8080/", timeout=20).read().decode().strip())
        api = socket.gethostbyname("kubernetes.default")
        socket.create_connection((api, 443), timeout=20).close()
        print("api", api, "connected")
        """)
    logs = run_to_completion(kube, namespace, "client", ["python", "-c", script])
    api_ip = kube.kubectl("get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}")
    assert f"fqdn {web_service}" in logs, logs
    assert f"short {web_service}" in logs, logs
    assert "body hello-from-openray-e2e" in logs, logs
    assert f"api {api_ip} connected" in logs, logs


def test_exec_and_port_forward(kube: Kube, namespace: str, web_service: str) -> None:
    out = kube.kubectl("exec", "web", "-n", namespace, "--", "python", "-c", "print('exec-ok')")
    assert out.strip() == "exec-ok"

    forward = subprocess.Popen(
        [kube.kubectl_path, "--kubeconfig", kube.kubeconfig, "port-forward", "-n", namespace,
         "svc/web", ":8080", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert forward.stdout is not None
        first = forward.stdout.readline()
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", first)
        assert match, f"unexpected port-forward output: {first!r}"
        body = urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/", timeout=30).read().decode()
        assert body.strip() == "hello-from-openray-e2e"
    finally:
        forward.terminate()
        forward.wait(timeout=30)


def test_pod_reaches_pypi_with_the_machines_ca_bundle(kube: Kube, namespace: str) -> None:
    logs = run_to_completion(
        kube, namespace, "pip",
        ["sh", "-c", "pip download --no-deps --no-cache-dir -d /tmp/dl six && ls /tmp/dl"],
        timeout=300,
    )
    assert re.search(r"six-[\d.]+-py.*\.whl", logs), logs
