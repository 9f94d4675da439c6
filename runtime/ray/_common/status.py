"""`ray status` text in Ray's (autoscaler v1) layout, built from the GCS's node table and resource usage."""

from __future__ import annotations

import datetime
from collections import Counter

from ray._common import placement_groups as pgs
from ray.protocol import gcs_pb2 as pb

_MEMORY_LIKE = ("memory", "object_store_memory")
_HIDDEN_PREFIXES = ("node:", "accelerator_type:")


def _format_usage(name: str, used: float, total: float, in_groups: tuple[float, float] | None = None) -> str:
    if name in _MEMORY_LIKE:
        gib = 1024**3
        line = f" {used / gib:.2f}/{total / gib:.3f} GiB {name}"
        if in_groups is not None:
            line += f" ({in_groups[0] / gib:.2f} GiB used of {in_groups[1] / gib:.2f} GiB reserved in placement groups)"
        return line
    line = f" {used:.1f}/{total:.1f} {name}"
    if in_groups is not None:
        line += f" ({in_groups[0]} used of {in_groups[1]} reserved in placement groups)"
    return line


def _placement_group_usage(total: dict[str, float], avail: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Per original resource: (used, reserved) inside placement groups, from the wildcard `<name>_group_<pg>`
    resources (the indexed ones count the same again). Ray's parse_usage."""
    out: dict[str, list[float]] = {}
    for name, amount in total.items():
        base, pg, index = pgs.parse_resource(name)
        if pg is None or index is not None:
            continue
        entry = out.setdefault(base, [0.0, 0.0])
        entry[0] += amount - avail.get(name, 0)
        entry[1] += amount
    return {k: (v[0], v[1]) for k, v in out.items()}


def _usage_lines(nodes: list[pb.NodeResources]) -> list[str]:
    total: dict[str, float] = {}
    avail: dict[str, float] = {}
    for n in nodes:
        for k, v in n.resources_total.items():
            total[k] = total.get(k, 0) + v
        for k, v in n.resources_available.items():
            avail[k] = avail.get(k, 0) + v
    in_groups = _placement_group_usage(total, avail)
    names = [k for k in total if not k.startswith(_HIDDEN_PREFIXES) and not pgs.is_group_resource(k)]
    # Ray lists CPU/GPU first, then custom resources, then memory and object store memory.
    def order(k: str) -> tuple[int, str]:
        return ({"CPU": 0, "GPU": 1}.get(k, 3 if k in _MEMORY_LIKE else 2), k)

    lines = []
    for k in sorted(names, key=order):
        used = max(total[k] - avail.get(k, 0), 0)
        if k in in_groups:  # what groups reserve counts as used only as far as their tasks use it
            used = used - in_groups[k][1] + in_groups[k][0]
        lines.append(_format_usage(k, used, total[k], in_groups.get(k)))
    return lines


def _demand_lines(nodes: list[pb.NodeResources], placement_group_load=()) -> list[str]:
    counts: Counter = Counter()
    in_groups: Counter = Counter()
    for n in nodes:
        for d in n.demands:
            shape = tuple(sorted(pgs.original_resources(dict(d.shape)).items()))
            counts[shape] += d.num_ready_requests_queued + d.num_infeasible_requests_queued
            if any(pgs.is_group_resource(k) for k in d.shape):
                in_groups[shape] += d.num_ready_requests_queued + d.num_infeasible_requests_queued
    lines = [f" {dict(shape)}: {count}+ pending tasks/actors"
             + (f" ({in_groups[shape]}+ using placement groups)" if in_groups[shape] else "")
             for shape, count in counts.items() if count]
    return lines + _placement_group_demand_lines(placement_group_load) or [" (no resource demands)"]


def _placement_group_demand_lines(load: list[pb.PlacementGroupDemand]) -> list[str]:
    """` {'CPU': 1.0} * 2 (PACK): 1+ pending placement groups`: pending groups counted by their shape (Ray's
    format_pg over the bundles not placed yet)."""
    groups: Counter = Counter()
    for demand in load:
        bundles: Counter = Counter(tuple(sorted(b.shape.items())) for b in demand.bundles)
        groups[(tuple(bundles.items()), demand.strategy)] += 1
    lines = []
    for (bundles, strategy), count in groups.items():
        shapes = ", ".join(f"{dict(shape)} * {n}" for shape, n in bundles)
        lines.append(f" {shapes} ({strategy}): {count}+ pending placement groups")
    return lines


def format_status(
    node_infos: list[pb.GcsNodeInfo], usage: list[pb.NodeResources], verbose: bool = False,
    placement_group_load: list[pb.PlacementGroupDemand] = (),
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
    lines += _demand_lines(usage, placement_group_load)
    if verbose:
        for n in usage:
            lines += ["", f"Node: {n.node_manager_address} ({n.node_id.hex()})", " Usage:"]
            lines += [" " + line for line in _usage_lines([n])]
    return "\n".join(lines)
