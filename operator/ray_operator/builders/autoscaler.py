"""The in-tree autoscaler of a RayCluster (`enableInTreeAutoscaling: true`), as KubeRay builds it: the
`autoscaler` sidecar of the head pod, the `ray-logs` volume the two containers share (so the autoscaler's
monitor.log sits beside the head's logs), and the ServiceAccount, Role and RoleBinding named after the cluster
that let the sidecar read and scale its RayCluster. Pure: dicts in, dicts out.

`autoscalerOptions` (image, imagePullPolicy, resources, env, envFrom, volumeMounts, securityContext, command,
args) shape the sidecar; `idleTimeoutSeconds` and `upscalingMode` are read by the autoscaler itself from the
RayCluster; `version` sets `RAY_enable_autoscaler_v2` on the head, as KubeRay does.
"""

from __future__ import annotations

import copy
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import auth, names

AUTOSCALER_CONTAINER = "autoscaler"
RAY_LOGS_VOLUME = "ray-logs"
RAY_LOGS_MOUNT_PATH = "/tmp/ray"
DEFAULT_RESOURCES = {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "500m", "memory": "512Mi"}}
AUTOSCALER_ARGS = ("ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
                   "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)")


def enabled(cluster: dict[str, Any]) -> bool:
    return bool((cluster.get("spec") or {}).get("enableInTreeAutoscaling"))


def options(cluster: dict[str, Any]) -> dict[str, Any]:
    return (cluster.get("spec") or {}).get("autoscalerOptions") or {}


def rbac_name(cluster: dict[str, Any]) -> str:
    """KubeRay names the ServiceAccount, Role and RoleBinding after the cluster (CheckName-shortened)."""
    return names.check_generate_name(names.cluster_name(cluster))


def head_service_account(cluster: dict[str, Any]) -> str:
    """The head template's ServiceAccount if it names one (the user's), else `<cluster>` (the operator's)."""
    spec = ((cluster["spec"].get("headGroupSpec") or {}).get("template") or {}).get("spec") or {}
    return spec.get("serviceAccountName") or rbac_name(cluster)


def user_service_account(cluster: dict[str, Any]) -> str | None:
    """The ServiceAccount the user named in the head template (the operator does not make that one)."""
    spec = ((cluster["spec"].get("headGroupSpec") or {}).get("template") or {}).get("spec") or {}
    return spec.get("serviceAccountName") or None


def _metadata(cluster: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": rbac_name(cluster),
        "namespace": names.cluster_namespace(cluster),
        "labels": {c.LABEL_CLUSTER: names.cluster_name(cluster), c.LABEL_CREATED_BY: c.CREATED_BY},
        "ownerReferences": [names.owner_reference(cluster)],
    }


def build_service_account(cluster: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(cluster)}


def build_role(cluster: dict[str, Any]) -> dict[str, Any]:
    """What the autoscaler needs: its pods (read, patch, resize) and its RayCluster (read, patch)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(cluster),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
            {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
        ],
    }


def build_role_binding(cluster: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(cluster),
        "subjects": [{"kind": "ServiceAccount", "name": head_service_account(cluster),
                      "namespace": names.cluster_namespace(cluster)}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": rbac_name(cluster)},
    }


def build_autoscaler_container(cluster: dict[str, Any], ray_container: dict[str, Any]) -> dict[str, Any]:
    """The `autoscaler` sidecar (KubeRay's BuildAutoscalerContainer), with `autoscalerOptions` applied."""
    opts = options(cluster)
    env = [
        {"name": "RAY_CLUSTER_NAME", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{c.LABEL_CLUSTER}']"}}},
        {"name": "RAY_CLUSTER_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "RAY_HEAD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KUBERAY_CRD_VER", "value": c.VERSION},
    ]
    # The head's GCS port, so the sidecar dials the right one (`rayStartParams.port`).
    for item in ray_container.get("env") or []:
        if item.get("name") == "RAY_PORT":
            env.append(copy.deepcopy(item))
    for item in opts.get("env") or []:
        env = [e for e in env if e.get("name") != item.get("name")] + [copy.deepcopy(item)]
    auth.add_auth_env(env, cluster)  # the sidecar talks to the GCS, which wants the cluster's token
    container: dict[str, Any] = {
        "name": AUTOSCALER_CONTAINER,
        "image": opts.get("image") or ray_container.get("image"),
        "imagePullPolicy": opts.get("imagePullPolicy") or "IfNotPresent",
        "command": list(opts.get("command") or ["/bin/bash", "-lc", "--"]),
        "args": list(opts.get("args") or [AUTOSCALER_ARGS]),
        "env": env,
        "resources": copy.deepcopy(opts.get("resources") or DEFAULT_RESOURCES),
        "volumeMounts": [{"name": RAY_LOGS_VOLUME, "mountPath": RAY_LOGS_MOUNT_PATH}]
        + copy.deepcopy(list(opts.get("volumeMounts") or [])),
    }
    if opts.get("envFrom"):
        container["envFrom"] = copy.deepcopy(opts["envFrom"])
    if opts.get("securityContext"):
        container["securityContext"] = copy.deepcopy(opts["securityContext"])
    return container


def start_command_env(cluster: dict[str, Any]) -> dict[str, str]:
    """`KUBERAY_GEN_AUTOSCALER_START_CMD` (what the sidecar runs, for users who write their own) and, when
    `autoscalerOptions.version` is set, `RAY_enable_autoscaler_v2`."""
    env = {"KUBERAY_GEN_AUTOSCALER_START_CMD": AUTOSCALER_ARGS}
    version = options(cluster).get("version")
    if version in ("v1", "v2"):
        env["RAY_enable_autoscaler_v2"] = "true" if version == "v2" else "false"
    return env


def add_to_head_pod(pod: dict[str, Any], cluster: dict[str, Any]) -> None:
    """The head pod with the autoscaler: the sidecar, the shared `ray-logs` emptyDir mounted at /tmp/ray in both
    containers, and the ServiceAccount."""
    spec = pod["spec"]
    ray_container = spec["containers"][0]
    volumes = spec.setdefault("volumes", [])
    if not any(v.get("name") == RAY_LOGS_VOLUME for v in volumes):
        volumes.append({"name": RAY_LOGS_VOLUME, "emptyDir": {}})
    mounts = ray_container.setdefault("volumeMounts", [])
    if not any(m.get("mountPath") == RAY_LOGS_MOUNT_PATH for m in mounts):
        mounts.append({"name": RAY_LOGS_VOLUME, "mountPath": RAY_LOGS_MOUNT_PATH})
    env = ray_container.setdefault("env", [])
    present = {e.get("name") for e in env}
    env.extend({"name": k, "value": v} for k, v in start_command_env(cluster).items() if k not in present)
    if not any(ct.get("name") == AUTOSCALER_CONTAINER for ct in spec["containers"]):
        spec["containers"].append(build_autoscaler_container(cluster, ray_container))
    spec["serviceAccountName"] = head_service_account(cluster)
