"""User metrics (`ray.util.metrics`) pushed to this node's agent by the drivers and workers of the node.

Each process pushes its whole current state (cumulative counters and histograms, last gauge values) as JSON;
the agent keeps the latest state per process, so a lost or repeated push changes nothing. The state of a
process that exited is kept (a counter must not go back), up to `MAX_PROCESSES` processes, oldest first out.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import Any

MAX_PROCESSES = 2000
MAX_SERIES_PER_PROCESS = 10_000
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
TYPES = ("counter", "gauge", "histogram")


class PushError(ValueError):
    """A push that does not have the expected shape (the 400 text)."""


def _check(push: Any) -> dict[str, Any]:
    if not isinstance(push, dict) or not isinstance(push.get("worker_id"), str):
        raise PushError("A metrics push is a JSON object with 'worker_id' and 'metrics'.")
    metrics = push.get("metrics")
    if not isinstance(metrics, list):
        raise PushError("'metrics' must be a list.")
    series = 0
    for m in metrics:
        if not isinstance(m, dict) or m.get("type") not in TYPES or not NAME_RE.match(str(m.get("name", ""))):
            raise PushError(f"Bad metric in push: {str(m)[:200]}")
        if not isinstance(m.get("series"), list):
            raise PushError(f"Metric {m['name']!r} has no 'series' list.")
        series += len(m["series"])
    if series > MAX_SERIES_PER_PROCESS:
        raise PushError(f"A process may export at most {MAX_SERIES_PER_PROCESS} series; this push has {series}.")
    return push


class UserMetricsStore:
    def __init__(self) -> None:
        self._by_process: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def push(self, push: Any) -> None:
        push = _check(push)
        key = push["worker_id"]
        self._by_process.pop(key, None)
        self._by_process[key] = {"received": time.time(), **push}
        while len(self._by_process) > MAX_PROCESSES:
            self._by_process.popitem(last=False)

    def processes(self) -> list[dict[str, Any]]:
        return list(self._by_process.values())
