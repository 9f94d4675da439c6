"""The kuberay and local node providers against fakes of what they drive (the Kubernetes API, SSH): the
autoscaling config a RayCluster describes, scale up by `replicas`, scale down by `replicas` plus
`workersToDelete`, pods as instances, and the local provider's hosts."""

from __future__ import annotations

import copy
import json

import pytest
from ray.autoscaler._private.config import parse
from ray.autoscaler._private.providers import LaunchError
from ray.autoscaler._private.providers.kuberay import (
    KubeApiError,
    KubeRayNodeProvider,
    autoscaling_config_from_raycluster,
    round_up_quantity,
)
from ray.autoscaler._private.providers.local import LocalNodeProvider


def raycluster(**spec_extra) -> dict:
    return {
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {"name": "rc", "namespace": "ns"},
        "spec": {
            "enableInTreeAutoscaling": True,
            "headGroupSpec": {"rayStartParams": {"num-cpus": "0"}, "template": {"spec": {"containers": [
                {"name": "ray-head", "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}},
            "workerGroupSpecs": [
                {"groupName": "cpu", "replicas": 0, "minReplicas": 0, "maxReplicas": 3, "rayStartParams": {},
                 "template": {"spec": {"containers": [{"name": "ray-worker", "resources": {
                     "limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "250m"}}}]}}},
                {"groupName": "gpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 2,
                 "rayStartParams": {"resources": '"{\\"Custom\\": 2}"'},
                 "template": {"spec": {"containers": [{"name": "ray-worker", "resources": {
                     "limits": {"cpu": "4", "nvidia.com/gpu": "1"}}}]}}},
            ],
            **spec_extra,
        },
    }


def pod(name: str, group: str, kind: str = "worker", phase: str = "Running", running: bool = True,
        waiting: str = "", deleting: bool = False) -> dict:
    state = {"running": {}} if running else {"waiting": {"reason": waiting or "ContainerCreating"}}
    meta = {"name": name, "labels": {"ray.io/cluster": "rc", "ray.io/group": group, "ray.io/node-type": kind}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "podIP": "10.0.0.9",
                                         "containerStatuses": [{"name": "ray-worker", "state": state}]}}


class FakeKube:
    """GET and JSON-patch (test/add/replace) of one RayCluster and its pods."""

    def __init__(self, cluster: dict, pods: list[dict]) -> None:
        self.cluster = copy.deepcopy(cluster)
        self.pods = pods
        self.patches: list[list[dict]] = []

    def get(self, path: str) -> dict:
        if path.startswith("rayclusters/"):
            return copy.deepcopy(self.cluster)
        assert path == "pods?labelSelector=ray.io%2Fcluster%3Drc", path
        return {"items": copy.deepcopy(self.pods)}

    def patch(self, path: str, ops: list[dict]) -> dict:
        self.patches.append(ops)
        doc = copy.deepcopy(self.cluster)
        for op in ops:
            parts = op["path"].strip("/").split("/")
            parent = doc
            for p in parts[:-1]:
                parent = parent[int(p)] if isinstance(parent, list) else parent[p]
            last = int(parts[-1]) if isinstance(parent, list) else parts[-1]
            if op["op"] == "test":
                if parent[last] != op["value"]:
                    raise KubeApiError(422, "test failed")
            else:
                parent[last] = op["value"]
        self.cluster = doc
        return copy.deepcopy(doc)


# ---------------------------------------------------------------------------------------------- kuberay config
def test_the_autoscaling_config_is_derived_from_the_raycluster_as_rays():
    cfg = autoscaling_config_from_raycluster(raycluster(autoscalerOptions={"idleTimeoutSeconds": 30,
                                                                           "upscalingMode": "Conservative"}))
    assert cfg["provider"]["type"] == "kuberay" and cfg["provider"]["namespace"] == "ns"
    assert cfg["cluster_name"] == "rc" and cfg["head_node_type"] == "headgroup"
    types = cfg["available_node_types"]
    assert types["headgroup"]["resources"] == {"CPU": 0.0, "memory": 2.0 * 2**30}
    assert types["cpu"] == {"min_workers": 0, "max_workers": 3, "node_config": {}, "labels": {},
                            "resources": {"CPU": 1.0, "memory": 2.0**30}}  # 500m rounds up
    assert types["gpu"]["resources"] == {"CPU": 4.0, "GPU": 1.0, "Custom": 2.0}
    assert (types["gpu"]["min_workers"], types["gpu"]["max_workers"]) == (1, 2)
    assert cfg["max_workers"] == 5
    assert cfg["idle_timeout_minutes"] == 0.5 and cfg["upscaling_speed"] == 1
    parsed = parse(cfg)
    assert parsed.idle_timeout_s == 30 and parsed.worker_types.keys() == {"cpu", "gpu"}


def test_config_defaults_group_overrides_and_errors():
    rc = raycluster()
    rc["spec"]["workerGroupSpecs"][0]["idleTimeoutSeconds"] = 5
    rc["spec"]["workerGroupSpecs"][0]["resources"] = {"CPU": "2", "Special": "3"}
    rc["spec"]["workerGroupSpecs"][0]["labels"] = {"zone": "a"}
    cfg = autoscaling_config_from_raycluster(rc)
    assert cfg["idle_timeout_minutes"] == 1.0 and cfg["upscaling_speed"] == 1000  # Ray's defaults
    cpu = cfg["available_node_types"]["cpu"]
    assert cpu["idle_timeout_s"] == 5.0 and cpu["labels"] == {"zone": "a"}
    assert cpu["resources"] == {"CPU": 2.0, "memory": 2.0**30, "Special": 3.0}
    del rc["spec"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0]["resources"]
    with pytest.raises(ValueError, match="failed to detect `CPU` resources for group gpu"):
        autoscaling_config_from_raycluster(rc)


@pytest.mark.parametrize("text, value", [("500m", 1), ("2", 2), ("1Gi", 2**30), ("1.5", 2), (3, 3), ("100M", 10**8)])
def test_quantities_round_up(text, value):
    assert round_up_quantity(text) == value


# ---------------------------------------------------------------------------------------------- kuberay provider
def provider(cluster=None, pods=None) -> tuple[KubeRayNodeProvider, FakeKube]:
    kube = FakeKube(cluster or raycluster(), pods if pods is not None else [
        pod("rc-head-x", "headgroup", "head"), pod("rc-gpu-worker-a", "gpu")])
    return KubeRayNodeProvider("ns", "rc", kube), kube


def test_pods_are_instances_typed_by_group():
    kuberay, kube = provider(pods=[
        pod("rc-head-x", "headgroup", "head"), pod("w1", "cpu"), pod("w2", "cpu", running=False, phase="Pending"),
        pod("w3", "cpu", deleting=True), pod("w4", "cpu", phase="Failed", running=False),
        pod("w5", "cpu", running=False, waiting="ImagePullBackOff")])
    kube.cluster["spec"]["workerGroupSpecs"][0]["scaleStrategy"] = {"workersToDelete": ["w1"]}
    instances = kuberay.non_terminated()
    assert set(instances) == {"rc-head-x", "w2", "w5"}  # w1 is to be deleted, w3 is going, w4 is replaced
    assert instances["rc-head-x"].is_head and instances["rc-head-x"].node_type == "headgroup"
    assert not instances["w2"].running and "ray-worker: ContainerCreating" in instances["w2"].details
    assert "ImagePullBackOff" in instances["w5"].failed


def test_scale_up_patches_replicas_within_max_replicas():
    kuberay, kube = provider()
    kuberay.non_terminated()
    kuberay.launch("cpu", 2)
    assert kube.cluster["spec"]["workerGroupSpecs"][0]["replicas"] == 2
    assert kube.patches[-1][0] == {"op": "test", "path": "/spec/workerGroupSpecs/0/groupName", "value": "cpu"}
    assert kuberay.pending_launches() == {"cpu": 2, "gpu": 0}
    kuberay.launch("cpu", 5)  # capped at maxReplicas
    assert kube.cluster["spec"]["workerGroupSpecs"][0]["replicas"] == 3
    with pytest.raises(LaunchError, match="maxReplicas"):
        kuberay.launch("cpu", 1)
    with pytest.raises(LaunchError, match="no worker group 'tpu'"):
        kuberay.launch("tpu", 1)


def test_scale_down_lowers_replicas_and_names_the_pods_then_clears_the_list():
    kuberay, kube = provider(pods=[pod("rc-head-x", "headgroup", "head"), pod("c1", "cpu"), pod("c2", "cpu"),
                                   pod("g1", "gpu")])
    kube.cluster["spec"]["workerGroupSpecs"][0]["replicas"] = 2
    kuberay.terminate(["c2", "rc-head-x"])  # the head is never deleted
    group = kube.cluster["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == 1 and group["scaleStrategy"]["workersToDelete"] == ["c2"]
    assert "c2" not in kuberay.non_terminated()
    # While c2 still exists nothing more is asked of its group.
    with pytest.raises(RuntimeError, match="still has pods in workersToDelete"):
        kuberay.terminate(["c1"])
    with pytest.raises(LaunchError, match="waiting for them to be deleted"):
        kuberay.launch("cpu", 1)
    kube.pods = [p for p in kube.pods if p["metadata"]["name"] != "c2"]  # the operator deleted it
    kuberay.launch("cpu", 1)
    group = kube.cluster["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == 2 and group["scaleStrategy"]["workersToDelete"] == []


def test_launches_that_never_became_pods_are_taken_back():
    kuberay, kube = provider()
    kuberay.non_terminated()
    kuberay.launch("cpu", 2)
    kuberay.cancel_launches("cpu", 2)
    assert kube.cluster["spec"]["workerGroupSpecs"][0]["replicas"] == 0


def test_api_errors_become_failed_launches():
    kuberay, kube = provider()

    def refuse(path, ops):
        raise KubeApiError(403, 'rayclusters.ray.io "rc" is forbidden')

    kube.patch = refuse
    with pytest.raises(LaunchError, match="forbidden"):
        kuberay.launch("cpu", 1)


# ---------------------------------------------------------------------------------------------- local provider
def local_config(tmp_path, **extra) -> dict:
    return {"cluster_name": "onprem", "provider": {"type": "local", "head_ip": "10.0.0.1",
                                                  "worker_ips": ["10.0.0.2", "10.0.0.3"],
                                                  "state_path": str(tmp_path / "state.json"),
                                                  "launch_grace_s": 0},
            "auth": {"ssh_user": "ray"}, "head_node_type": "local.cluster.node", "max_workers": 2,
            "available_node_types": {"local.cluster.node": {"resources": {}, "min_workers": 0, "max_workers": 2}},
            **extra}


@pytest.fixture(autouse=True)
def _no_token_unless_asked(request, monkeypatch):
    """The local provider copies the cluster's token to a worker first; these tests show it only where asked."""
    if "local_provider" in request.node.name:
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")


class Runner:
    def __init__(self, rc: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.rc = rc

    def __call__(self, host, script, stdin=None):
        self.calls.append((host, script) if stdin is None else (host, script, stdin))
        return self.rc, "ok" if self.rc == 0 else "ray: command not found"


def _wait(predicate):
    import time

    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_local_provider_starts_ray_on_free_hosts_and_remembers_them(tmp_path):
    runner = Runner()
    cfg = parse(local_config(tmp_path))
    local = LocalNodeProvider(cfg, "10.0.0.1:6379", runner)
    assert set(local.non_terminated()) == {"10.0.0.1"}
    local.launch("local.cluster.node", 1)
    _wait(lambda: local.non_terminated()["10.0.0.2"].running)
    host, script = runner.calls[0]
    assert host == "10.0.0.2"
    assert "export RAY_HEAD_IP=10.0.0.1;" in script and "RAY_CLOUD_INSTANCE_ID=10.0.0.2" in script
    assert script.endswith("ray stop; ray start --address=$RAY_HEAD_IP:6379")
    assert json.loads((tmp_path / "state.json").read_text()) == {
        "10.0.0.2": {"node_type": "local.cluster.node", "state": "running"}}
    again = LocalNodeProvider(cfg, "10.0.0.1:6379", runner)  # a restarted autoscaler
    assert set(again.non_terminated()) == {"10.0.0.1", "10.0.0.2"}
    with pytest.raises(LaunchError, match="only 1 of the 2 hosts"):
        again.launch("local.cluster.node", 2)
    again.terminate(["10.0.0.2"])
    _wait(lambda: len(runner.calls) == 2)
    assert runner.calls[1] == ("10.0.0.2", "ray stop")
    assert set(again.non_terminated()) == {"10.0.0.1"}


def test_local_provider_reports_failed_start_commands(tmp_path):
    runner = Runner(rc=127)
    local = LocalNodeProvider(parse(local_config(tmp_path, worker_start_ray_commands=["ray start --address=x"])),
                              "10.0.0.1:6379", runner)
    local.launch("local.cluster.node", 1)
    _wait(lambda: local.poll_errors.__self__._errors)
    (error,) = local.poll_errors()
    assert "exit code 127" in error.reason and "command not found" in error.reason
    assert error.instance_ids == ["10.0.0.2"]
    assert set(local.non_terminated()) == {"10.0.0.1"}


def test_local_provider_adopts_hosts_where_ray_up_started_ray(tmp_path):
    runner = Runner()
    local = LocalNodeProvider(parse(local_config(tmp_path)), "10.0.0.1:6379", runner)
    local.observe_ray_nodes([("10.0.0.3", ""), ("10.9.9.9", "")])  # a node not in worker_ips stays unmanaged
    instances = local.non_terminated()
    assert set(instances) == {"10.0.0.1", "10.0.0.3"} and instances["10.0.0.3"].running
    local.launch("local.cluster.node", 1)  # the free host only: nothing is started twice
    _wait(lambda: local.non_terminated()["10.0.0.2"].running)
    assert [host for host, _ in runner.calls] == ["10.0.0.2"]


def test_local_provider_leaves_ray_up_its_min_workers_and_launches_the_others_at_once(tmp_path):
    raw = local_config(tmp_path)
    del raw["provider"]["launch_grace_s"]
    raw["available_node_types"]["local.cluster.node"]["min_workers"] = 1
    runner = Runner()
    local = LocalNodeProvider(parse(raw), "10.0.0.1:6379", runner)
    # `ray up` is starting 10.0.0.2 (the first min_workers hosts): an instance on its way, started by no one here.
    pending = local.non_terminated()["10.0.0.2"]
    assert pending.details == "`ray up` is starting Ray there" and not pending.is_head
    local.launch("local.cluster.node", 1)  # demand: the other host, at once
    _wait(lambda: "10.0.0.3" in local.non_terminated() and local.non_terminated()["10.0.0.3"].running)
    assert [c[0] for c in runner.calls] == ["10.0.0.3"]
    with pytest.raises(LaunchError, match="only 0 of the 2 hosts"):
        local.launch("local.cluster.node", 1)
    local.observe_ray_nodes([("10.0.0.2", ""), ("10.0.0.3", "local.cluster.node")])  # ray up's worker registered
    assert local.non_terminated()["10.0.0.2"].details == ""
    assert [c[0] for c in runner.calls] == ["10.0.0.3"]


def test_local_provider_copies_the_token_before_starting_ray(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t0ken-for-workers")
    from ray._common import auth

    auth.reset_cache()
    try:
        runner = Runner()
        local = LocalNodeProvider(parse(local_config(tmp_path)), "10.0.0.1:6379", runner)
        local.launch("local.cluster.node", 1)
        _wait(lambda: len(runner.calls) == 2)
    finally:
        auth.reset_cache()
    host, script, stdin = runner.calls[0]
    assert host == "10.0.0.2" and stdin == b"t0ken-for-workers"
    assert "~/.ray/auth_token" in script and "t0ken" not in script
    assert "ray start --address" in runner.calls[1][1]


def test_local_provider_forgets_hosts_of_an_earlier_head(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({
        "10.0.0.2": {"node_type": "local.cluster.node", "state": "running"},
        "10.0.0.3": {"node_type": "local.cluster.node", "state": "running"}}))
    local = LocalNodeProvider(parse(local_config(tmp_path)), "10.0.0.1:6379", Runner())
    local.observe_ray_nodes([("10.0.0.3", "local.cluster.node")])  # only .3's Ray belongs to this head
    assert set(local.non_terminated()) == {"10.0.0.1", "10.0.0.3"}
    assert json.loads((tmp_path / "state.json").read_text()) == {
        "10.0.0.3": {"node_type": "local.cluster.node", "state": "running"}}
    local.observe_ray_nodes([])  # later rounds: a node that goes is the autoscaler's business, not forgotten here
    assert set(local.non_terminated()) == {"10.0.0.1", "10.0.0.3"}
