"""The in-tree autoscaler on the real cluster: examples/raycluster-autoscaler.yaml (`enableInTreeAutoscaling`,
a cpu group of 0..3 workers, a gpu group whose pod cannot be scheduled here). A driver in the head pod needs
three workers' CPUs at once: the `autoscaler` sidecar raises the group's `replicas`, three worker pods come up,
every task's result comes back; once idle past `idleTimeoutSeconds` the workers are drained and named in
`workersToDelete`, and the group returns to 0 pods. `kubectl get raycluster` and `ray status` in the head pod
show it happening; the pending GPU pod blocks nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from .kube import Kube
from .test_ray_on_k8s import operator  # noqa: F401 (the module-scoped fixture: the chart installed)

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "raycluster-autoscaler"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DRIVER = r"""
import json, time, ray
ray.init()

# An actor holds its CPU while it lives (a task blocked in ray.get would lend its CPU out): three of them need
# three workers' CPUs at once.
@ray.remote(num_cpus=1)
class Worker:
    def square(self, i):
        return i * i, ray.get_runtime_context().get_node_id()

workers = [Worker.remote() for _ in range(3)]
print("RESULTS " + json.dumps(ray.get([w.square.remote(i) for i, w in enumerate(workers)])), flush=True)
time.sleep(30)  # the actors keep their workers busy meanwhile (the pods pass their readiness probes)
"""

def _pods(kube: Kube, namespace: str, group: str | None = None, node_type: str | None = None) -> list[dict]:
    selector = f"ray.io/cluster={CLUSTER}" + (f",ray.io/group={group}" if group else "") + (
        f",ray.io/node-type={node_type}" if node_type else "")
    pods = kube.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _ray_status(kube: Kube, namespace: str, head: str) -> str:
    return kube.kubectl("exec", "-n", namespace, head, "-c", "ray-head", "--", "ray", "status", check=False,
                        timeout=60)


def _workers_table(kube: Kube, namespace: str) -> tuple[int, int] | None:
    """(DESIRED WORKERS, AVAILABLE WORKERS) of `kubectl get raycluster`."""
    table = kube.kubectl("get", "raycluster", CLUSTER, "-n", namespace, check=False)
    match = re.search(rf"^{CLUSTER}\s+(\d+)\s+(\d+)\s", table, re.M)
    return (int(match.group(1)), int(match.group(2))) if match else None


def test_autoscaler_scales_a_worker_group_from_zero_to_three_and_back(kube: Kube, operator: str,  # noqa: F811
                                                                      namespace: str) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "raycluster-autoscaler.yaml"))
    kube.wait_for("the head pod", lambda: len(_pods(kube, namespace, node_type="head")) == 1, timeout=300)
    head_pod = _pods(kube, namespace, node_type="head")[0]
    head = head_pod["metadata"]["name"]
    assert [c["name"] for c in head_pod["spec"]["containers"]] == ["ray-head", "autoscaler"]
    assert head_pod["spec"]["serviceAccountName"] == CLUSTER
    for kind in ("serviceaccount", "role", "rolebinding"):
        assert kube.kubectl("get", kind, CLUSTER, "-n", namespace, "-o", "name").strip()
    kube.kubectl("wait", "--for=condition=Ready", f"pod/{head}", "-n", namespace, "--timeout=400s", timeout=420)

    # The gpu group's pod cannot be scheduled on this machine: it stays Pending.
    kube.wait_for("the gpu pod to be Unschedulable", lambda: any(
        c.get("reason") == "Unschedulable" for p in _pods(kube, namespace, "gpu-group")
        for c in p["status"].get("conditions", [])), timeout=180)
    assert _pods(kube, namespace, "cpu-group") == []

    # A driver in the head pod needs three workers' CPUs at once.
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
    driver = subprocess.Popen([kube.kubectl_path, "exec", "-n", namespace, head, "-c", "ray-head", "--", "python",
                               "-c", DRIVER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen_desired, seen_available, status_during = 0, 0, ""
    try:
        deadline = time.monotonic() + 900
        while driver.poll() is None and time.monotonic() < deadline:
            table = _workers_table(kube, namespace)
            if table:
                seen_desired, seen_available = max(seen_desired, table[0]), max(seen_available, table[1])
            if " 3 cpu-group" in (text := _ray_status(kube, namespace, head)):
                status_during = text
            time.sleep(3)
        output = driver.communicate(timeout=60)[0]
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, output
    results = json.loads(re.search(r"^RESULTS (.*)$", output, re.M).group(1))
    assert sorted(r[0] for r in results) == [0, 1, 4], output  # every task's result
    assert len({r[1] for r in results}) == 3, output  # on three nodes at once
    # The driver has exited: its actors are gone and the workers are idle.
    cluster = kube.kubectl_json("get", "raycluster", CLUSTER, "-n", namespace)
    assert cluster["spec"]["workerGroupSpecs"][0]["replicas"] == 3
    if not status_during:  # the status was polled between rounds: read it once more while the workers idle
        status_during = _ray_status(kube, namespace, head)
    assert "Autoscaler status" in status_during and " 3 cpu-group" in status_during, status_during
    assert "gpu-group" in status_during and "insufficient nvidia.com/gpu" in status_during, status_during

    # Idle past idleTimeoutSeconds (15 s): drained, named in workersToDelete, deleted; replicas back to 0.
    def scaled_down() -> bool:
        nonlocal seen_desired, seen_available
        table = _workers_table(kube, namespace)
        if table:
            seen_desired, seen_available = max(seen_desired, table[0]), max(seen_available, table[1])
        return _pods(kube, namespace, "cpu-group") == []

    kube.wait_for("the cpu group to return to 0 pods", scaled_down, timeout=400, interval=3)
    # `kubectl get raycluster`: the 3 cpu workers (and the pending gpu one) were desired, the 3 became available.
    assert seen_desired >= 4 and seen_available >= 3, (seen_desired, seen_available)
    cluster = kube.kubectl_json("get", "raycluster", CLUSTER, "-n", namespace)
    assert cluster["spec"]["workerGroupSpecs"][0]["replicas"] == 0
    kube.wait_for("`kubectl get raycluster` to show no available cpu workers",
                  lambda: (_workers_table(kube, namespace) or (9, 9))[1] == 0, timeout=120)
    log = kube.kubectl("exec", "-n", namespace, head, "-c", "ray-head", "--", "cat",
                       "/tmp/ray/session_latest/logs/monitor.log")
    assert re.search(r"Adding \d node\(s\) of type cpu-group", log), log
    assert log.count("Removing 1 node of type cpu-group (idle for") == 3, log
    text = _ray_status(kube, namespace, head)
    assert not re.search(r"^ \d cpu-group$", text, re.M), text
    assert len(_pods(kube, namespace, "gpu-group")) == 1  # still there, still Pending, never in the way
    sidecar_log = kube.kubectl("logs", "-n", namespace, head, "-c", "autoscaler")
    assert "Starting the autoscaler" in sidecar_log or "Monitor: started" in sidecar_log, sidecar_log
