"""Ray's scheduling policies, as pure functions over a snapshot of the cluster's resources (no I/O, no state).

- `hybrid` (src/ray/raylet/scheduling/policy/hybrid_scheduling_policy.cc): each node is scored by its
  critical-resource utilization (the highest used fraction of CPU, memory and object_store_memory; GPUs and
  custom resources are not scored), and a score under `spread_threshold` counts as 0. Among the nodes that
  can run the request now (else, among those that could run it at all: it queues there) the preferred node
  (the local one, or the one holding the task's data) wins when its score is the best; otherwise one of the
  `k` lowest-scored nodes, chosen at random, with k = max(top_k_absolute, int(top_k_fraction * #nodes)).
  CPU-only requests first try nodes without GPUs (`avoid_gpu_nodes`), and only nodes available now.
- `spread` (spread_scheduling_policy.cc): round-robin over the nodes sorted by id from a persistent index,
  first over the nodes available now, then over the feasible ones.
- `node_affinity` (node_affinity_scheduling_policy.cc): the target node when it is alive and feasible (and,
  with `spill_on_unavailable` / `fail_on_unavailable`, available now); else soft falls back to hybrid and
  hard is unschedulable: the lease is cancelled and the task or actor fails.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ray._common.resources import ResourceSet

# Ray's critical resources (cluster_resource_data.cc, CalculateCriticalResourceUtilization).
CRITICAL_RESOURCES = ("CPU", "memory", "object_store_memory")

UNSCHEDULABLE_NODE_AFFINITY = ("The node specified via NodeAffinitySchedulingStrategy doesn't exist any more or is "
                               "infeasible, and soft=False was specified.")

_rng = random.Random()


@dataclass
class NodeView:
    node_id: str
    total: ResourceSet
    available: ResourceSet
    address: str  # the raylet's framed TCP address
    alive: bool = True


@dataclass
class Decision:
    node_id: str | None  # None: no node now (infeasible everywhere, or unschedulable)
    available_now: bool = False
    # Set when the request can never run (hard node affinity to a dead, unknown or too small node): its lease
    # is cancelled and the task or actor fails, instead of waiting as infeasible.
    unschedulable: str = ""


@dataclass(frozen=True)
class HybridOptions:
    spread_threshold: float = 0.5
    top_k_fraction: float = 0.2
    top_k_absolute: int = 1
    avoid_gpu_nodes: bool = True


def critical_utilization(total: ResourceSet, available: ResourceSet) -> float:
    """The highest used fraction of the node's CPU, memory and object store (resources it has none of skipped)."""
    worst = 0.0
    for name in CRITICAL_RESOURCES:
        t = total.get(name)
        if t > 0:
            worst = max(worst, 1 - available.get(name) / t)
    return worst


def _score(node: NodeView, spread_threshold: float) -> float:
    score = critical_utilization(node.total, node.available)
    return 0.0 if score < spread_threshold else score


def _pick(candidates: list[tuple[NodeView, float]], preferred_id: str | None, k: int, rng: random.Random) -> NodeView:
    """The preferred node when its score is the best, else one of the k best at random (nodes in id order, then
    stably by score, as Ray does)."""
    candidates.sort(key=lambda c: c[1])
    best = candidates[0][1]
    for node, score in candidates:
        if node.node_id == preferred_id and score <= best:
            return node
    top = candidates[: max(1, min(k, len(candidates)))]
    return top[0][0] if len(top) == 1 else rng.choice(top)[0]


def _hybrid_pass(request: ResourceSet, nodes: list[NodeView], preferred_id: str | None, options: HybridOptions,
                 require_available: bool, avoid_local: bool, non_gpu_only: bool, rng: random.Random) -> Decision:
    available: list[tuple[NodeView, float]] = []
    feasible: list[tuple[NodeView, float]] = []
    alive = [n for n in nodes if n.alive]
    for node in sorted(alive, key=lambda n: n.node_id):
        if avoid_local and node.node_id == preferred_id:
            continue
        if non_gpu_only and node.total.get("GPU") > 0:
            continue
        if not request.is_subset_of(node.total):
            continue
        score = _score(node, options.spread_threshold)
        if request.is_subset_of(node.available):
            available.append((node, score))
        elif not require_available:
            feasible.append((node, score))
    k = max(options.top_k_absolute, int(len(alive) * options.top_k_fraction))
    if available:
        return Decision(_pick(available, preferred_id, k, rng).node_id, True)
    if feasible:
        return Decision(_pick(feasible, preferred_id, k, rng).node_id, False)
    return Decision(None)


def hybrid(request: ResourceSet, nodes: list[NodeView], preferred_id: str | None,
           options: HybridOptions = HybridOptions(), require_available: bool = False, avoid_local: bool = False,
           rng: random.Random = _rng) -> Decision:
    """Ray's default policy. `preferred_id` is the local node (or the node holding the task's arguments)."""
    if options.avoid_gpu_nodes and not request.get("GPU"):
        # A CPU-only request first looks for a node without GPUs that can run it now (keeping GPU nodes free).
        decision = _hybrid_pass(request, nodes, preferred_id, options, True, avoid_local, True, rng)
        if decision.node_id is not None:
            return decision
    return _hybrid_pass(request, nodes, preferred_id, options, require_available, avoid_local, False, rng)


def spread(request: ResourceSet, nodes: list[NodeView], next_index: int, require_available: bool = False,
           avoid_local_id: str | None = None) -> tuple[Decision, int]:
    """Round-robin from `next_index` over the nodes in id order: the next one available now, else the next
    feasible one. Returns the decision and the index to start from next time."""
    ring = sorted(nodes, key=lambda n: n.node_id)
    if not ring:
        return Decision(None), next_index
    for want_available in (True, False):
        if not want_available and require_available:
            break
        for step in range(len(ring)):
            i = (next_index + step) % len(ring)
            node = ring[i]
            if not node.alive or node.node_id == avoid_local_id or not request.is_subset_of(node.total):
                continue
            now = request.is_subset_of(node.available)
            if want_available and not now:
                continue
            return Decision(node.node_id, now), (i + 1) % len(ring)
    return Decision(None), next_index


def node_affinity(request: ResourceSet, nodes: list[NodeView], target: str, soft: bool, preferred_id: str | None,
                  spill_on_unavailable: bool = False, fail_on_unavailable: bool = False,
                  options: HybridOptions = HybridOptions(), rng: random.Random = _rng) -> Decision:
    node = next((n for n in nodes if n.node_id == target and n.alive), None)
    if node is not None and request.is_subset_of(node.total):
        now = request.is_subset_of(node.available)
        if now or not (spill_on_unavailable or fail_on_unavailable):
            return Decision(node.node_id, now)
    if soft:
        return hybrid(request, nodes, preferred_id, options, rng=rng)
    return Decision(None, unschedulable=UNSCHEDULABLE_NODE_AFFINITY)
