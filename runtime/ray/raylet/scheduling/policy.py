"""Ray's hybrid scheduling policy and node affinity, over a snapshot of the cluster's resources.

Hybrid (src/ray/raylet/scheduling/policy/hybrid_scheduling_policy.cc): nodes are scored by their
utilization after placing the request; the local node wins while its score is under the spread threshold;
otherwise the lowest-scored node with the request available now, else the lowest feasible one (the task
queues there). No feasible node at all means infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass

from ray._common.resources import ResourceSet, utilization


@dataclass
class NodeView:
    node_id: str
    total: ResourceSet
    available: ResourceSet
    address: str  # the raylet's framed TCP address
    alive: bool = True


@dataclass
class Decision:
    node_id: str | None  # None: infeasible everywhere
    available_now: bool = False


def _score(node: NodeView, request: ResourceSet) -> float:
    try:
        after = node.available - request
    except ValueError:
        return 1.0
    return utilization(node.total, after)


def hybrid(request: ResourceSet, nodes: list[NodeView], local_id: str, spread_threshold: float = 0.5) -> Decision:
    feasible = [n for n in nodes if n.alive and request.is_subset_of(n.total)]
    if not feasible:
        return Decision(None)
    available = [n for n in feasible if request.is_subset_of(n.available)]
    local = next((n for n in available if n.node_id == local_id), None)
    if local is not None and _score(local, request) <= spread_threshold:
        return Decision(local.node_id, True)
    if available:
        # Lowest utilization; local node first among equals (stable sort keeps it in front).
        ordered = sorted(available, key=lambda n: (round(_score(n, request), 4), n.node_id != local_id))
        return Decision(ordered[0].node_id, True)
    local_feasible = next((n for n in feasible if n.node_id == local_id), None)
    if local_feasible is not None:
        return Decision(local_id, False)
    return Decision(min(feasible, key=lambda n: utilization(n.total, n.available)).node_id, False)


def node_affinity(request: ResourceSet, nodes: list[NodeView], target: str, soft: bool, local_id: str,
                  spread_threshold: float = 0.5) -> Decision:
    node = next((n for n in nodes if n.node_id == target and n.alive), None)
    if node is not None and request.is_subset_of(node.total):
        return Decision(node.node_id, request.is_subset_of(node.available))
    if soft:
        return hybrid(request, nodes, local_id, spread_threshold)
    return Decision(None)


def spread(request: ResourceSet, nodes: list[NodeView], counter: int) -> Decision:
    feasible = sorted((n for n in nodes if n.alive and request.is_subset_of(n.total)), key=lambda n: n.node_id)
    if not feasible:
        return Decision(None)
    available = [n for n in feasible if request.is_subset_of(n.available)] or feasible
    node = available[counter % len(available)]
    return Decision(node.node_id, request.is_subset_of(node.available))
