"""Reference-counted cache of created runtime env resources (pip envs, unpacked packages).

A resource is kept while anything uses it; unused ones stay cached for the next user and are deleted,
least recently used first, only once the cache is over its size limit (Ray's URICache semantics).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

logger = logging.getLogger(__name__)


class URICache:
    def __init__(self, max_total_size_bytes: int, delete_fn: Callable[[str], int]):
        self._max_total_size_bytes = max_total_size_bytes
        self._delete_fn = delete_fn  # deletes the resource, returns the bytes freed
        self._sizes: dict[str, int] = {}
        self._ref_counts: dict[str, int] = {}
        self._unused: OrderedDict[str, None] = OrderedDict()  # least recently used first

    def __contains__(self, uri: str) -> bool:
        return uri in self._sizes

    def ref_count(self, uri: str) -> int:
        return self._ref_counts.get(uri, 0)

    def total_size(self) -> int:
        return sum(self._sizes.values())

    def add(self, uri: str, size_bytes: int) -> None:
        """Records a freshly created resource as used once."""
        self._sizes[uri] = size_bytes
        self._ref_counts[uri] = self._ref_counts.get(uri, 0) + 1
        self._unused.pop(uri, None)
        self._evict()

    def mark_used(self, uri: str) -> None:
        self._ref_counts[uri] = self._ref_counts.get(uri, 0) + 1
        self._unused.pop(uri, None)

    def mark_unused(self, uri: str) -> None:
        count = self._ref_counts.get(uri, 0) - 1
        if count > 0:
            self._ref_counts[uri] = count
            return
        self._ref_counts.pop(uri, None)
        if uri in self._sizes:
            self._unused[uri] = None
        self._evict()

    def _evict(self) -> None:
        while self._unused and self.total_size() > self._max_total_size_bytes:
            uri, _ = self._unused.popitem(last=False)
            self._sizes.pop(uri, None)
            logger.info("Deleting unused runtime env resource %s (cache over its limit).", uri)
            self._delete_fn(uri)
