"""Storage behind the GCS tables. In memory now; a Redis-backed client can implement the same interface."""

from __future__ import annotations

import abc


class StoreClient(abc.ABC):
    """A table -> key -> value store. All methods are coroutines so a networked backend fits."""

    @abc.abstractmethod
    async def get(self, table: str, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    async def put(self, table: str, key: bytes, value: bytes, overwrite: bool = True) -> bool:
        """Store the value; returns True when the key was newly added."""

    @abc.abstractmethod
    async def delete(self, table: str, key: bytes) -> bool: ...

    @abc.abstractmethod
    async def keys(self, table: str, prefix: bytes = b"") -> list[bytes]: ...

    @abc.abstractmethod
    async def get_all(self, table: str) -> dict[bytes, bytes]: ...

    async def exists(self, table: str, key: bytes) -> bool:
        return await self.get(table, key) is not None

    async def write(self, puts: list[tuple[str, bytes, bytes]], deletes: list[tuple[str, bytes]] = ()) -> None:
        """Several puts (overwriting) and deletes as one write: a networked backend sends them in one round
        trip and applies them together, so a restarted GCS never sees half of a state change."""
        for table, key, value in puts:
            await self.put(table, key, value)
        for table, key in deletes:
            await self.delete(table, key)


class InMemoryStoreClient(StoreClient):
    def __init__(self) -> None:
        self._tables: dict[str, dict[bytes, bytes]] = {}

    def _table(self, table: str) -> dict[bytes, bytes]:
        return self._tables.setdefault(table, {})

    async def get(self, table: str, key: bytes) -> bytes | None:
        return self._table(table).get(key)

    async def put(self, table: str, key: bytes, value: bytes, overwrite: bool = True) -> bool:
        t = self._table(table)
        added = key not in t
        if added or overwrite:
            t[key] = value
        return added

    async def delete(self, table: str, key: bytes) -> bool:
        return self._table(table).pop(key, None) is not None

    async def keys(self, table: str, prefix: bytes = b"") -> list[bytes]:
        return [k for k in self._table(table) if k.startswith(prefix)]

    async def get_all(self, table: str) -> dict[bytes, bytes]:
        return dict(self._table(table))
