"""Head and worker pods of a RayCluster, as KubeRay builds them from the group's pod template."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import auth, autoscaler, gcs_ft, names, quantity
from ray_operator.builders.ray_start import ray_start_command, ray_start_params


@dataclass(frozen=True)
class PodOptions:
    """Operator-wide switches (KubeRay reads them from the operator's environment)."""

    cluster_domain: str = c.CLUSTER_DOMAIN_DEFAULT
    enable_init_container_injection: bool = True
    enable_probes_injection: bool = True
    enable_login_shell: bool = False
    deterministic_head_pod_name: bool = False


def gcs_address(cluster: dict[str, Any], options: PodOptions = PodOptions()) -> str:
    """`<cluster>-head-svc.<ns>.svc.cluster.local:<port>` that workers and `ray health-check` dial."""
    head_params = cluster["spec"]["headGroupSpec"].get("rayStartParams") or {}
    port = str(head_params.get("port", c.DEFAULT_GCS_PORT))
    return f"{names.head_service_fqdn(cluster, options.cluster_domain)}:{port}"


def pod_labels(cluster: dict[str, Any], node_type: str, group_name: str, template_labels: dict) -> dict:
    """Template labels, KubeRay's defaults where the template sets none, and the three fixed labels."""
    name = names.cluster_name(cluster)
    labels = dict(template_labels or {})
    labels.setdefault(c.LABEL_IS_RAY_NODE, "yes")
    labels.setdefault(c.LABEL_IDENTIFIER, f"{name}-{node_type}")
    labels.setdefault(c.LABEL_APP_NAME, c.APP_NAME)
    labels.setdefault(c.LABEL_CREATED_BY, c.CREATED_BY)
    # Children of a RayJob keep pointing at it, so `kubectl get pods -l ray.io/originated-from-cr-name=x` works.
    for key in (c.LABEL_ORIGINATED_FROM_CR_NAME, c.LABEL_ORIGINATED_FROM_CRD):
        if key in cluster["metadata"].get("labels", {}):
            labels.setdefault(key, cluster["metadata"]["labels"][key])
    labels[c.LABEL_CLUSTER] = name
    labels[c.LABEL_NODE_TYPE] = node_type
    labels[c.LABEL_GROUP] = group_name
    return labels


def build_head_pod(cluster: dict[str, Any], options: PodOptions = PodOptions()) -> dict[str, Any]:
    """The head pod (with `generateName: <cluster>-head-`)."""
    group = cluster["spec"]["headGroupSpec"]
    pod = _base_pod(cluster, group, c.NODE_TYPE_HEAD, c.HEAD_GROUP_NAME, options)
    meta = pod["metadata"]
    if options.deterministic_head_pod_name:
        meta["name"] = f"{names.cluster_name(cluster)}-head"
    else:
        meta["generateName"] = names.head_pod_generate_name(cluster)
    if autoscaler.enabled(cluster):
        autoscaler.add_to_head_pod(pod, cluster)
    return pod


def build_worker_pod(
    cluster: dict[str, Any], group: dict[str, Any], options: PodOptions = PodOptions()
) -> dict[str, Any]:
    """One worker pod of `group` (with `generateName: <cluster>-<group>-worker-`)."""
    pod = _base_pod(cluster, group, c.NODE_TYPE_WORKER, group["groupName"], options)
    pod["metadata"]["generateName"] = names.worker_pod_generate_name(cluster, group["groupName"])
    if options.enable_init_container_injection:
        spec = pod["spec"]
        spec["initContainers"] = [wait_gcs_ready_container(cluster, spec["containers"][0], options)] + list(
            spec.get("initContainers") or []
        )
    return pod


def wait_gcs_ready_container(
    cluster: dict[str, Any], ray_container: dict[str, Any], options: PodOptions = PodOptions()
) -> dict[str, Any]:
    """Init container that blocks the worker until the head's GCS answers `ray health-check`."""
    address = gcs_address(cluster, options)
    script = (
        "SECONDS=0\n"
        "while true; do\n"
        "  if (( SECONDS <= 120 )); then\n"
        f"    if ray health-check --address {address} > /dev/null 2>&1; then\n"
        '      echo "GCS is ready."\n'
        "      break\n"
        "    fi\n"
        '    echo "$SECONDS seconds elapsed: Waiting for GCS to be ready."\n'
        "  else\n"
        f"    if ray health-check --address {address}; then\n"
        '      echo "GCS is ready. Any error messages above can be safely ignored."\n'
        "      break\n"
        "    fi\n"
        '    echo "$SECONDS seconds elapsed: Still waiting for GCS to be ready."\n'
        "  fi\n"
        "  sleep 5\n"
        "done\n"
    )
    container = {
        "name": c.WAIT_GCS_READY_INIT_CONTAINER,
        "image": ray_container.get("image"),
        "command": ["/bin/bash", "-lc", "--"],
        "args": [script],
        "env": copy.deepcopy(ray_container.get("env") or []),
        "volumeMounts": copy.deepcopy(ray_container.get("volumeMounts") or []),
        "resources": {
            "limits": {"cpu": "200m", "memory": "256Mi"},
            "requests": {"cpu": "200m", "memory": "256Mi"},
        },
    }
    if ray_container.get("imagePullPolicy"):
        container["imagePullPolicy"] = ray_container["imagePullPolicy"]
    if ray_container.get("securityContext"):
        container["securityContext"] = copy.deepcopy(ray_container["securityContext"])
    _set_env_default(container["env"], "FQ_RAY_IP", names.head_service_fqdn(cluster, options.cluster_domain))
    _set_env_default(container["env"], "RAY_IP", names.head_service_name(cluster))
    return container


def _base_pod(
    cluster: dict[str, Any], group: dict[str, Any], node_type: str, group_name: str, options: PodOptions
) -> dict[str, Any]:
    template = copy.deepcopy(group.get("template") or {})
    template_meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    labels = pod_labels(cluster, node_type, group_name, template_meta.get("labels") or {})
    for key, value in (group.get("labels") or {}).items():
        labels.setdefault(key, value)
    annotations = dict(template_meta.get("annotations") or {})
    metadata: dict[str, Any] = {
        "namespace": names.cluster_namespace(cluster),
        "labels": labels,
        "ownerReferences": [names.owner_reference(cluster)],
    }
    if annotations:
        metadata["annotations"] = annotations

    container = spec["containers"][0]
    params = ray_start_params(group, container, node_type, gcs_address(cluster, options))
    if node_type == c.NODE_TYPE_HEAD:
        gcs_ft.head_params(params, cluster)
        # KubeRay marks every head pod with whether GCS fault tolerance is on.
        annotations[gcs_ft.ANNOTATION_FT_ENABLED] = str(gcs_ft.enabled(cluster)).lower()
        metadata["annotations"] = annotations
    if node_type == c.NODE_TYPE_HEAD and autoscaler.enabled(cluster):
        params.setdefault("no-monitor", "true")  # the sidecar is the autoscaler
    command = ray_start_command(params, node_type)
    _set_command(container, command, annotations, options)
    _inject_env(cluster, container, node_type, command, options)
    _add_metrics_port(container)
    _add_shared_memory(spec, container, params)
    if options.enable_probes_injection:
        _inject_probes(cluster, container, node_type, params)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _set_command(container: dict, generated: str, annotations: dict, options: PodOptions) -> None:
    user_parts = list(container.get("command") or []) + list(container.get("args") or [])
    user_text = " ".join(user_parts)
    if "ray start" in user_text or annotations.get(c.ANNOTATION_OVERWRITE_CONTAINER_CMD) == "true":
        return  # the user runs `ray start` themselves; KUBERAY_GEN_RAY_START_CMD still tells them ours
    ulimit = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; "
    text = f"{ulimit}{user_text} && {generated}" if user_text else f"{ulimit}{generated}"
    container["command"] = ["/bin/bash", "-lc" if options.enable_login_shell else "-c", "--"]
    container["args"] = [text]


def _inject_env(cluster: dict, container: dict, node_type: str, command: str, options: PodOptions) -> None:
    env = container.setdefault("env", [])
    fqdn = names.head_service_fqdn(cluster, options.cluster_domain)
    head_port = str((cluster["spec"]["headGroupSpec"].get("rayStartParams") or {}).get("port", c.DEFAULT_GCS_PORT))
    _set_env_default(env, "RAY_CLUSTER_NAME", field_ref=f"metadata.labels['{c.LABEL_CLUSTER}']")
    _set_env_default(env, "RAY_CLUSTER_NAMESPACE", field_ref="metadata.namespace")
    _set_env_default(env, "RAY_CLOUD_INSTANCE_ID", field_ref="metadata.name")
    _set_env_default(env, "RAY_NODE_TYPE_NAME", field_ref=f"metadata.labels['{c.LABEL_GROUP}']")
    _set_env_default(env, "KUBERAY_GEN_RAY_START_CMD", command)
    _set_env_default(env, "RAY_PORT", head_port)
    if node_type == c.NODE_TYPE_HEAD:
        _set_env_default(env, "RAY_ADDRESS", f"127.0.0.1:{head_port}")
        crd = cluster["metadata"].get("labels", {}).get(c.LABEL_ORIGINATED_FROM_CRD, "RayCluster")
        _set_env_default(env, "RAY_USAGE_STATS_EXTRA_TAGS", f"kuberay_version={c.KUBERAY_VERSION};kuberay_crd={crd}")
    else:
        _set_env_default(env, "RAY_ADDRESS", f"{fqdn}:{head_port}")
        _set_env_default(env, "FQ_RAY_IP", fqdn)
        _set_env_default(env, "RAY_IP", names.head_service_name(cluster))
    _set_env_default(env, "RAY_USAGE_STATS_KUBERAY_IN_USE", "1")
    _set_env_default(env, "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "1")
    # The token from the cluster's Secret (or RAY_AUTH_MODE=disabled); the wait-gcs-ready init container
    # copies this env, so its `ray health-check` authenticates too.
    auth.add_auth_env(env, cluster, hint=node_type == c.NODE_TYPE_HEAD)
    gcs_ft.add_env(env, cluster, node_type)


def _set_env_default(env: list, name: str, value: str | None = None, field_ref: str | None = None) -> None:
    if any(item.get("name") == name for item in env):
        return
    if field_ref is not None:
        env.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_ref}}})
    else:
        env.append({"name": name, "value": value})


def _add_metrics_port(container: dict) -> None:
    ports = container.setdefault("ports", [])
    if not any(p.get("name") == c.METRICS_PORT_NAME or p.get("containerPort") == c.DEFAULT_METRICS_PORT for p in ports):
        ports.append({"name": c.METRICS_PORT_NAME, "containerPort": c.DEFAULT_METRICS_PORT, "protocol": "TCP"})


def _add_shared_memory(spec: dict, container: dict, params: dict) -> None:
    """An in-memory emptyDir on /dev/shm, sized by the memory limit, for Ray's object store."""
    if "plasma-directory" in params:
        return
    mounts = container.setdefault("volumeMounts", [])
    if any(m.get("mountPath") == c.SHARED_MEMORY_MOUNT_PATH for m in mounts):
        return
    volumes = spec.setdefault("volumes", [])
    empty_dir: dict[str, Any] = {"medium": "Memory"}
    memory_limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if memory_limit and quantity.parse(memory_limit) > 0:
        empty_dir["sizeLimit"] = memory_limit
    if not any(v.get("name") == c.SHARED_MEMORY_VOLUME_NAME for v in volumes):
        volumes.append({"name": c.SHARED_MEMORY_VOLUME_NAME, "emptyDir": empty_dir})
    mounts.append({"name": c.SHARED_MEMORY_VOLUME_NAME, "mountPath": c.SHARED_MEMORY_MOUNT_PATH})


def ray_version_at_least(ray_version: str | None, minimum: tuple[int, int]) -> bool:
    """True when `rayVersion` is at least `minimum` (unset or unparsable counts as new)."""
    if not ray_version:
        return True
    try:
        parts = tuple(int(p) for p in ray_version.split(".")[:2])
    except ValueError:
        return True
    return parts >= minimum


def _inject_probes(cluster: dict, container: dict, node_type: str, params: dict[str, str]) -> None:
    """KubeRay's liveness and readiness probes against the node agent (and the head's dashboard)."""
    head = node_type == c.NODE_TYPE_HEAD
    timeout = 5 if head else 2
    agent = int(params.get("dashboard-agent-listen-port", c.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT))
    dashboard = int(params.get("dashboard-port", c.DEFAULT_DASHBOARD_PORT))
    if ray_version_at_least(cluster["spec"].get("rayVersion"), (2, 53)):
        action: dict[str, Any] = {"httpGet": {"path": "/api/healthz", "port": agent}}
    else:
        check = f"wget -T {timeout} -q -O- http://localhost:{agent}/api/local_raylet_healthz | grep success"
        if head:
            check += (
                f" && wget -T {timeout} -q -O- http://localhost:{dashboard}/api/gcs_healthz"
                " | grep success"
            )
        action = {"exec": {"command": ["bash", "-c", check]}}
    if "livenessProbe" not in container:
        container["livenessProbe"] = {
            **copy.deepcopy(action),
            "initialDelaySeconds": 30,
            "periodSeconds": 5,
            "failureThreshold": 120,
            "timeoutSeconds": timeout,
            "successThreshold": 1,
        }
    if "readinessProbe" not in container:
        container["readinessProbe"] = {
            **copy.deepcopy(action),
            "initialDelaySeconds": 10,
            "periodSeconds": 5,
            "failureThreshold": 10,
            "timeoutSeconds": timeout,
            "successThreshold": 1,
        }
