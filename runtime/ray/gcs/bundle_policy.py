"""Where a placement group's bundles go: Ray's four bundle scheduling policies over the nodes' resources, pure.

PACK puts the bundles on as few nodes as it can (best effort), SPREAD on as many different nodes as it can
(best effort), STRICT_PACK all on one node, STRICT_SPREAD each on a different node — the last two or
nothing. Among nodes that fit, the one left with the least free afterwards wins (Ray's least-resource
scorer), so big nodes stay free for big requests. Each bundle may carry a label selector its node must match,
and `max_cpu_fraction_per_node` (< 1) keeps part of each node's CPUs out of every group's reach.

The nodes come in as `NodeCapacity`, built by `node_capacity` from a node's reported resources: its own
resources only (the renamed ones its committed bundles added are left out: a node holding 1,000 groups reports
4,000 of them, and no bundle asks for one), plus the CPUs those bundles hold.

`schedule` answers a placement for the bundles not placed yet, given the ones already placed (a group being
rescheduled after a node died keeps the rest), or None; `feasible` says whether some placement could exist
with every node empty (else the group is infeasible: it waits, and the user is told).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ray._common import placement_groups as pgs
from ray._common.resources import GRANULARITY, ResourceSet, utilization


@dataclass
class NodeCapacity:
    node_id: bytes
    total: ResourceSet  # the node's own resources, no group ones
    available: ResourceSet
    labels: dict[str, str] = field(default_factory=dict)
    group_cpus: int = 0  # CPUs its committed bundles hold (fixed point), for `max_cpu_fraction_per_node`


def node_capacity(node_id: bytes, total: Mapping[str, float], available: Mapping[str, float],
                  labels: Mapping[str, str]) -> NodeCapacity:
    """A node as placement sees it, from its reported resources (which include its bundles' renamed ones)."""
    own_total: dict[str, float] = {}
    group_cpus = 0
    for name, amount in total.items():
        if not pgs.is_group_resource(name):
            own_total[name] = amount
        elif name.startswith("CPU_group_") and pgs.parse_resource(name)[2] is None:  # the group's wildcard
            group_cpus += round(amount * GRANULARITY)
    own_available = {name: available[name] for name in own_total if name in available}
    return NodeCapacity(node_id, ResourceSet(own_total), ResourceSet(own_available), dict(labels), group_cpus)


@dataclass
class BundleRequest:
    index: int
    resources: ResourceSet
    label_selector: dict[str, str] = field(default_factory=dict)


def _cpu_limit(node: NodeCapacity, fraction: float) -> int | None:
    """The node's CPUs that placement groups may hold (fixed point), or None for no limit (Ray's rule: at
    least one CPU, and at least one CPU left out)."""
    if fraction >= 1.0:
        return None
    total = node.total.get("CPU")
    limit = max(fraction * total, 1.0)
    limit = min(limit, total - 1)
    return round(max(limit, 0) * GRANULARITY)


class _Room:
    """What is left on each node while one placement is being worked out."""

    def __init__(self, nodes: list[NodeCapacity], use_total: bool, fraction: float) -> None:
        self.nodes = {n.node_id: n for n in nodes}
        self.left = {n.node_id: (n.total if use_total else n.available) for n in nodes}
        self.cpu_left: dict[bytes, int | None] = {}
        for n in nodes:
            limit = _cpu_limit(n, fraction)
            self.cpu_left[n.node_id] = None if limit is None else limit - (0 if use_total else n.group_cpus)

    def fits(self, node_id: bytes, bundle: BundleRequest) -> bool:
        if not bundle.resources.is_subset_of(self.left[node_id]):
            return False
        cpu_left = self.cpu_left[node_id]
        if cpu_left is not None and round(bundle.resources.get("CPU") * GRANULARITY) > cpu_left:
            return False
        node = self.nodes[node_id]
        labels = {**node.labels, "ray.io/node-id": node_id.hex()}
        return pgs.bundle_label_matches(bundle.label_selector, labels)

    def take(self, node_id: bytes, bundle: BundleRequest) -> None:
        self.left[node_id] = self.left[node_id] - bundle.resources
        if self.cpu_left[node_id] is not None:
            self.cpu_left[node_id] -= round(bundle.resources.get("CPU") * GRANULARITY)

    def score_after(self, node_id: bytes, bundle: BundleRequest) -> float:
        """Lower is better: how little the node has free once the bundle is on it, least-resource style."""
        node = self.nodes[node_id]
        try:
            after = self.left[node_id] - bundle.resources
        except ValueError:
            return 2.0
        return 1.0 - utilization(node.total, after)

    def best(self, candidates, bundle: BundleRequest) -> bytes | None:
        fitting = [n for n in candidates if self.fits(n, bundle)]
        if not fitting:
            return None
        return min(fitting, key=lambda n: (self.score_after(n, bundle), n))


def _size(bundle: BundleRequest) -> tuple:
    r = bundle.resources
    return (-r.get("GPU"), -r.get("CPU"), -sum(r.get(n) for n in r.names()))


def _place(strategy: str, bundles: list[BundleRequest], nodes: list[NodeCapacity], placed: dict[int, bytes],
           use_total: bool, fraction: float) -> dict[int, bytes] | None:
    room = _Room(nodes, use_total, fraction)
    ids = sorted(room.nodes)
    todo = sorted(bundles, key=_size)  # biggest first
    out: dict[int, bytes] = {}
    if strategy == "STRICT_PACK":
        targets = {n for n in placed.values()} or set(ids)
        for node_id in sorted(targets, key=lambda n: _pack_score(room, n, todo)):
            if node_id not in room.nodes:
                continue
            trial = _Room(nodes, use_total, fraction)
            if all(_take_if_fits(trial, node_id, b) for b in todo):
                return {b.index: node_id for b in todo}
        return None
    if strategy == "STRICT_SPREAD":
        used = set(placed.values())
        for b in todo:
            node_id = room.best([n for n in ids if n not in used], b)
            if node_id is None:
                return None
            room.take(node_id, b)
            used.add(node_id)
            out[b.index] = node_id
        return out
    if strategy == "PACK":
        # One node for everything if any can hold it all; else fill the nodes already chosen first.
        whole = [n for n in ids if _all_fit(nodes, use_total, fraction, n, todo)]
        if whole:
            node_id = min(whole, key=lambda n: (_pack_score(room, n, todo), n))
            return {b.index: node_id for b in todo}
        chosen: list[bytes] = list(dict.fromkeys(placed.values()))
        for b in todo:
            node_id = room.best([n for n in chosen if n in room.nodes], b) or room.best(ids, b)
            if node_id is None:
                return None
            room.take(node_id, b)
            if node_id not in chosen:
                chosen.append(node_id)
            out[b.index] = node_id
        return out
    # SPREAD: a node not used yet by the group when one fits, else any node.
    used = set(placed.values())
    for b in todo:
        node_id = room.best([n for n in ids if n not in used], b) or room.best(ids, b)
        if node_id is None:
            return None
        room.take(node_id, b)
        used.add(node_id)
        out[b.index] = node_id
    return out


def _take_if_fits(room: _Room, node_id: bytes, bundle: BundleRequest) -> bool:
    if not room.fits(node_id, bundle):
        return False
    room.take(node_id, bundle)
    return True


def _all_fit(nodes, use_total, fraction, node_id, bundles) -> bool:
    trial = _Room(nodes, use_total, fraction)
    return all(_take_if_fits(trial, node_id, b) for b in bundles)


def _pack_score(room: _Room, node_id: bytes, bundles: list[BundleRequest]) -> float:
    if node_id not in room.nodes:
        return 2.0
    total = ResourceSet()
    for b in bundles:
        total = total + b.resources
    return room.score_after(node_id, BundleRequest(-1, total))


def schedule(strategy: str, bundles: list[BundleRequest], nodes: list[NodeCapacity],
             placed: dict[int, bytes] | None = None, max_cpu_fraction_per_node: float = 1.0) -> dict[int, bytes] | None:
    """{bundle index: node id} for `bundles` on the nodes' free resources, or None if they do not fit now."""
    if not bundles:
        return {}
    return _place(strategy, bundles, nodes, placed or {}, False, max_cpu_fraction_per_node)


def feasible(strategy: str, bundles: list[BundleRequest], nodes: list[NodeCapacity],
             placed: dict[int, bytes] | None = None, max_cpu_fraction_per_node: float = 1.0) -> bool:
    """Whether the bundles would fit if the nodes had nothing else on them."""
    if not bundles:
        return True
    return _place(strategy, bundles, nodes, placed or {}, True, max_cpu_fraction_per_node) is not None
