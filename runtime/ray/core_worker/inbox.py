"""Work handed from user threads to the io thread, which is woken once per burst: `[f.remote() for _ in range(1000)]`
costs one wakeup, not a thousand. Order holds: an item joins a drain scheduled before anything the same thread
schedules on the loop after it (`ray.kill`, ...)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any


class Inbox:
    def __init__(self, loop: asyncio.AbstractEventLoop, take: Callable[..., None]):
        """`take(*item)` runs on the loop's thread for every item `put`, in order."""
        self._loop = loop
        self._take = take
        self._items: list[tuple] = []  # put by user threads, not yet taken
        self._lock = threading.Lock()
        self._scheduled = False
        self._taking = False  # a drain is taking a batch

    def put(self, *item: Any) -> None:
        """Any thread."""
        with self._lock:
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def idle(self) -> bool:
        """Any thread: nothing put here waits to be taken or is being taken."""
        with self._lock:
            return not self._items and not self._taking

    def _drain(self) -> None:
        with self._lock:
            batch, self._items = self._items, []
            self._scheduled = False
            self._taking = True
        take = self._take
        try:
            for item in batch:
                take(*item)
        finally:
            with self._lock:
                self._taking = False
