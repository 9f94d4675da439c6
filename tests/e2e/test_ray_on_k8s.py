"""Operator + images + runtime together on the real cluster, driven with helm and kubectl as a user would.

The chart from helm/ installs the operator (its pod runs localhost/openray-operator:dev); the seed's
examples/rayjob-sample.yaml, unchanged, runs to SUCCEEDED with its pip runtime env installed in
the pods; a RayCluster's head and workers form one Ray cluster that scales with `replicas`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kube import Kube

REPO = Path(__file__).resolve().parents[2]

# Pods start slowly on a busy 2-core machine: generous per-test limits (pyproject default: 300 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


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

    # With token authentication on (the seed's file has no authOptions): the operator made the cluster's
    # Secret and handed its token to the Ray containers and to the submitter.
    cluster = status["rayClusterName"]
    assert len(_secret_token(kube, namespace, cluster)) == 64
    head = _pods(kube, namespace, cluster, "head")[0]
    submitter = kube.kubectl_json("get", "job", "rayjob-sample", "-n", namespace)
    for container in (head["spec"]["containers"][0], submitter["spec"]["template"]["spec"]["containers"][0]):
        env = {e["name"]: e for e in container.get("env") or []}
        assert env["RAY_AUTH_MODE"]["value"] == "token", env
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": cluster, "key": "auth_token"}, env

    table = kube.kubectl("get", "rayjob", "-n", namespace)
    assert re.search(r"JOB STATUS\s+DEPLOYMENT STATUS\s+RAY CLUSTER NAME", table), table
    assert re.search(r"rayjob-sample\s+SUCCEEDED\s+Complete\s+rayjob-sample-raycluster-", table), table
    clusters = kube.kubectl("get", "raycluster", "-n", namespace)
    assert re.search(r"DESIRED WORKERS\s+AVAILABLE WORKERS", clusters), clusters


def _pods(kube: Kube, namespace: str, cluster: str, node_type: str | None = None) -> list[dict]:
    selector = f"ray.io/cluster={cluster}" + (f",ray.io/node-type={node_type}" if node_type else "")
    pods = kube.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _ray_status_nodes(kube: Kube, namespace: str, head: str) -> int:
    """How many live nodes `ray status`, run in the head pod, lists under "Active:" and "Idle:" (Ray says
    "Healthy:" before 2.10): lines ` <count> <node type>`, the type being the pod's `ray.io/group` (KubeRay sets
    RAY_NODE_TYPE_NAME) or `node_<id>`."""
    out = kube.kubectl("exec", "-n", namespace, head, "--", "ray", "status", check=False, timeout=60)
    match = re.search(r"^(?:Active|Healthy):\n(.*?)^Pending:", out, re.MULTILINE | re.DOTALL)
    return sum(int(n) for n in re.findall(r"^ (\d+) \S+$", match.group(1), re.MULTILINE)) if match else 0


def _set_replicas(kube: Kube, namespace: str, replicas: int, workers_to_delete: list[str] | None = None) -> None:
    ops = [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": replicas}]
    if workers_to_delete is not None:
        ops.append({"op": "add", "path": "/spec/workerGroupSpecs/0/scaleStrategy",
                    "value": {"workersToDelete": workers_to_delete}})
    kube.kubectl("patch", "raycluster", "raycluster-sample", "-n", namespace, "--type=json", "-p", json.dumps(ops))


def test_raycluster_is_one_ray_cluster_that_scales(kube: Kube, operator: str, namespace: str) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
    kube.wait_for("the head pod", lambda: len(_pods(kube, namespace, "raycluster-sample", "head")) == 1, timeout=300)
    head = _pods(kube, namespace, "raycluster-sample", "head")[0]["metadata"]["name"]
    kube.kubectl("wait", "--for=condition=Ready", f"pod/{head}", "-n", namespace, "--timeout=300s", timeout=320)
    kube.wait_for("head + 1 worker in `ray status`", lambda: _ray_status_nodes(kube, namespace, head) == 2, timeout=300)

    _set_replicas(kube, namespace, 3)
    kube.wait_for("3 workers in `ray status`", lambda: _ray_status_nodes(kube, namespace, head) == 4, timeout=400)
    assert len(_pods(kube, namespace, "raycluster-sample", "worker")) == 3

    victim = _pods(kube, namespace, "raycluster-sample", "worker")[0]["metadata"]["name"]
    _set_replicas(kube, namespace, 2, workers_to_delete=[victim])
    kube.wait_for(f"{victim} to be deleted", lambda: victim not in {
        p["metadata"]["name"] for p in _pods(kube, namespace, "raycluster-sample", "worker")}, timeout=300)
    assert len(_pods(kube, namespace, "raycluster-sample", "worker")) == 2

    _set_replicas(kube, namespace, 1)
    kube.wait_for("1 worker pod", lambda: len(_pods(kube, namespace, "raycluster-sample", "worker")) == 1, timeout=300)
    kube.wait_for("head + 1 worker in `ray status`", lambda: _ray_status_nodes(kube, namespace, head) == 2, timeout=300)
    table = kube.kubectl("get", "raycluster", "-n", namespace)
    assert re.search(r"raycluster-sample\s+1\s+1\s", table), table

    kube.kubectl("delete", "raycluster", "raycluster-sample", "-n", namespace, "--wait=true", timeout=300)
    kube.wait_for("the cluster's pods and services to go", lambda: not _pods(kube, namespace, "raycluster-sample")
                  and not kube.kubectl_json("get", "services", "-n", namespace)["items"], timeout=300)


def _secret_token(kube: Kube, namespace: str, name: str) -> str:
    """What a user runs to read the cluster's token (the command the dashboard's 401 quotes)."""
    encoded = kube.kubectl("get", "secret", name, "-n", namespace, "-o", "jsonpath={.data.auth_token}")
    return base64.b64decode(encoded).decode()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_dashboard_through_port_forward_requires_the_token(kube: Kube, operator: str, namespace: str) -> None:
    """Secure by default: raycluster-sample has no authOptions, yet its dashboard wants the token that the
    operator put in the Secret `raycluster-sample`; through a real `kubectl port-forward`, as a user would."""
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
    kube.wait_for("the head pod", lambda: len(_pods(kube, namespace, "raycluster-sample", "head")) == 1, timeout=300)
    head = _pods(kube, namespace, "raycluster-sample", "head")[0]["metadata"]["name"]
    kube.kubectl("wait", "--for=condition=Ready", f"pod/{head}", "-n", namespace, "--timeout=300s", timeout=320)
    secret = kube.kubectl_json("get", "secret", "raycluster-sample", "-n", namespace)
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("RayCluster", "raycluster-sample"), owner
    token = _secret_token(kube, namespace, "raycluster-sample")
    assert len(token) == 64
    forward = subprocess.Popen(
        [kube.kubectl_path, "--kubeconfig", kube.kubeconfig, "port-forward", "-n", namespace,
         "svc/raycluster-sample-head-svc", ":8265", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert forward.stdout is not None
        first = forward.stdout.readline()
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", first)
        assert match, f"unexpected port-forward output: {first!r}"
        base = f"http://127.0.0.1:{match.group(1)}"
        status, body = _get(f"{base}/api/jobs/")
        assert status == 401, (status, body)
        assert body.startswith("Unauthorized: Missing authentication token"), body
        assert f"kubectl get secret raycluster-sample -n {namespace}" in body, body  # how to read the token
        status, body = _get(f"{base}/api/jobs/", {"Authorization": "Bearer " + "0" * 64})
        assert status == 403 and body.startswith("Forbidden: Invalid authentication token"), (status, body)
        assert _get(f"{base}/api/gcs_healthz") == (200, "success")  # what probes call stays open
        status, body = _get(f"{base}/api/jobs/", {"Authorization": f"Bearer {token}"})
        assert status == 200 and isinstance(json.loads(body), list), (status, body)
        status, body = _get(f"{base}/api/version", {"X-Ray-Authorization": f"Bearer {token}"})
        assert status == 200 and "ray_version" in json.loads(body), (status, body)
        head_ip = kube.kubectl_json("get", "pod", head, "-n", namespace)["status"]["podIP"]
        _browse_dashboard(base, token, head_ip)
    finally:
        forward.terminate()
        forward.wait(timeout=30)


RAY_CLIENT_SCRIPT = """
import sys, ray
ray.init(sys.argv[1], namespace="from-laptop")
print("job", ray.get_runtime_context().get_job_id())

@ray.remote
def hello(x):
    print("hello from a pod", x)
    return x + 1

@ray.remote
class Keeper:
    def __init__(self):
        self.items = []
    def add(self, item):
        self.items.append(len(item))
        return sum(self.items)

print("task", ray.get(hello.remote(41)))
k = Keeper.options(name="keeper").remote()
blob = ray.put(b"x" * (8 << 20))
print("actor", ray.get(k.add.remote(blob)))
print("back", len(ray.get(blob)))
print("nodes", len([n for n in ray.nodes() if n["Alive"]]))
ray.shutdown()
"""


def test_ray_client_through_port_forward(kube: Kube, operator: str, namespace: str, tmp_path: Path) -> None:
    """A laptop's habit: `kubectl port-forward svc/<cluster>-head-svc 10001:10001`, then
    `ray.init("ray://localhost:10001")` with the cluster's token; the head pod's `ray start` runs the client
    server on the service's `client` port."""
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-sample.yaml"))
    kube.wait_for("the head pod", lambda: len(_pods(kube, namespace, "raycluster-sample", "head")) == 1, timeout=300)
    head = _pods(kube, namespace, "raycluster-sample", "head")[0]["metadata"]["name"]
    kube.kubectl("wait", "--for=condition=Ready", f"pod/{head}", "-n", namespace, "--timeout=300s", timeout=320)
    service = kube.kubectl_json("get", "service", "raycluster-sample-head-svc", "-n", namespace)
    assert {"name": "client", "port": 10001} in [
        {"name": p["name"], "port": p["port"]} for p in service["spec"]["ports"]], service["spec"]["ports"]
    token = _secret_token(kube, namespace, "raycluster-sample")
    forward = subprocess.Popen(
        [kube.kubectl_path, "--kubeconfig", kube.kubeconfig, "port-forward", "-n", namespace,
         "svc/raycluster-sample-head-svc", ":10001", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert forward.stdout is not None
        first = forward.stdout.readline()
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", first)
        assert match, f"unexpected port-forward output: {first!r}"
        script = tmp_path / "laptop.py"
        script.write_text(RAY_CLIENT_SCRIPT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        proc = subprocess.run([sys.executable, str(script), f"ray://127.0.0.1:{match.group(1)}"],
                              capture_output=True, text=True, timeout=300, env={**env, "RAY_AUTH_TOKEN": token},
                              cwd=tmp_path)
        out = proc.stdout
        assert proc.returncode == 0, out + proc.stderr
        assert "task 42" in out and "hello from a pod 41" in out, out
        assert f"actor {8 << 20}" in out and f"back {8 << 20}" in out, out
        assert "nodes 2" in out, out
        wrong = subprocess.run([sys.executable, str(script), f"ray://127.0.0.1:{match.group(1)}"],
                               capture_output=True, text=True, timeout=120, env={**env, "RAY_AUTH_TOKEN": "0" * 64},
                               cwd=tmp_path)
        assert wrong.returncode != 0 and "refused this process's authentication token" in wrong.stderr, wrong.stderr
    finally:
        forward.terminate()
        forward.wait(timeout=30)
        kube.kubectl("delete", "raycluster", "raycluster-sample", "-n", namespace, "--wait=true", check=False,
                     timeout=300)


def _browse_dashboard(base: str, token: str, head_ip: str) -> None:
    """The web UI through the port-forward, in Debian's Chromium: sign in with the Secret's token, open each
    view by its navigation link, see the head pod's node; no JavaScript errors. The image installed the
    package with pip, so this also shows that the UI's files ship in it."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or subprocess.run(
        [str(REPO / "tests/integration/tools/install-browser")], check=True, capture_output=True, text=True).stdout.strip()
    shots = REPO / "tests/.artifacts/dashboard-ui-e2e"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/#/cluster")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_selector("[data-testid=nodes-alive]", timeout=60000)
            for name, ready in (("jobs", "[data-testid=jobs-table]"), ("actors", "[data-testid=actor-table]"),
                                ("metrics", "[data-testid=charts]"), ("logs", "[data-testid=log-nodes] a"),
                                ("cluster", "[data-testid=node-table]"), ("overview", "[data-testid=nodes-alive]")):
                page.click(f"nav a[data-nav={name}]")
                page.wait_for_selector(ready, timeout=60000)
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                if name == "cluster":
                    page.locator("[data-testid=node-table] tbody tr", has_text=head_ip).wait_for(timeout=60000)
            assert int(page.inner_text("[data-testid=nodes-alive]")) >= 1
            assert not errors, errors
        finally:
            browser.close()


def test_gpu_worker_stays_pending_and_status_says_why(kube: Kube, operator: str, namespace: str) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-gpu.yaml"))
    kube.wait_for("the gpu worker pod", lambda: len(_pods(kube, namespace, "raycluster-gpu", "worker")) == 1, timeout=300)

    def unschedulable() -> bool:
        pod = _pods(kube, namespace, "raycluster-gpu", "worker")[0]
        conditions = {c["type"]: c for c in pod["status"].get("conditions", [])}
        scheduled = conditions.get("PodScheduled", {})
        return pod["status"]["phase"] == "Pending" and scheduled.get("reason") == "Unschedulable"

    kube.wait_for("the scheduler to mark the gpu worker Unschedulable", unschedulable, timeout=120)

    def provisioning_message() -> str:
        status = kube.kubectl_json("get", "raycluster", "raycluster-gpu", "-n", namespace).get("status") or {}
        return next((c.get("message", "") for c in status.get("conditions", [])
                     if c["type"] == "RayClusterProvisioned"), "")

    kube.wait_for("RayClusterProvisioned to quote the scheduler",
                  lambda: "Insufficient nvidia.com/gpu" in provisioning_message(), timeout=180)
