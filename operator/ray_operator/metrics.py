"""The operator's Prometheus metrics, with KubeRay's `kuberay_*` names and labels (served on :8080/metrics)."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, start_http_server

from ray_operator import constants as c
from ray_operator.builders.timestamps import parse_time

# KubeRay's `--enable-metrics`: the kuberay_* gauges are only kept up to date when it is on.
ENABLED = False
_lock = threading.Lock()
# (namespace, name) -> {gauge: label values}, so a deleted object's series can be removed.
_series: dict[tuple[str, str, str], dict[Gauge, tuple[str, ...]]] = {}

CLUSTER_INFO = Gauge("kuberay_cluster_info", "Metadata of each RayCluster", ["name", "namespace", "uid", "owner_kind"])
CLUSTER_PROVISIONED = Gauge(
    "kuberay_cluster_condition_provisioned",
    "Whether each RayCluster's RayClusterProvisioned condition is true",
    ["name", "namespace", "uid", "condition"],
)
CLUSTER_PROVISIONED_DURATION = Gauge(
    "kuberay_cluster_provisioned_duration_seconds",
    "Seconds from a RayCluster's creation until all its pods were first ready",
    ["name", "namespace", "uid"],
)
JOB_INFO = Gauge("kuberay_job_info", "Metadata of each RayJob", ["name", "namespace", "uid"])
JOB_DEPLOYMENT_STATUS = Gauge(
    "kuberay_job_deployment_status",
    "The jobDeploymentStatus of each RayJob",
    ["name", "namespace", "uid", "deployment_status"],
)
JOB_EXECUTION_DURATION = Gauge(
    "kuberay_job_execution_duration_seconds",
    "Seconds from a RayJob's start until it finished",
    ["name", "namespace", "uid", "job_deployment_status", "retry_count"],
)


def _set(kind: str, obj: dict[str, Any], values: dict[Gauge, tuple[tuple[str, ...], float]]) -> None:
    if not ENABLED:
        return
    meta = obj["metadata"]
    key = (kind, meta.get("namespace", "default"), meta["name"])
    with _lock:
        old = _series.get(key, {})
        for gauge, labels in old.items():
            if gauge not in values or values[gauge][0] != labels:
                gauge.remove(*labels)
        for gauge, (labels, value) in values.items():
            gauge.labels(*labels).set(value)
        _series[key] = {gauge: labels for gauge, (labels, _) in values.items()}


def _forget(kind: str, namespace: str, name: str) -> None:
    with _lock:
        for gauge, labels in _series.pop((kind, namespace, name), {}).items():
            gauge.remove(*labels)


def observe_cluster(cluster: dict[str, Any]) -> None:
    meta = cluster["metadata"]
    base = (meta["name"], meta.get("namespace", "default"), meta.get("uid", ""))
    owner = (meta.get("labels") or {}).get(c.LABEL_ORIGINATED_FROM_CRD, "None")
    conditions = {x["type"]: x for x in (cluster.get("status") or {}).get("conditions") or []}
    provisioned = conditions.get(c.CONDITION_PROVISIONED, {})
    is_provisioned = provisioned.get("status") == "True"
    values: dict[Gauge, tuple[tuple[str, ...], float]] = {
        CLUSTER_INFO: ((*base, owner), 1),
        CLUSTER_PROVISIONED: ((*base, "true" if is_provisioned else "false"), 1),
    }
    created = parse_time(meta.get("creationTimestamp"))
    ready_at = parse_time(provisioned.get("lastTransitionTime")) if is_provisioned else None
    if created and ready_at:
        values[CLUSTER_PROVISIONED_DURATION] = (base, (ready_at - created).total_seconds())
    _set("RayCluster", cluster, values)


def forget_cluster(namespace: str, name: str) -> None:
    _forget("RayCluster", namespace, name)


def observe_job(rayjob: dict[str, Any]) -> None:
    meta = rayjob["metadata"]
    status = rayjob.get("status") or {}
    base = (meta["name"], meta.get("namespace", "default"), meta.get("uid", ""))
    deployment = status.get("jobDeploymentStatus", "")
    values: dict[Gauge, tuple[tuple[str, ...], float]] = {
        JOB_INFO: (base, 1),
        JOB_DEPLOYMENT_STATUS: ((*base, deployment), 1),
    }
    start, end = parse_time(status.get("startTime")), parse_time(status.get("endTime"))
    if start and end and deployment in (c.DEPLOYMENT_COMPLETE, c.DEPLOYMENT_FAILED):
        retries = str(max(0, (status.get("failed") or 0) + (status.get("succeeded") or 0) - 1))
        values[JOB_EXECUTION_DURATION] = ((*base, deployment, retries), (end - start).total_seconds())
    _set("RayJob", rayjob, values)


def forget_job(namespace: str, name: str) -> None:
    _forget("RayJob", namespace, name)


def serve(port: int, registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics on 0.0.0.0:`port` from a background thread."""
    start_http_server(port, registry=registry)
