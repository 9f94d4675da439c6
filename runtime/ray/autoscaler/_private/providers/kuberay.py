"""Ray's `kuberay` provider: the autoscaler runs as the `autoscaler` sidecar of a RayCluster's head pod and
scales the cluster by editing the RayCluster; the operator creates and deletes the pods.

- The autoscaling config is derived from the RayCluster each round, as Ray's `AutoscalingConfigProducer`
  does (`autoscaling_config_from_raycluster`): the head group is `headgroup`, each worker group a node type
  whose resources come from the group's `resources`, its `rayStartParams` (`num-cpus`, `num-gpus`, `memory`,
  `resources`) or its container's limits; `minReplicas`/`maxReplicas` are min/max workers;
  `autoscalerOptions.idleTimeoutSeconds` (default 60) and `upscalingMode` (Conservative: 1, Default and
  Aggressive: 1000) set the idle timeout and the upscaling speed; a group's own `idleTimeoutSeconds` too.
- Instances are the cluster's pods (label `ray.io/cluster`), typed by `ray.io/group`, named by pod name (each
  pod's Ray registers with `RAY_CLOUD_INSTANCE_ID=<pod name>`); pods being deleted or listed in
  `workersToDelete` are gone already.
- Scale up: JSON-patch `/spec/workerGroupSpecs/<i>/replicas` to the group's workers plus the launch, capped at
  `maxReplicas`. Scale down: lower `replicas` and name the pods in `scaleStrategy.workersToDelete`, in one
  patch. While a group still has pods named there, nothing else is asked of it (Ray's rule), and once they are
  gone the list is cleared.
- A pod that cannot start (its image cannot be pulled, its container cannot be created) is reported as a failed
  launch; `replicas` above the pods there are is a launch in flight (`pending_launches`); one that the operator
  cannot create (a ResourceQuota) is reported from its event by the autoscaler's timeout.

The Kubernetes API is reached as Ray's client does: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
the pod's ServiceAccount token and CA, `ray.io/$KUBERAY_CRD_VER` (v1).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from decimal import Decimal
from typing import Any

from ray.autoscaler._private.providers import CloudInstance, LaunchError, NodeProvider

logger = logging.getLogger(__name__)

HEAD_GROUP_NAME = "headgroup"
LABEL_CLUSTER = "ray.io/cluster"
LABEL_GROUP = "ray.io/group"
LABEL_NODE_TYPE = "ray.io/node-type"
IN_CLUSTER_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
IN_CLUSTER_CA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
TOKEN_REFRESH_S = 60
REQUEST_TIMEOUT_S = 60
DEFAULT_IDLE_TIMEOUT_S = 60
UPSCALING_SPEED = {"Conservative": 1, "Default": 1000, "Aggressive": 1000}
# Container states after which a pod never runs Ray without someone changing its spec.
FAILED_WAITING_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                          "CreateContainerConfigError", "CreateContainerError")


class KubeApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API error {status}: {message}")
        self.status = status


# ---------------------------------------------------------------------------------------------- quantities
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_FACTORS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "n": Decimal("1e-9"),
            "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
            "P": 10**15, "E": 10**18}


def round_up_quantity(value: Any) -> int:
    """A Kubernetes quantity ("500m", "2Gi", 3) rounded up to an integer, as Ray's `_round_up_k8s_quantity`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.ceil(value)
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '500m', '2', '4Gi').")
    return math.ceil(Decimal(m.group(1)) * Decimal(_FACTORS.get(m.group(2) or "", 1)))


# ---------------------------------------------------------------------------------------------- config
def _group_resources(group: dict[str, Any], is_head: bool) -> dict[str, float]:
    name = HEAD_GROUP_NAME if is_head else group.get("groupName", "?")
    top = group.get("resources") or {}
    params = {str(k): v for k, v in (group.get("rayStartParams") or {}).items()}
    containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    k8s = containers[0].get("resources") or {}
    limits, requests = k8s.get("limits") or {}, k8s.get("requests") or {}
    out: dict[str, float] = {}
    if "CPU" in top:
        out["CPU"] = round_up_quantity(top["CPU"])
    elif "num-cpus" in params:
        out["CPU"] = int(float(params["num-cpus"]))
    elif "cpu" in limits:
        out["CPU"] = round_up_quantity(limits["cpu"])
    elif "cpu" in requests:
        out["CPU"] = round_up_quantity(requests["cpu"])
    else:
        raise ValueError(f"Autoscaler failed to detect `CPU` resources for group {name}.\nSet the `--num-cpus` "
                         "rayStartParam and/or the CPU resource limit for the Ray container.")
    if "GPU" in top:
        out["GPU"] = round_up_quantity(top["GPU"])
    elif "num-gpus" in params:
        out["GPU"] = int(float(params["num-gpus"]))
    else:
        for key, amount in list(limits.items()) + list(requests.items()):
            if key.endswith("gpu") and round_up_quantity(amount) > 0:
                out["GPU"] = round_up_quantity(amount)
                break
    if "memory" in top:
        out["memory"] = round_up_quantity(top["memory"])
    elif "memory" in params:
        out["memory"] = int(float(params["memory"]))
    elif "memory" in limits:
        out["memory"] = round_up_quantity(limits["memory"])
    elif "memory" in requests:
        out["memory"] = round_up_quantity(requests["memory"])
    custom: dict[str, float] = {}
    if top:
        custom = {k: round_up_quantity(v) for k, v in top.items() if k not in ("CPU", "GPU", "TPU", "memory")}
    elif "resources" in params:
        text = str(params["resources"]).strip()
        if text[:1] in ("'", '"') and text[-1:] == text[:1]:
            text = text[1:-1]
        try:
            custom = json.loads(text.replace("\\", ""))
        except ValueError as e:
            raise ValueError(f"Error reading the `resources` rayStartParam of group {name}: {e}; write it as "
                             "'\"{\\\"Custom1\\\": 1}\"'.") from e
        if not isinstance(custom, dict):
            raise ValueError(f"The `resources` rayStartParam of group {name} must be a JSON object.")
    if "TPU" not in custom:
        tpu = limits.get("google.com/tpu", requests.get("google.com/tpu"))
        if tpu is not None and round_up_quantity(tpu) > 0:
            out["TPU"] = round_up_quantity(tpu)
    out.update(custom)
    return {k: float(v) for k, v in out.items()}


def autoscaling_config_from_raycluster(cluster: dict[str, Any]) -> dict[str, Any]:
    """Ray's `_derive_autoscaling_config_from_ray_cr`: the autoscaling config the RayCluster describes."""
    spec = cluster.get("spec") or {}
    options = spec.get("autoscalerOptions") or {}
    types: dict[str, Any] = {HEAD_GROUP_NAME: {"min_workers": 0, "max_workers": 0, "node_config": {},
                                               "resources": _group_resources(spec.get("headGroupSpec") or {}, True)}}
    for group in spec.get("workerGroupSpecs") or []:
        hosts = int(group.get("numOfHosts", 1) or 1)
        node_type: dict[str, Any] = {
            "min_workers": int(group.get("minReplicas", 0) or 0) * hosts,
            "max_workers": int(group.get("maxReplicas", 2**31 - 1) if group.get("maxReplicas") is not None
                               else 2**31 - 1) * hosts,
            "node_config": {},
            "resources": _group_resources(group, False),
            "labels": {str(k): str(v) for k, v in (group.get("labels") or {}).items()},
        }
        if group.get("idleTimeoutSeconds") is not None:
            node_type["idle_timeout_s"] = float(group["idleTimeoutSeconds"])
        types[group["groupName"]] = node_type
    idle_s = options.get("idleTimeoutSeconds", DEFAULT_IDLE_TIMEOUT_S)
    return {
        "provider": {"type": "kuberay", "namespace": cluster["metadata"]["namespace"],
                     "disable_node_updaters": True, "disable_launch_config_check": True,
                     "foreground_node_launch": True, "worker_liveness_check": False},
        "cluster_name": cluster["metadata"]["name"],
        "head_node_type": HEAD_GROUP_NAME,
        "available_node_types": types,
        "max_workers": sum(t["max_workers"] for n, t in types.items() if n != HEAD_GROUP_NAME),
        "idle_timeout_minutes": float(idle_s) / 60.0,
        "upscaling_speed": UPSCALING_SPEED.get(options.get("upscalingMode"), 1000),
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [], "auth": {},
    }


# ---------------------------------------------------------------------------------------------- API client
class KubeHttpClient:
    """GET and JSON-patch of the namespace's pods and RayClusters, with the pod's ServiceAccount."""

    def __init__(self, namespace: str, host: str | None = None, crd_version: str | None = None) -> None:
        self.namespace = namespace
        if host is None:
            h = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default")
            p = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            host = f"https://[{h}]:{p}" if ":" in h else f"https://{h}:{p}"
        if host.startswith("http://"):
            raise ValueError("Kubernetes host must be accessed over HTTPS.")
        self.host = host if host.startswith("https://") else "https://" + host
        self.crd_version = crd_version or os.environ.get("KUBERAY_CRD_VER", "v1")
        self._token: str | None = None
        self._token_read = 0.0
        self._ssl: ssl.SSLContext | None = None

    def url(self, path: str) -> str:
        group = "/api/v1" if path.startswith("pods") else f"/apis/ray.io/{self.crd_version}"
        return f"{self.host}{group}/namespaces/{self.namespace}/{path}"

    def _headers(self) -> dict[str, str]:
        if self._token is None or time.monotonic() - self._token_read > TOKEN_REFRESH_S:
            try:
                with open(IN_CLUSTER_TOKEN_PATH) as f:
                    self._token = f.read().strip()
            except OSError:
                self._token = ""
            self._token_read = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ca = os.environ.get("RAY_KUBERAY_CA_CERT_PATH") or IN_CLUSTER_CA_PATH
            self._ssl = ssl.create_default_context(cafile=ca if os.path.exists(ca) else None)
        return self._ssl

    def _request(self, method: str, path: str, body: Any = None, content_type: str = "") -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=self._headers())
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S, context=self._context()) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            with_message = text
            try:
                with_message = json.loads(text).get("message", text)
            except ValueError:
                pass
            raise KubeApiError(e.code, f"{method} {path}: {with_message}") from e
        except (urllib.error.URLError, OSError) as e:
            raise KubeApiError(0, f"cannot reach the Kubernetes API at {self.host}: {e}") from e

    def get(self, path: str) -> dict[str, Any]:
        return self._request("GET", path)

    def patch(self, path: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
        return self._request("PATCH", path, patch, "application/json-patch+json")


# ---------------------------------------------------------------------------------------------- provider
def _pod_state(pod: dict[str, Any]) -> tuple[bool, str, str]:
    """(Ray's container is running, what it waits for, why it can never start)."""
    status = pod.get("status") or {}
    for cs in list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILED_WAITING_REASONS:
            return False, waiting["reason"], (f"pod {pod['metadata']['name']}: container {cs.get('name')} is "
                                              f"{waiting['reason']}: {waiting.get('message', '')}".strip())
    containers = status.get("containerStatuses") or []
    if containers and "running" in (containers[0].get("state") or {}):
        return True, "", ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return False, f"{cond.get('reason', 'Unschedulable')}: {cond.get('message', '')}".strip(": "), ""
    for cs in list(status.get("initContainerStatuses") or []) + containers:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return False, f"{cs.get('name')}: {waiting['reason']}", ""
        if "running" in (cs.get("state") or {}) and cs in (status.get("initContainerStatuses") or []):
            return False, f"init container {cs.get('name')} running", ""
    return False, status.get("phase", "Pending"), ""


class KubeRayNodeProvider(NodeProvider):
    def __init__(self, namespace: str, cluster_name: str, client: KubeHttpClient | None = None) -> None:
        self.namespace = namespace
        self.cluster_name = cluster_name
        self.client = client or KubeHttpClient(namespace)
        self._cluster: dict[str, Any] | None = None
        self._pods: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ reading
    def read_cluster(self) -> dict[str, Any]:
        self._cluster = self.client.get(f"rayclusters/{self.cluster_name}")
        return self._cluster

    def autoscaling_config(self) -> dict[str, Any]:
        """The config reader of `ray kuberay-autoscaler` (one GET of the RayCluster a round)."""
        return autoscaling_config_from_raycluster(self.read_cluster())

    def _groups(self) -> list[dict[str, Any]]:
        return list(((self._cluster or {}).get("spec") or {}).get("workerGroupSpecs") or [])

    def _to_delete(self) -> set[str]:
        return {name for g in self._groups() for name in (g.get("scaleStrategy") or {}).get("workersToDelete") or []}

    def non_terminated(self) -> dict[str, CloudInstance]:
        if self._cluster is None:
            self.read_cluster()
        selector = urllib.parse.quote(f"{LABEL_CLUSTER}={self.cluster_name}", safe="")
        self._pods = self.client.get(f"pods?labelSelector={selector}").get("items") or []
        to_delete = self._to_delete()
        out = {}
        for pod in self._pods:
            meta = pod["metadata"]
            labels = meta.get("labels") or {}
            kind = labels.get(LABEL_NODE_TYPE)
            if meta.get("deletionTimestamp") or kind not in ("head", "worker") or meta["name"] in to_delete:
                continue
            if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                continue  # the operator replaces it
            running, details, failed = _pod_state(pod)
            is_head = kind == "head"
            out[meta["name"]] = CloudInstance(
                meta["name"], HEAD_GROUP_NAME if is_head else labels.get(LABEL_GROUP, ""), is_head=is_head,
                running=running, ip=(pod.get("status") or {}).get("podIP", ""), details=details,
                failed="" if is_head else failed, stuck=details.startswith("Unschedulable"))
        return out

    def _live_workers(self) -> dict[str, int]:
        to_delete = self._to_delete()
        counts: dict[str, int] = defaultdict(int)
        for pod in self._pods:
            meta = pod["metadata"]
            labels = meta.get("labels") or {}
            if labels.get(LABEL_NODE_TYPE) == "worker" and not meta.get("deletionTimestamp") \
                    and meta["name"] not in to_delete:
                counts[labels.get(LABEL_GROUP, "")] += 1
        return counts

    def pending_launches(self) -> dict[str, int]:
        live = self._live_workers()
        out = {}
        for g in self._groups():
            hosts = int(g.get("numOfHosts", 1) or 1)
            wanted = max(int(g.get("replicas", 0) or 0), int(g.get("minReplicas", 0) or 0)) * hosts
            out[g["groupName"]] = max(0, wanted - live.get(g["groupName"], 0))
        return out

    # ------------------------------------------------------------------ scaling
    def _index(self, group_name: str) -> int:
        for i, g in enumerate(self._groups()):
            if g.get("groupName") == group_name:
                return i
        raise KeyError(group_name)

    def _pending_deletes(self, group: dict[str, Any]) -> list[str]:
        names = {p["metadata"]["name"] for p in self._pods}
        return [n for n in (group.get("scaleStrategy") or {}).get("workersToDelete") or [] if n in names]

    def _patch(self, ops: list[dict[str, Any]]) -> None:
        if ops:
            logger.info("Patching RayCluster %s/%s: %s", self.namespace, self.cluster_name, json.dumps(ops))
            self._cluster = self.client.patch(f"rayclusters/{self.cluster_name}", ops)

    def launch(self, node_type: str, count: int) -> None:
        try:
            self.read_cluster()
            self.non_terminated()
            index = self._index(node_type)
        except KeyError:
            raise LaunchError(node_type, count, f"the RayCluster has no worker group {node_type!r}") from None
        except KubeApiError as e:
            raise LaunchError(node_type, count, str(e)) from e
        group = self._groups()[index]
        if self._pending_deletes(group):
            raise LaunchError(node_type, count, "the group still has pods in workersToDelete; waiting for them to "
                              "be deleted before creating new workers.")
        hosts = int(group.get("numOfHosts", 1) or 1)
        current = max(int(group.get("replicas", 0) or 0), int(group.get("minReplicas", 0) or 0))
        current = max(current, self._live_workers().get(node_type, 0) // hosts)
        target = current + math.ceil(count / hosts)
        cap = group.get("maxReplicas")
        if cap is not None and target > int(cap):
            logger.warning("Autoscaler attempted to create more than maxReplicas pods of type %s.", node_type)
            target = int(cap)
        if target == int(group.get("replicas", 0) or 0):
            raise LaunchError(node_type, count, f"the group is at its maxReplicas ({cap}).")
        ops = [{"op": "test", "path": f"/spec/workerGroupSpecs/{index}/groupName", "value": node_type},
               {"op": "replace" if "replicas" in group else "add",
                "path": f"/spec/workerGroupSpecs/{index}/replicas", "value": target}]
        ops += self._clear_finished_deletes(skip=set())
        try:
            self._patch(ops)
        except KubeApiError as e:
            raise LaunchError(node_type, count, str(e)) from e

    def _clear_finished_deletes(self, skip: set[str]) -> list[dict[str, Any]]:
        ops = []
        for i, g in enumerate(self._groups()):
            listed = (g.get("scaleStrategy") or {}).get("workersToDelete") or []
            if listed and g["groupName"] not in skip and not self._pending_deletes(g):
                ops.append({"op": "replace", "path": f"/spec/workerGroupSpecs/{i}/scaleStrategy",
                            "value": {**(g.get("scaleStrategy") or {}), "workersToDelete": []}})
        return ops

    def terminate(self, instance_ids: list[str]) -> None:
        self.read_cluster()
        self.non_terminated()
        pods = {p["metadata"]["name"]: p for p in self._pods}
        by_group: dict[str, list[str]] = defaultdict(list)
        for name in instance_ids:
            pod = pods.get(name)
            if pod is None or (pod["metadata"].get("labels") or {}).get(LABEL_NODE_TYPE) != "worker":
                continue
            by_group[pod["metadata"]["labels"].get(LABEL_GROUP, "")].append(name)
        ops: list[dict[str, Any]] = []
        for group_name, names in by_group.items():
            try:
                index = self._index(group_name)
            except KeyError:
                continue
            group = self._groups()[index]
            if self._pending_deletes(group):
                raise RuntimeError(f"group {group_name} still has pods in workersToDelete; waiting for them to be "
                                   "deleted before deleting more.")
            hosts = int(group.get("numOfHosts", 1) or 1)
            live = self._live_workers().get(group_name, 0)
            current = max(int(group.get("replicas", 0) or 0), int(group.get("minReplicas", 0) or 0), live // hosts)
            target = max(0, current - math.ceil(len(names) / hosts))
            ops += [{"op": "test", "path": f"/spec/workerGroupSpecs/{index}/groupName", "value": group_name},
                    {"op": "replace" if "replicas" in group else "add",
                     "path": f"/spec/workerGroupSpecs/{index}/replicas", "value": target},
                    {"op": "replace" if "scaleStrategy" in group else "add",
                     "path": f"/spec/workerGroupSpecs/{index}/scaleStrategy",
                     "value": {**(group.get("scaleStrategy") or {}), "workersToDelete": names}}]
        ops += self._clear_finished_deletes(skip=set(by_group))
        self._patch(ops)

    def cancel_launches(self, node_type: str, count: int) -> None:
        """Launches that never became pods (the operator could not create them): lower `replicas` back."""
        try:
            self.read_cluster()
            self.non_terminated()
            index = self._index(node_type)
        except (KeyError, KubeApiError) as e:
            logger.warning("Could not take back %d launch(es) of %s: %s", count, node_type, e)
            return
        group = self._groups()[index]
        pending = self.pending_launches().get(node_type, 0)
        take = min(count, pending)
        if take <= 0:
            return
        target = max(int(group.get("minReplicas", 0) or 0), int(group.get("replicas", 0) or 0) - take)
        try:
            self._patch([{"op": "test", "path": f"/spec/workerGroupSpecs/{index}/groupName", "value": node_type},
                         {"op": "replace", "path": f"/spec/workerGroupSpecs/{index}/replicas", "value": target}])
        except KubeApiError as e:
            logger.warning("Could not take back %d launch(es) of %s: %s", count, node_type, e)
