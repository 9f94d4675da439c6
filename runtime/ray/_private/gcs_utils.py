"""`cleanup_redis_storage`: what KubeRay's redis-cleanup Job calls (Ray's name and arguments)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def cleanup_redis_storage(host: str, port: int, password: str, use_ssl: bool, storage_namespace: str,
                          username: str | None = None) -> bool:
    """Delete every GCS table of `storage_namespace` (the `RAY<namespace>@*` hashes) from a Redis.

    True when the keys are gone (or there were none); raises with what to fix on a wrong address or password.
    """
    import redis

    from ray.gcs.redis_store import table_key

    if not storage_namespace:
        raise ValueError("storage_namespace is empty: refusing to delete every cluster's keys. Set "
                         "RAY_external_storage_namespace to the cluster's namespace.")
    client = redis.Redis(host=host, port=int(port), password=password or None, username=username or None,
                         ssl=use_ssl, socket_connect_timeout=10)
    try:
        keys = list(client.scan_iter(match=table_key(storage_namespace, "*")))
        deleted = client.delete(*keys) if keys else 0
        logger.info("Deleted %d GCS tables of namespace %r from Redis at %s:%s", deleted, storage_namespace, host,
                    port)
        print(f"Deleted {deleted} GCS tables of namespace {storage_namespace!r} from Redis at {host}:{port}.")
        return True
    finally:
        client.close()
