"""KubeRay's `redis-cleanup` batch Job for a deleted GCS-FT RayCluster (see builders/gcs_ft.py)."""

from __future__ import annotations

from typing import Any

from ray_operator import constants as c
from ray_operator.builders import names
from ray_operator.builders.gcs_ft import CLEANUP_DEADLINE_S, CLEANUP_SCRIPT, NODE_TYPE_REDIS_CLEANUP
from ray_operator.builders.pod import build_head_pod


def cleanup_job_name(cluster: dict[str, Any]) -> str:
    return names.trim_job_name(f"{names.cluster_name(cluster)}-redis-cleanup")


def build_cleanup_job(cluster: dict[str, Any]) -> dict[str, Any]:
    """KubeRay's `redis-cleanup` batch Job: the head's image and env, deleting the cluster's Redis keys."""
    head = build_head_pod(cluster)
    spec = head["spec"]
    container = spec["containers"][0]
    for key in ("livenessProbe", "readinessProbe", "ports", "lifecycle"):
        container.pop(key, None)
    container["command"] = ["/bin/bash", "-lc", "--"]
    container["args"] = [f'python -c "{CLEANUP_SCRIPT}"']
    container["resources"] = {"limits": {"cpu": "200m", "memory": "256Mi"},
                              "requests": {"cpu": "200m", "memory": "256Mi"}}
    spec["containers"] = [container]
    spec.pop("initContainers", None)
    spec["restartPolicy"] = "Never"
    labels = dict(head["metadata"]["labels"])
    labels[c.LABEL_NODE_TYPE] = NODE_TYPE_REDIS_CLEANUP
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": cleanup_job_name(cluster), "namespace": names.cluster_namespace(cluster),
                     "labels": labels, "annotations": dict(head["metadata"].get("annotations") or {})},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": CLEANUP_DEADLINE_S,
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }
