"""GCS fault tolerance with Redis, as KubeRay configures it.

On when `spec.gcsFaultToleranceOptions` is set (KubeRay 1.3+) or the older annotation `ray.io/ft-enabled: "true"`
(then the user sets RAY_REDIS_ADDRESS in the head container). The head container gets RAY_REDIS_ADDRESS,
REDIS_PASSWORD (a value or a Secret's key), REDIS_USERNAME and RAY_external_storage_namespace (the options', the
`ray.io/external-storage-namespace` annotation, or the RayCluster's uid); workers get
RAY_gcs_rpc_server_reconnect_timeout_s=600 so their raylets wait for a new head. When such a cluster is deleted, the
finalizer `ray.io/gcs-ft-redis-cleanup-finalizer` holds it until its pods are gone and the `redis-cleanup` Job
(`python -c ... cleanup_redis_storage(...)` in the head's image) has deleted the cluster's keys from Redis.
"""

from __future__ import annotations

import copy
from typing import Any

from ray_operator import constants as c

ANNOTATION_FT_ENABLED = "ray.io/ft-enabled"
ANNOTATION_STORAGE_NAMESPACE = "ray.io/external-storage-namespace"
FINALIZER = "ray.io/gcs-ft-redis-cleanup-finalizer"
NODE_TYPE_REDIS_CLEANUP = "redis-cleanup"
WORKER_RECONNECT_TIMEOUT_S = "600"
CLEANUP_DEADLINE_S = 300

# What KubeRay's redis-cleanup Job runs (in the head image): Ray's own helper, with the head's env.
CLEANUP_SCRIPT = (
    "from ray._private.gcs_utils import cleanup_redis_storage; "
    "from urllib.parse import urlparse; import os; import sys; "
    "redis_address = os.getenv('RAY_REDIS_ADDRESS', '').split(',')[0]; "
    "redis_address = redis_address if '://' in redis_address else 'redis://' + redis_address; "
    "parsed = urlparse(redis_address); "
    "sys.exit(1) if not cleanup_redis_storage(host=parsed.hostname, port=parsed.port, "
    "password=os.getenv('REDIS_PASSWORD', parsed.password or ''), username=os.getenv('REDIS_USERNAME', "
    "parsed.username or ''), use_ssl=parsed.scheme=='rediss', "
    "storage_namespace=os.getenv('RAY_external_storage_namespace')) else None"
)


def options(cluster: dict[str, Any]) -> dict[str, Any] | None:
    return (cluster.get("spec") or {}).get("gcsFaultToleranceOptions")


def enabled(cluster: dict[str, Any]) -> bool:
    annotations = cluster.get("metadata", {}).get("annotations") or {}
    if options(cluster) is not None:
        return True
    return str(annotations.get(ANNOTATION_FT_ENABLED, "")).lower() == "true"


def storage_namespace(cluster: dict[str, Any]) -> str:
    opts = options(cluster) or {}
    annotations = cluster.get("metadata", {}).get("annotations") or {}
    return (opts.get("externalStorageNamespace") or annotations.get(ANNOTATION_STORAGE_NAMESPACE)
            or cluster["metadata"].get("uid", ""))


def _set(env: list[dict], name: str, value: str | None = None, value_from: dict | None = None) -> None:
    if any(item.get("name") == name for item in env):
        return
    env.append({"name": name, "valueFrom": copy.deepcopy(value_from)} if value_from else {"name": name, "value": value})


def add_env(env: list[dict], cluster: dict[str, Any], node_type: str) -> None:
    """The FT env of a head or worker container (nothing when FT is off)."""
    if not enabled(cluster):
        return
    if node_type != c.NODE_TYPE_HEAD:
        _set(env, "RAY_gcs_rpc_server_reconnect_timeout_s", WORKER_RECONNECT_TIMEOUT_S)
        return
    _set(env, "RAY_external_storage_namespace", storage_namespace(cluster))
    opts = options(cluster)
    if opts is None:
        return  # the annotation: the user's env names the Redis
    if opts.get("redisAddress"):
        _set(env, "RAY_REDIS_ADDRESS", opts["redisAddress"])
    for field, var in (("redisPassword", "REDIS_PASSWORD"), ("redisUsername", "REDIS_USERNAME")):
        source = opts.get(field) or {}
        if source.get("value"):
            _set(env, var, source["value"])
        elif source.get("valueFrom"):
            _set(env, var, value_from=source["valueFrom"])


def head_params(params: dict[str, str], cluster: dict[str, Any]) -> None:
    """`--redis-password=$REDIS_PASSWORD` on the head's `ray start` when the options carry a password."""
    opts = options(cluster) or {}
    if opts.get("redisPassword"):
        params.setdefault("redis-password", "$REDIS_PASSWORD")
    if opts.get("redisUsername"):
        params.setdefault("redis-username", "$REDIS_USERNAME")


def errors(cluster: dict[str, Any]) -> list[str]:
    """What is wrong with a cluster's FT settings (KubeRay's validation)."""
    out: list[str] = []
    annotations = cluster.get("metadata", {}).get("annotations") or {}
    opts = options(cluster)
    head = ((cluster.get("spec") or {}).get("headGroupSpec") or {})
    containers = ((head.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    head_env = {e.get("name") for e in containers[0].get("env") or []}
    params = head.get("rayStartParams") or {}
    if opts is not None:
        if str(annotations.get(ANNOTATION_FT_ENABLED, "")).lower() == "false":
            out.append(f"{ANNOTATION_FT_ENABLED} annotation is set to false but spec.gcsFaultToleranceOptions is "
                       "set; remove one of them")
        if annotations.get(ANNOTATION_STORAGE_NAMESPACE) and opts.get("externalStorageNamespace"):
            out.append(f"cannot set both the {ANNOTATION_STORAGE_NAMESPACE} annotation and "
                       "spec.gcsFaultToleranceOptions.externalStorageNamespace; use the latter")
        if not opts.get("redisAddress"):
            out.append("spec.gcsFaultToleranceOptions.redisAddress is required, e.g. redis:6379")
        for var in ("RAY_REDIS_ADDRESS", "REDIS_PASSWORD"):
            if var in head_env:
                out.append(f"cannot set the {var} env in the head container together with "
                           "spec.gcsFaultToleranceOptions; set it in the options instead")
        if "redis-password" in params:
            out.append("cannot set rayStartParams.redis-password together with spec.gcsFaultToleranceOptions; use "
                       "gcsFaultToleranceOptions.redisPassword")
        for field in ("redisPassword", "redisUsername"):
            source = opts.get(field) or {}
            if source and bool(source.get("value")) == bool(source.get("valueFrom")):
                out.append(f"spec.gcsFaultToleranceOptions.{field} needs exactly one of value or valueFrom")
    elif enabled(cluster) and "RAY_REDIS_ADDRESS" not in head_env:
        out.append(f"{ANNOTATION_FT_ENABLED} is true but the head container has no RAY_REDIS_ADDRESS env; set it "
                   "to the Redis address, or use spec.gcsFaultToleranceOptions.redisAddress")
    return out
