"""Object names KubeRay derives from a RayCluster (so `kubectl get svc <cluster>-head-svc` works as with KubeRay)."""

from __future__ import annotations

import random
from typing import Any

from ray_operator import constants as c


def cluster_name(cluster: dict[str, Any]) -> str:
    return cluster["metadata"]["name"]


def cluster_namespace(cluster: dict[str, Any]) -> str:
    return cluster["metadata"].get("namespace") or "default"


def head_service_name(cluster: dict[str, Any]) -> str:
    """`<cluster>-head-svc`, unless `headGroupSpec.headService.metadata.name` overrides it."""
    custom = (cluster.get("spec", {}).get("headGroupSpec", {}).get("headService") or {}).get("metadata", {})
    return custom.get("name") or f"{cluster_name(cluster)}-head-svc"


def head_service_fqdn(cluster: dict[str, Any], cluster_domain: str = c.CLUSTER_DOMAIN_DEFAULT) -> str:
    return f"{head_service_name(cluster)}.{cluster_namespace(cluster)}.svc.{cluster_domain}"


def check_generate_name(prefix: str) -> str:
    """KubeRay's CheckName: keep the last 50 characters, and never start with a digit or punctuation."""
    if len(prefix) > c.MAX_GENERATE_NAME_PREFIX_LENGTH:
        prefix = prefix[len(prefix) - c.MAX_GENERATE_NAME_PREFIX_LENGTH :]
    if prefix and not prefix[0].isalpha():
        prefix = "r" + prefix[1:]
    return prefix


def head_pod_generate_name(cluster: dict[str, Any]) -> str:
    return check_generate_name(f"{cluster_name(cluster)}-head-")


def worker_pod_generate_name(cluster: dict[str, Any], group_name: str) -> str:
    return check_generate_name(f"{cluster_name(cluster)}-{group_name}-worker-")


def random_suffix(length: int = 5, rng: random.Random | None = None) -> str:
    """Five characters as apimachinery's `rand.String` draws them (no vowels, no look-alikes)."""
    rng = rng or random.SystemRandom()
    return "".join(rng.choice(c.RANDOM_SUFFIX_ALPHABET) for _ in range(length))


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to `owner`, so deleting it deletes what we made for it."""
    return {
        "apiVersion": owner.get("apiVersion", f"{c.GROUP}/{c.VERSION}"),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def trim_job_name(name: str, limit: int = 63) -> str:
    """KubeRay's TrimJobName: a batch Job name of at most 63 characters."""
    return name[:limit].rstrip("-")
