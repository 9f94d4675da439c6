"""A keyed work queue like client-go's: each key is queued once, never worked on by two threads at once,
and can be re-added after a delay (requeue) or with exponential back-off after failures."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(self, base_backoff_s: float = 2.0, max_backoff_s: float = 300.0) -> None:
        self._cond = threading.Condition()
        self._queue: list[Hashable] = []
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._counter = 0
        self._failures: dict[Hashable, int] = {}
        self._base = base_backoff_s
        self._max = max_backoff_s
        self._closed = False

    def add(self, key: Hashable) -> None:
        with self._cond:
            if self._closed or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: Hashable, delay_s: float) -> None:
        if delay_s <= 0:
            self.add(key)
            return
        with self._cond:
            self._counter += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay_s, self._counter, key))
            self._cond.notify()

    def add_failed(self, key: Hashable, delay_s: float) -> None:
        """Requeue after max(delay, exponential back-off by consecutive failures)."""
        with self._cond:
            count = self._failures.get(key, 0)
            self._failures[key] = count + 1
        self.add_after(key, max(delay_s, min(self._max, self._base * (2**count))))

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def get(self, timeout_s: float | None = None) -> Hashable | None:
        """The next key to work on (call `done` after), or None when closed or timed out."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                self._promote_due()
                if self._queue:
                    key = self._queue.pop(0)
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                if self._closed:
                    return None
                wait = None if not self._delayed else max(0.0, self._delayed[0][0] - time.monotonic())
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key not in self._dirty:
                self._dirty.add(key)
                if key not in self._processing:
                    self._queue.append(key)


def run_workers(
    queue: WorkQueue, work: Callable[[Hashable], tuple[float | None, bool]], count: int, name: str
) -> list[threading.Thread]:
    """Start `count` daemon threads that take keys and call `work(key) -> (requeue_after, failed)`."""

    def loop() -> None:
        while True:
            key = queue.get()
            if key is None:
                return
            try:
                requeue_after, failed = work(key)
            except Exception:  # a crash in one reconcile must not stop the others
                log.exception("reconcile of %s failed", key)
                requeue_after, failed = 0.0, True
            finally:
                queue.done(key)
            if failed:
                queue.add_failed(key, requeue_after or 0.0)
            else:
                queue.forget(key)
                if requeue_after is not None:
                    queue.add_after(key, requeue_after)

    threads = [threading.Thread(target=loop, name=f"{name}-{i}", daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads
