"""Deleting a RayCluster with GCS fault tolerance (KubeRay's redis cleanup).

While the cluster lives, it carries the finalizer `ray.io/gcs-ft-redis-cleanup-finalizer`. Once it is deleted:
its pods are deleted and waited for (a GCS still running would write the keys again), then the `redis-cleanup`
Job deletes the cluster's keys from Redis, and when that Job has finished (or after 300 s in all) the finalizer
goes and Kubernetes removes the RayCluster. Off with ENABLE_GCS_FT_REDIS_CLEANUP=false, as in KubeRay.
"""

from __future__ import annotations

import calendar
import logging
import time
from typing import Any

from ray_operator import constants as c
from ray_operator import events
from ray_operator.builders import gcs_ft, names, redis_cleanup
from ray_operator.handlers.common import Result, describe_api_error
from ray_operator.kube import Kube

log = logging.getLogger(__name__)
DELETION_TIMEOUT_S = 300


def ensure_finalizer(kube: Kube, cluster: dict[str, Any], enabled: bool) -> bool:
    """Adds the finalizer to a live FT cluster; True when it did."""
    finalizers = list(cluster["metadata"].get("finalizers") or [])
    if not enabled or not gcs_ft.enabled(cluster) or gcs_ft.FINALIZER in finalizers:
        return False
    kube.patch_custom(c.RAYCLUSTER_PLURAL, names.cluster_namespace(cluster), names.cluster_name(cluster),
                      {"metadata": {"finalizers": [*finalizers, gcs_ft.FINALIZER]}})
    return True


def _seconds_since(rfc3339: str) -> float:
    try:
        return time.time() - calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return 0.0


def _remove_finalizer(kube: Kube, cluster: dict[str, Any]) -> None:
    before = list(cluster["metadata"].get("finalizers") or [])
    after = [f for f in before if f != gcs_ft.FINALIZER]
    patch = [{"op": "test", "path": "/metadata/finalizers", "value": before},
             {"op": "replace", "path": "/metadata/finalizers", "value": after}]
    kube.patch_custom(c.RAYCLUSTER_PLURAL, names.cluster_namespace(cluster), names.cluster_name(cluster), patch)


def reconcile_deleted(kube: Kube, cluster: dict[str, Any], requeue_s: float) -> Result:
    """One step of the deletion of an FT cluster that still has the finalizer."""
    namespace, name = names.cluster_namespace(cluster), names.cluster_name(cluster)
    if _seconds_since(cluster["metadata"]["deletionTimestamp"]) > DELETION_TIMEOUT_S:
        kube.event(cluster, events.WARNING, events.REDIS_CLEANUP_TIMED_OUT,
                   f"The redis-cleanup of RayCluster {namespace}/{name} did not finish in {DELETION_TIMEOUT_S} s; "
                   f"removing the finalizer {gcs_ft.FINALIZER} anyway. Keys of namespace "
                   f"{gcs_ft.storage_namespace(cluster)!r} may remain in Redis.")
        _remove_finalizer(kube, cluster)
        return Result()
    pods = kube.list_pods(namespace, f"{c.LABEL_CLUSTER}={name}")
    pods = [p for p in pods if p["metadata"].get("labels", {}).get(c.LABEL_NODE_TYPE) != gcs_ft.NODE_TYPE_REDIS_CLEANUP]
    if pods:
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                kube.delete_pod(namespace, pod["metadata"]["name"])
        return Result(requeue_s)  # a GCS still running would write its tables again
    job_name = redis_cleanup.cleanup_job_name(cluster)
    job = kube.get_job(namespace, job_name)
    if job is None:
        try:
            kube.create_job(redis_cleanup.build_cleanup_job(cluster))
        except Exception as err:
            message = f"Failed to create the redis-cleanup Job {namespace}/{job_name}: {describe_api_error(err)}"
            terminating = "being terminated" in message  # the namespace goes: no Job can be made there any more
            if terminating:
                message += f"; removing the finalizer {gcs_ft.FINALIZER} without cleaning Redis"
            kube.event(cluster, events.WARNING, events.FAILED_TO_CREATE_REDIS_CLEANUP_JOB, message)
            if terminating:
                _remove_finalizer(kube, cluster)
                return Result()
            return Result(requeue_s, failed=True)
        kube.event(cluster, events.NORMAL, events.CREATED_REDIS_CLEANUP_JOB,
                   f"Created Redis cleanup Job {namespace}/{job_name}")
        return Result(requeue_s)
    status = job.get("status") or {}
    if status.get("succeeded"):
        _remove_finalizer(kube, cluster)
        return Result()
    if status.get("failed"):
        kube.event(cluster, events.WARNING, events.REDIS_CLEANUP_FAILED,
                   f"The redis-cleanup Job {namespace}/{job_name} failed; keys of namespace "
                   f"{gcs_ft.storage_namespace(cluster)!r} may remain in Redis (see its logs). Removing the finalizer.")
        _remove_finalizer(kube, cluster)
        return Result()
    return Result(requeue_s)
