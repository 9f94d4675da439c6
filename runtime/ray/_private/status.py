"""`ray status` text in Ray's (autoscaler v1) layout, built from the GCS's node table and resource usage."""

from __future__ import annotations

import datetime
from collections import Counter

from ray.protocol import gcs_pb2 as pb

_MEMORY_LIKE = ("memory", "object_store_memory")
_HIDDEN_PREFIXES = ("node:", "accelerator_type:")


def _format_usage(name: str, used: float, total: float) -> str:
    if name in _MEMORY_LIKE:
        gib = 1024**3
        return f" {used / gib:.2f}/{total / gib:.3f} GiB {name}"
    return f" {used:.1f}/{total:.1f} {name}"


def _usage_lines(nodes: list[pb.NodeResources]) -> list[str]:
    total: dict[str, float] = {}
    avail: dict[str, float] = {}
    for n in nodes:
        for k, v in n.resources_total.items():
            total[k] = total.get(k, 0) + v
        for k, v in n.resources_available.items():
            avail[k] = avail.get(k, 0) + v
    names = [k for k in total if not k.startswith(_HIDDEN_PREFIXES)]
    # Ray lists CPU/GPU first, then custom resources, then memory and object store memory.
    def order(k: str) -> tuple[int, str]:
        return ({"CPU": 0, "GPU": 1}.get(k, 3 if k in _MEMORY_LIKE else 2), k)

    return [_format_usage(k, max(total[k] - avail.get(k, 0), 0), total[k]) for k in sorted(names, key=order)]


def _demand_lines(nodes: list[pb.NodeResources]) -> list[str]:
    counts: Counter = Counter()
    for n in nodes:
        for d in n.demands:
            shape = tuple(sorted(d.shape.items()))
            counts[shape] += d.num_ready_requests_queued + d.num_infeasible_requests_queued
    lines = [f" {dict(shape)}: {count}+ pending tasks/actors" for shape, count in counts.items() if count]
    return lines or [" (no resource demands)"]


def format_status(
    node_infos: list[pb.GcsNodeInfo], usage: list[pb.NodeResources], verbose: bool = False
) -> str:
    now = datetime.datetime.now()
    lines = [f"======== Autoscaler status: {now} ========"]
    lines += ["Node status", "-" * 63, "Healthy:"]
    alive = [n for n in node_infos if n.state == pb.GcsNodeInfo.ALIVE]
    dead = [n for n in node_infos if n.state == pb.GcsNodeInfo.DEAD]
    lines += [f" 1 node_{n.node_id.hex()}" for n in alive] or [" (no healthy nodes)"]
    lines += ["Pending:", " (no pending nodes)", "Recent failures:"]
    lines += [f" node_{n.node_id.hex()}: NodeTerminated (ip: {n.node_manager_address})" for n in dead] or [
        " (no failures)"
    ]
    lines += ["", "Resources", "-" * 63]
    lines += ["Total Usage:" if verbose else "Usage:"]
    lines += _usage_lines(usage) or [" (no resources)"]
    lines += ["", "Total Demands:" if verbose else "Demands:"]
    lines += _demand_lines(usage)
    if verbose:
        for n in usage:
            lines += ["", f"Node: {n.node_manager_address} ({n.node_id.hex()})", " Usage:"]
            lines += [" " + line for line in _usage_lines([n])]
    return "\n".join(lines)
