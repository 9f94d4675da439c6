"""The in-tree autoscaler as the operator builds it (KubeRay's shape): the head pod's `autoscaler` sidecar and
the shared `ray-logs` volume, `no-monitor` on the head, `autoscalerOptions` applied, and the ServiceAccount,
Role and RoleBinding named after the cluster; without `enableInTreeAutoscaling`, none of it."""

from __future__ import annotations

from ray_operator.builders import autoscaler
from ray_operator.builders.pod import build_head_pod, build_worker_pod


def _env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def _autoscaling(raycluster, **options):
    raycluster["spec"]["enableInTreeAutoscaling"] = True
    if options:
        raycluster["spec"]["autoscalerOptions"] = options
    return raycluster


def test_head_pod_gets_the_sidecar_shared_logs_and_service_account(raycluster):
    pod = build_head_pod(_autoscaling(raycluster))
    ray_container, sidecar = pod["spec"]["containers"]
    assert sidecar["name"] == "autoscaler"
    assert sidecar["image"] == ray_container["image"] == "localhost/openray-head:dev"
    assert sidecar["imagePullPolicy"] == "IfNotPresent"
    assert sidecar["command"] == ["/bin/bash", "-lc", "--"]
    assert sidecar["args"] == ["ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
                               "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)"]
    assert sidecar["resources"] == {"limits": {"cpu": "500m", "memory": "512Mi"},
                                    "requests": {"cpu": "500m", "memory": "512Mi"}}
    env = _env(sidecar)
    assert env["RAY_CLUSTER_NAME"] == {"fieldRef": {"fieldPath": "metadata.labels['ray.io/cluster']"}}
    assert env["RAY_CLUSTER_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["RAY_HEAD_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["KUBERAY_CRD_VER"] == "v1" and env["RAY_PORT"] == "6379"
    assert "RAY_AUTH_TOKEN" in env  # it talks to the GCS with the cluster's token
    assert {"name": "ray-logs", "emptyDir": {}} in pod["spec"]["volumes"]
    for container in (ray_container, sidecar):
        assert {"name": "ray-logs", "mountPath": "/tmp/ray"} in container["volumeMounts"]
    assert pod["spec"]["serviceAccountName"] == "demo"
    assert " --no-monitor " in ray_container["args"][0]
    assert _env(ray_container)["KUBERAY_GEN_AUTOSCALER_START_CMD"] == sidecar["args"][0]


def test_autoscaler_options_shape_the_sidecar(raycluster):
    pod = build_head_pod(_autoscaling(
        raycluster, image="example/autoscaler:1", imagePullPolicy="Always",
        resources={"limits": {"cpu": "1", "memory": "1Gi"}}, env=[{"name": "AUTOSCALER_UPDATE_INTERVAL_S",
                                                                     "value": "1"}],
        envFrom=[{"configMapRef": {"name": "cm"}}], securityContext={"runAsNonRoot": True},
        volumeMounts=[{"name": "extra", "mountPath": "/extra"}], idleTimeoutSeconds=10, upscalingMode="Aggressive",
        version="v2"))
    ray_container, sidecar = pod["spec"]["containers"]
    assert (sidecar["image"], sidecar["imagePullPolicy"]) == ("example/autoscaler:1", "Always")
    assert sidecar["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert _env(sidecar)["AUTOSCALER_UPDATE_INTERVAL_S"] == "1"
    assert sidecar["envFrom"] == [{"configMapRef": {"name": "cm"}}]
    assert sidecar["securityContext"] == {"runAsNonRoot": True}
    assert {"name": "extra", "mountPath": "/extra"} in sidecar["volumeMounts"]
    assert _env(ray_container)["RAY_enable_autoscaler_v2"] == "true"


def test_a_service_account_named_in_the_head_template_is_used(raycluster):
    raycluster["spec"]["headGroupSpec"]["template"]["spec"]["serviceAccountName"] = "mine"
    cluster = _autoscaling(raycluster)
    assert build_head_pod(cluster)["spec"]["serviceAccountName"] == "mine"
    assert autoscaler.user_service_account(cluster) == "mine"
    assert autoscaler.build_role_binding(cluster)["subjects"] == [
        {"kind": "ServiceAccount", "name": "mine", "namespace": "ns1"}]


def test_rbac_objects_are_named_after_the_cluster_and_owned_by_it(raycluster):
    cluster = _autoscaling(raycluster)
    sa, role, binding = (autoscaler.build_service_account(cluster), autoscaler.build_role(cluster),
                         autoscaler.build_role_binding(cluster))
    for obj in (sa, role, binding):
        assert obj["metadata"]["name"] == "demo" and obj["metadata"]["namespace"] == "ns1"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert sa["kind"] == "ServiceAccount"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
        {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "demo"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo", "namespace": "ns1"}]


def test_without_autoscaling_nothing_is_added(raycluster):
    pod = build_head_pod(raycluster)
    assert [ct["name"] for ct in pod["spec"]["containers"]] == ["ray-head"]
    assert "serviceAccountName" not in pod["spec"]
    assert "--no-monitor" not in pod["spec"]["containers"][0]["args"][0]
    worker = build_worker_pod(_autoscaling(raycluster), raycluster["spec"]["workerGroupSpecs"][0])
    assert [ct["name"] for ct in worker["spec"]["containers"]] == ["ray-worker"]  # workers never get it
