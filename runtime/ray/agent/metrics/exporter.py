"""Prometheus text for this node (`/metrics` on `--metrics-export-port`), with Ray's metric names and labels.

Every node: `ray_node_*` (psutil/NVML), `ray_component_*` (the node's daemons and workers), `ray_resources`
and `ray_object_store_memory` (the raylet's view), and the user metrics of `ray.util.metrics` pushed by the
node's processes. The head node's agent adds the cluster-wide ones the GCS knows: `ray_cluster_active_nodes`,
`ray_cluster_failed_nodes`, `ray_cluster_pending_nodes`, `ray_actors`, `ray_placement_groups`, and `ray_tasks`
(from the task events the GCS keeps counts of).
Text format by prometheus-client.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

NODE_LABELS = ("ip", "SessionName", "IsHeadNode")


def _gauge(name: str, doc: str, labels: tuple[str, ...], rows: list[tuple[tuple[str, ...], float]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        if value is not None:
            family.add_metric(list(values), float(value))
    return family


class RayCollector:
    """A prometheus-client collector over the last node sample, cluster sample and user metrics."""

    def __init__(self, session_name: str, is_head: bool):
        self.session_name = session_name
        self.is_head = is_head
        self.node: dict[str, Any] | None = None
        self.cluster: dict[str, Any] | None = None
        self.user: list[dict[str, Any]] = []

    def collect(self) -> Iterator[Metric]:
        if self.node:
            yield from self._node_metrics(self.node)
        if self.cluster:
            yield from self._cluster_metrics(self.cluster)
        yield from self._user_metrics(self.user)

    # ---------------------------------------------------------------- node
    def _node_metrics(self, s: dict[str, Any]) -> Iterator[Metric]:
        base = (s["ip"], self.session_name, str(self.is_head))

        def g(name: str, doc: str, value: Any) -> Metric:
            return _gauge(name, doc, NODE_LABELS, [(base, value)] if value is not None else [])

        yield g("ray_node_cpu_utilization", "Total CPU usage on a ray node", s["cpu"])
        yield g("ray_node_cpu_count", "Total CPUs available on a ray node", s["cpus"][0])
        total, available, _, used = s["mem"]
        yield g("ray_node_mem_used", "Memory usage on a ray node", used)
        yield g("ray_node_mem_available", "Memory available on a ray node", available)
        yield g("ray_node_mem_total", "Total memory on a ray node", total)
        yield g("ray_node_mem_shared_bytes", "Total shared memory usage on a ray node", s.get("shm"))
        root = s["disk"].get("/") or next(iter(s["disk"].values()), None)
        if root:
            yield g("ray_node_disk_usage", "Total disk usage (bytes) on a ray node", root["used"])
            yield g("ray_node_disk_free", "Total disk free (bytes) on a ray node", root["free"])
            yield g("ray_node_disk_utilization_percentage", "Total disk utilization (percentage) on a ray node",
                    root["percent"])
        io = s.get("disk_io") or {}
        if io:
            yield g("ray_node_disk_io_read", "Total read from disk", io["read_bytes"])
            yield g("ray_node_disk_io_write", "Total written to disk", io["write_bytes"])
            yield g("ray_node_disk_io_read_speed", "Disk read speed", io["read_speed"])
            yield g("ray_node_disk_io_write_speed", "Disk write speed", io["write_speed"])
            yield g("ray_node_disk_read_iops", "Disk read iops", io["read_iops"])
            yield g("ray_node_disk_write_iops", "Disk write iops", io["write_iops"])
        net = s["network"]
        yield g("ray_node_network_sent", "Total network sent", net["sent"])
        yield g("ray_node_network_received", "Total network received", net["received"])
        yield g("ray_node_network_send_speed", "Network send speed", net["send_speed"])
        yield g("ray_node_network_receive_speed", "Network receive speed", net["receive_speed"])
        gpus = s.get("gpus") or []
        if gpus:
            yield g("ray_node_gpus_available", "Total GPUs available on a ray node", len(gpus))
            labels = (*NODE_LABELS, "GpuIndex", "GpuDeviceName")
            rows = [((*base, str(x["index"]), x["name"]), x) for x in gpus]
            yield _gauge("ray_node_gpus_utilization", "Total GPUs usage on a ray node", labels,
                         [(k, x["utilizationGpu"]) for k, x in rows])
            yield _gauge("ray_node_gram_used", "Total GPU RAM usage on a ray node", labels,
                         [(k, x["memoryUsed"]) for k, x in rows])
            yield _gauge("ray_node_gram_available", "Total GPU RAM available on a ray node", labels,
                         [(k, x["memoryTotal"] - x["memoryUsed"]) for k, x in rows])
        yield from self._component_metrics(s)
        yield from self._raylet_metrics(s)

    def _component_metrics(self, s: dict[str, Any]) -> Iterator[Metric]:
        labels = ("ip", "pid", "Component", "SessionName")
        procs = [(name, stats) for name, stats in s.get("components", {}).items()]
        for w in s.get("workers", []):
            what = w.get("actor_name") or w.get("task_name")
            procs.append((f"ray::{what}" if what else "ray::IDLE", w))
        cpu, rss, uss = [], [], []
        for name, stats in procs:
            key = (s["ip"], str(stats["pid"]), name, self.session_name)
            cpu.append((key, stats.get("cpu_percent")))
            rss.append((key, (stats.get("memory_info") or {}).get("rss", 0) / 2**20))
            full = stats.get("memory_full_info")
            if full:
                uss.append((key, full["uss"] / 2**20))
        yield _gauge("ray_component_cpu_percentage", "Total CPU usage of the components on a node.", labels, cpu)
        yield _gauge("ray_component_rss_mb", "RSS usage of all components on the node.", labels, rss)
        yield _gauge("ray_component_uss_mb", "USS usage of all components on the node.", labels, uss)

    def _raylet_metrics(self, s: dict[str, Any]) -> Iterator[Metric]:
        raylet = s.get("raylet") or {}
        total, avail = raylet.get("total") or {}, raylet.get("available") or {}
        labels = ("Name", "State", "ip", "SessionName")
        rows = []
        for name, amount in sorted(total.items()):
            if name.startswith("node:") or "_group_" in name:
                continue
            free = avail.get(name, 0.0)
            rows.append(((name, "USED", s["ip"], self.session_name), amount - free))
            rows.append(((name, "AVAILABLE", s["ip"], self.session_name), free))
        yield _gauge("ray_resources", "Logical Ray resources broken per state {AVAILABLE, USED}", labels, rows)
        store = s.get("object_store") or {}
        if store:
            labels = ("Location", "ObjectState", "ip", "SessionName")
            yield _gauge("ray_object_store_memory", "Object store memory by various sub-kinds on this node", labels, [
                (("MMAP_SHM", "SEALED", s["ip"], self.session_name), store.get("object_store_used_bytes", 0)),
                (("SPILLED", "SEALED", s["ip"], self.session_name), store.get("spilled_bytes_total", 0)),
            ])
            yield _gauge("ray_object_store_available_memory", "Amount of memory currently available in the object "
                         "store.", ("ip", "SessionName"),
                         [((s["ip"], self.session_name), store.get("capacity", 0) - store.get("object_store_used_bytes", 0))])
            yield _gauge("ray_object_store_num_local_objects", "Number of objects currently in the object store.",
                         ("ip", "SessionName"), [((s["ip"], self.session_name), store.get("num_objects", 0))])

    # ---------------------------------------------------------------- cluster (head only)
    def _cluster_metrics(self, c: dict[str, Any]) -> Iterator[Metric]:
        labels = ("node_type", "SessionName")
        for name, doc, key in (("ray_cluster_active_nodes", "Active nodes on the cluster", "active"),
                               ("ray_cluster_failed_nodes", "Failed nodes on the cluster", "failed"),
                               ("ray_cluster_pending_nodes", "Pending nodes on the cluster", "pending")):
            rows = [((node_type, self.session_name), n) for node_type, n in sorted(c.get(key, {}).items())]
            yield _gauge(name, doc, labels, rows)
        # Ray's GCS records actors by state with Source="gcs" (its workers add ALIVE_IDLE/ALIVE_RUNNING_TASKS).
        yield _gauge("ray_actors", "Current number of actors in a particular state.",
                     ("State", "Name", "Source", "JobId", "SessionName"),
                     [((state, name, "gcs", job_id, self.session_name), n)
                      for (state, name, job_id), n in sorted(c.get("actors", {}).items())])
        # Ray's core workers record their tasks by state: the owner the pending and ended ones, the executor the
        # running ones (Source); here from the GCS's task events, which both report.
        yield _gauge("ray_tasks", "Current number of tasks currently in a particular state.",
                     ("State", "Name", "Source", "IsRetry", "JobId", "SessionName"),
                     [((state, name, "executor" if state.startswith("RUNNING") else "owner", retry, job_id,
                        self.session_name), n)
                      for (state, name, retry, job_id), n in sorted(c.get("tasks", {}).items())])
        yield _gauge("ray_placement_groups", "Current number of placement groups by state.", ("State", "SessionName"),
                     [((state, self.session_name), n) for state, n in sorted(c.get("placement_groups", {}).items())])

    # ---------------------------------------------------------------- user metrics
    def _user_metrics(self, processes: list[dict[str, Any]]) -> Iterator[Metric]:
        as_gauge = os.environ.get("RAY_EXPORT_COUNTER_AS_GAUGE", "1") != "0"
        families: dict[tuple[str, str], Metric] = {}
        for proc in processes:
            extra = {"Component": proc.get("component", "core_worker"), "NodeAddress": proc.get("ip", ""),
                     "SessionName": self.session_name, "WorkerId": proc["worker_id"]}
            for m in proc["metrics"]:
                name = f"ray_{m['name']}"
                for series in m["series"]:
                    tags = {**{str(k): str(v) for k, v in (series.get("tags") or {}).items()}, **extra}
                    keys, values = list(tags), list(tags.values())
                    kind = m["type"]
                    if kind == "counter":
                        fam = families.setdefault((name, "counter"), CounterMetricFamily(
                            name, m.get("description") or name, labels=keys))
                        fam.add_metric(values, float(series["value"]))
                        if as_gauge:
                            fam = families.setdefault((name, "gauge"), GaugeMetricFamily(
                                name, m.get("description") or name, labels=keys))
                            fam.add_metric(values, float(series["value"]))
                    elif kind == "gauge":
                        fam = families.setdefault((name, "gauge"), GaugeMetricFamily(
                            name, m.get("description") or name, labels=keys))
                        fam.add_metric(values, float(series["value"]))
                    else:
                        fam = families.setdefault((name, "histogram"), HistogramMetricFamily(
                            name, m.get("description") or name, labels=keys))
                        bounds = list(m.get("boundaries") or [])
                        counts = list(series.get("buckets") or [])
                        cumulative, buckets = 0.0, []
                        for bound, n in zip([*bounds, float("inf")], counts, strict=False):
                            cumulative += n
                            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
                        fam.add_metric(values, buckets, float(series.get("sum", 0.0)))
        yield from families.values()


def render(collector: RayCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
