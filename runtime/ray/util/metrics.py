"""`ray.util.metrics`: user-defined metrics (Ray's `Counter`, `Gauge`, `Histogram`), exported in Prometheus
format by the node agent of the process that records them, named `ray_<name>` (a counter also as
`ray_<name>_total`; the legacy gauge copy goes with `RAY_EXPORT_COUNTER_AS_GAUGE=0`).

Works from a driver, a task or an actor. Recording only updates this process's table; a daemon thread pushes
the table to the node's agent (`POST /api/metrics/push`, JSON, with the cluster's token) every
`RAY_metrics_report_interval_ms` (2000 ms here, Ray's is 10000) while something changed.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import urllib.request
import warnings
from typing import Any

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

__all__ = ["Counter", "Gauge", "Histogram", "Metric"]


class Metric:
    """The base of the user metric types: name, description, tag keys and default tags."""

    _type = "gauge"

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None):
        if len(name) == 0:
            raise ValueError("Empty name is not allowed. Please provide a metric name.")
        self._name = name
        self._description = description
        self._default_tags: dict[str, str] = {}
        self._tag_keys = tag_keys or ()
        if not isinstance(self._tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(self._tag_keys)}")
        for key in self._tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
        self._discarded = not _NAME_RE.match(name)
        if self._discarded:
            warnings.warn(f"Invalid metric name: {name}. Metric names must match {_NAME_RE.pattern}; "
                          "this metric will be discarded.", UserWarning, stacklevel=2)
        self._series: dict[tuple[tuple[str, str], ...], Any] = {}

    def set_default_tags(self, default_tags: dict[str, str]) -> Metric:
        """Tags used when a record call leaves them out; returns the metric."""
        for key, val in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(val, str):
                raise TypeError(f"Tag values must be str, got {type(val)}.")
        self._default_tags = dict(default_tags)
        return self

    def _final_tags(self, tags: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
        if tags:
            for key, val in tags.items():
                if key not in self._tag_keys:
                    raise ValueError(f"Unrecognized tag key {key}.")
                if not isinstance(val, str):
                    raise TypeError(f"Tag values must be str, got {type(val)}.")
        final = {**self._default_tags, **(tags or {})}
        missing = [k for k in self._tag_keys if k not in final]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        return tuple((k, final[k]) for k in self._tag_keys)

    def record(self, value: float, tags: dict[str, str] | None = None) -> None:
        """Sets the value (a Gauge's semantics; Counter and Histogram add their own)."""
        if value is None:
            return
        key = self._final_tags(tags)
        if self._discarded:
            return
        with _registry.lock:
            self._series[key] = float(value)
            _registry.changed(self)

    @property
    def info(self) -> dict[str, Any]:
        return {"name": self._name, "description": self._description, "tag_keys": self._tag_keys,
                "default_tags": self._default_tags}

    def _export(self) -> dict[str, Any]:
        return {"name": self._name, "type": self._type, "description": self._description,
                "series": [{"tags": dict(k), "value": v} for k, v in self._series.items()]}


class Counter(Metric):
    """A cumulative count (Prometheus counter `ray_<name>_total`)."""

    _type = "counter"

    def inc(self, value: int | float = 1.0, tags: dict[str, str] | None = None) -> None:
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        key = self._final_tags(tags)
        if self._discarded:
            return
        with _registry.lock:
            self._series[key] = self._series.get(key, 0.0) + float(value)
            _registry.changed(self)

    def record(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.inc(value, tags)


class Gauge(Metric):
    """The last value set (Prometheus gauge `ray_<name>`)."""

    def set(self, value: int | float | None, tags: dict[str, str] | None = None) -> None:
        """Set to `value`; None does nothing."""
        self.record(value, tags)


class Histogram(Metric):
    """Observations counted into buckets with the given upper boundaries (Prometheus histogram)."""

    _type = "histogram"

    def __init__(self, name: str, description: str = "", boundaries: list[float] | None = None,
                 tag_keys: tuple[str, ...] | None = None):
        if boundaries is None or len(boundaries) == 0:
            raise ValueError('boundaries argument should be provided when using the Histogram class. e.g., '
                             'Histogram("name", boundaries=[1.0, 2.0])')
        for i, boundary in enumerate(boundaries):
            if boundary <= 0:
                raise ValueError(f"Invalid `boundaries` argument at index {i}, {boundaries}. Use positive values "
                                 "for the arguments.")
        super().__init__(name, description, tag_keys)
        self.boundaries = sorted(float(b) for b in boundaries)

    def observe(self, value: int | float, tags: dict[str, str] | None = None) -> None:
        key = self._final_tags(tags)
        if self._discarded:
            return
        with _registry.lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = {"buckets": [0] * (len(self.boundaries) + 1), "sum": 0.0, "count": 0}
            index = next((i for i, b in enumerate(self.boundaries) if value <= b), len(self.boundaries))
            series["buckets"][index] += 1
            series["sum"] += float(value)
            series["count"] += 1
            _registry.changed(self)

    def record(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.observe(value, tags)

    @property
    def info(self) -> dict[str, Any]:
        return {**super().info, "boundaries": self.boundaries}

    def _export(self) -> dict[str, Any]:
        return {"name": self._name, "type": "histogram", "description": self._description,
                "boundaries": self.boundaries,
                "series": [{"tags": dict(k), **v} for k, v in self._series.items()]}


class _Registry:
    """This process's metrics and the thread that pushes them to the node's agent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.metrics: dict[str, Metric] = {}
        self._dirty = threading.Event()
        self._thread: threading.Thread | None = None
        self._agent_url: str | None = None
        self._pid = os.getpid()

    def changed(self, metric: Metric) -> None:  # called with the lock held
        self.metrics[metric._name] = metric
        self._dirty.set()
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._agent_url = None
            self._thread = threading.Thread(target=self._run, name="ray-metrics-push", daemon=True)
            self._thread.start()

    def _interval_s(self) -> float:
        try:
            return max(0.1, int(os.environ.get("RAY_metrics_report_interval_ms", 2000)) / 1000)
        except ValueError:
            return 2.0

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            self.push()
            threading.Event().wait(self._interval_s())

    def push(self) -> bool:
        """Send the current table to the node's agent now (False when not connected or it failed)."""
        from ray._common import auth
        from ray._common.runtime_env.agent_registry import agent_by_node_id
        from ray._private.worker import global_worker

        cw = global_worker.core_worker
        if cw is None:
            return False  # recorded before ray.init(): pushed once connected and recorded again
        with self.lock:
            self._dirty.clear()
            body = {"worker_id": cw.worker_id.hex(), "job_id": cw.job_id.hex(), "ip": cw.node_ip,
                    "component": "core_worker" if cw.mode != "driver" else "driver",
                    "metrics": [m._export() for m in self.metrics.values()]}
        try:
            if self._agent_url is None:
                agent = agent_by_node_id(cw, cw.node_id)
                if agent is None:
                    raise ConnectionError(f"no agent registered for node {cw.node_id}")
                self._agent_url = f"{agent.http_address}/api/metrics/push"
            request = urllib.request.Request(self._agent_url, data=json.dumps(body).encode(), method="POST",
                                             headers={"Content-Type": "application/json", **auth.http_headers()})
            with urllib.request.urlopen(request, timeout=10) as reply:
                reply.read()
            return True
        except Exception as e:
            logger.debug("Could not push metrics to the node's agent: %s", e)
            self._agent_url = None
            self._dirty.set()  # try again next round
            return False


_registry = _Registry()


def _flush_before_shutdown() -> None:
    if _registry.metrics and _registry._dirty.is_set():
        _registry.push()


def _hook_shutdown() -> None:
    from ray._private import worker

    if _flush_before_shutdown not in worker.before_shutdown:
        worker.before_shutdown.append(_flush_before_shutdown)


_hook_shutdown()


@atexit.register
def _flush_at_exit() -> None:
    if _registry.metrics and _registry._dirty.is_set():
        _registry.push()
