"""The GCS tables in an external Redis (Ray's GCS fault tolerance).

Each table is one Redis hash named as Ray names it, `RAY<namespace>@<table>`, so that a restarted GCS
given the same `RAY_external_storage_namespace` finds every table again, and so that clusters sharing one
Redis keep apart. The client is redis-py's asyncio client (the `redis` package): it reconnects by itself,
speaks RESP2/3 and AUTH, and is what Ray's own Python tools use; a hand-written RESP client would have to
re-do reconnects and pipelining for no gain.
"""

from __future__ import annotations

import asyncio
import logging

from ray.gcs.storage import StoreClient

logger = logging.getLogger(__name__)

# A write that cannot reach Redis for this long fails (the GCS then exits and is restarted).
REDIS_RETRY_S = 60


def parse_redis_address(address: str) -> tuple[str, int, bool]:
    """`host:port`, `redis://host:port` or `rediss://host:port` -> (host, port, tls)."""
    raw = address.strip()
    tls = raw.startswith("rediss://")
    for scheme in ("redis://", "rediss://"):
        if raw.startswith(scheme):
            raw = raw[len(scheme):]
    raw = raw.split("/", 1)[0].rsplit("@", 1)[-1]
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"Invalid Redis address {address!r}: expected 'host:port' (for example 127.0.0.1:6379), as given "
            "to `ray start --redis-address` or RAY_REDIS_ADDRESS.")
    return host.strip("[]"), int(port), tls


def table_key(namespace: str, table: str) -> str:
    return f"RAY{namespace}@{table}"


class RedisStoreClient(StoreClient):
    def __init__(self, address: str, password: str = "", username: str = "", namespace: str = "default"):
        import redis.asyncio as aioredis

        host, port, tls = parse_redis_address(address)
        self.address = f"{host}:{port}"
        self.namespace = namespace
        self._redis = aioredis.Redis(host=host, port=port, password=password or None, username=username or None,
                                     ssl=tls, socket_connect_timeout=5, health_check_interval=10)

    async def connect(self, timeout_s: float = REDIS_RETRY_S) -> None:
        """Wait until Redis answers PING; a wrong password fails at once with what to fix."""
        import redis.exceptions as rex

        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                await self._redis.ping()
                return
            except (rex.AuthenticationError, rex.AuthenticationWrongNumberOfArgsError, rex.ResponseError) as e:
                raise ConnectionError(
                    f"Redis at {self.address} refused the GCS: {e}. Check --redis-password (REDIS_PASSWORD) "
                    "and --redis-username.") from e
            except (rex.ConnectionError, rex.TimeoutError, OSError) as e:
                if asyncio.get_running_loop().time() > deadline:
                    raise ConnectionError(
                        f"Could not connect to Redis at {self.address} ({e}) within {timeout_s:.0f} s. Is "
                        "redis-server running there? Check --redis-address / RAY_REDIS_ADDRESS.") from e
                await asyncio.sleep(0.5)

    async def _call(self, fn, *args):
        import redis.exceptions as rex

        deadline = asyncio.get_running_loop().time() + REDIS_RETRY_S
        while True:
            try:
                return await fn(*args)
            except (rex.ConnectionError, rex.TimeoutError) as e:
                if asyncio.get_running_loop().time() > deadline:
                    raise ConnectionError(f"Lost Redis at {self.address}: {e}") from e
                logger.warning("Redis at %s unreachable (%s); retrying", self.address, e)
                await asyncio.sleep(0.5)

    def _key(self, table: str) -> str:
        return table_key(self.namespace, table)

    async def get(self, table: str, key: bytes) -> bytes | None:
        return await self._call(self._redis.hget, self._key(table), key)

    async def put(self, table: str, key: bytes, value: bytes, overwrite: bool = True) -> bool:
        if overwrite:
            return bool(await self._call(self._redis.hset, self._key(table), key, value))
        return bool(await self._call(self._redis.hsetnx, self._key(table), key, value))

    async def delete(self, table: str, key: bytes) -> bool:
        return bool(await self._call(self._redis.hdel, self._key(table), key))

    async def write(self, puts: list[tuple[str, bytes, bytes]], deletes: list[tuple[str, bytes]] = ()) -> None:
        async def transaction() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:  # MULTI ... EXEC: one round trip, atomic
                for table, key, value in puts:
                    pipe.hset(self._key(table), key, value)
                for table, key in deletes:
                    pipe.hdel(self._key(table), key)
                await pipe.execute()

        await self._call(transaction)

    async def keys(self, table: str, prefix: bytes = b"") -> list[bytes]:
        found = await self._call(self._redis.hkeys, self._key(table))
        return [k for k in found if k.startswith(prefix)]

    async def get_all(self, table: str) -> dict[bytes, bytes]:
        return await self._call(self._redis.hgetall, self._key(table))

    async def exists(self, table: str, key: bytes) -> bool:
        return bool(await self._call(self._redis.hexists, self._key(table), key))

    async def close(self) -> None:
        await self._redis.aclose()
