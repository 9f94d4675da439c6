"""Ray's autoscaler bin packing (autoscaler v2's ResourceDemandScheduler), as a pure function.

Given the node types, the nodes (running, pending, and those just decided), the demand (tasks and actors by
shape, placement groups as gang requests) and the `request_resources()` constraint, it decides which nodes to
launch and which to terminate:

1. Enforce `max_workers` per node type and for the whole cluster (extra nodes go: those not running Ray yet
   first, then the longest idle, then the least used).
2. Launch nodes up to `min_workers` per type.
3. Fit the constraint on the nodes' *total* resources (it ignores what is in use), adding nodes if needed.
4. Fit each placement group, all its bundles or none (STRICT_PACK bundles combined into one, STRICT_SPREAD
   bundles on distinct nodes).
5. Fit tasks and actors: first on the nodes there are (each round the node that scores best takes what it
   can), then on new nodes, choosing the node type by Ray's utilisation score: (GPU nodes kept for GPU work,
   most resource types matched, highest minimum then mean utilisation where each resource weighs
   `amount * utilisation**3`), within `max_workers`.
6. Terminate nodes idle longer than the idle timeout that nothing above needs, above `min_workers`.

What cannot be placed anywhere is reported as infeasible (never launched for). Requests are handled by count
(a shape and how many), so 10,000 queued tasks of a few shapes cost what a few shapes cost; identical new nodes
are decided in batches.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from ray.autoscaler._private.config import NodeTypeConfig

EPS = 1e-9
DEMAND, CONSTRAINT = 0, 1  # what a node's resources are counted against: in-use aware, or its totals

# Node statuses while scheduling.
RUNNING = "RUNNING"  # Ray runs there (or is being started there: a pending instance)
TO_LAUNCH = "TO_LAUNCH"
TO_TERMINATE = "TO_TERMINATE"

# Why a node is launched: only DEMAND launches are limited by `upscaling_speed` (Ray launches for min_workers,
# request_resources() and placement groups at once).
MIN_WORKERS, CONSTRAINT_REASON, GANG, DEMAND_REASON = "min_workers", "request_resources", "placement_group", "demand"

# Termination causes (Ray's TerminationRequest.Cause names).
IDLE = "IDLE"
MAX_NUM_NODE_PER_TYPE = "MAX_NUM_NODE_PER_TYPE"
MAX_NUM_NODES = "MAX_NUM_NODES"


@dataclass
class Request:
    """`count` requests of one shape (positive amounts only), optionally unable to share a node with another
    request carrying the same anti-affinity label."""

    shape: dict[str, float]
    count: int = 1
    anti_affinity: str = ""
    affinity: str = ""  # STRICT_PACK: requests with the same label are combined into one

    def sort_key(self) -> tuple:
        # Ray's order: most constraints, most resource kinds, largest amounts first; then by name.
        return (1 if self.anti_affinity or self.affinity else 0, len(self.shape), sum(self.shape.values()), sorted(self.shape.items()))


@dataclass
class Gang:
    """A placement group: every request placed, or none."""

    requests: list[Request]
    details: str = ""


@dataclass
class Node:
    node_type: str
    total: dict[str, float]
    available: dict[str, float] | None = None  # None: all of total (a pending node)
    status: str = RUNNING
    is_head: bool = False
    managed: bool = True  # False: not the autoscaler's (the head, a node it did not launch): never terminated
    instance_id: str = ""
    node_id: str = ""  # empty while Ray has not started there
    idle_ms: int = 0
    labels: set[str] = field(default_factory=set)  # anti-affinity labels of the requests placed here
    placed: list[list[dict[str, float]]] = field(default_factory=lambda: [[], []])  # shapes placed, per source
    termination: tuple[str, str] | None = None  # (cause, details)
    launch_reason: str = ""  # TO_LAUNCH nodes: MIN_WORKERS, CONSTRAINT, GANG or DEMAND

    def __post_init__(self) -> None:
        avail = dict(self.total) if self.available is None else dict(self.available)
        # Resources counted against: [DEMAND] what is free now, [CONSTRAINT] the totals.
        self.free = [avail, dict(self.total)]

    @property
    def running_ray(self) -> bool:
        return bool(self.node_id)


@dataclass
class Result:
    to_launch: dict[str, int]
    to_launch_unlimited: dict[str, int]  # of to_launch: those for min_workers, the constraint and placement groups
    to_terminate: list[Node]
    infeasible: list[Request]  # tasks/actors no node type can hold (and no node has room for)
    infeasible_gangs: list[Gang]  # placement groups no set of nodes of the node types could hold
    infeasible_constraint: bool
    nodes: list[Node]  # every node after scheduling (TO_LAUNCH ones included)


@dataclass
class _Fit:
    free: dict[str, float]
    placed: list[tuple[int, int]]  # (request index, how many)
    labels: set[str]
    score: tuple


def schedule(node_types: dict[str, NodeTypeConfig], nodes: list[Node], max_workers: int | None,
             demands: list[Request] = (), gangs: list[Gang] = (), constraint: list[Request] = (),
             idle_timeout_s: float | None = None, unavailable_types: set[str] = frozenset(),
             conserve_gpu_nodes: bool = True, max_new_nodes: int | None = None) -> Result:
    """One scheduling round (see the module's docstring). `max_workers` counts worker nodes (not the head);
    `unavailable_types` are not launched this round (their last launch failed: back-off); at most
    `max_new_nodes` new nodes are planned for demand, placement groups and the constraint (what can be launched
    this round: the rest is planned next round, when these are capacity on its way)."""
    ctx = _Context(node_types, list(nodes), max_workers, unavailable_types, conserve_gpu_nodes, max_new_nodes)
    ctx.enforce_max_per_type()
    ctx.enforce_max_global()
    ctx.enforce_min_workers()
    infeasible_constraint = False
    if constraint:
        infeasible_constraint = bool(ctx.place(_copy(constraint), CONSTRAINT, CONSTRAINT_REASON))
    infeasible_gangs = []
    for gang in sorted(gangs, key=lambda g: (sum(1 for r in g.requests if r.anti_affinity), len(g.requests)),
                       reverse=True):
        requests = _combine_affinity(gang)
        saved = ctx.snapshot()
        if ctx.place(requests, DEMAND, GANG):
            ctx.restore(saved)
            infeasible_gangs.append(gang)
    left = ctx.place(_copy(demands), DEMAND, DEMAND_REASON)
    ctx.enforce_idle_termination(idle_timeout_s)
    to_launch: dict[str, int] = defaultdict(int)
    unlimited: dict[str, int] = defaultdict(int)
    for n in ctx.nodes:
        if n.status == TO_LAUNCH:
            to_launch[n.node_type] += 1
            if n.launch_reason != DEMAND_REASON:
                unlimited[n.node_type] += 1
    infeasible = [r for r in left if not ctx.fits_some_type(r)]
    infeasible_gangs = [g for g in infeasible_gangs if not _gang_ever_fits(node_types, g, conserve_gpu_nodes)]
    return Result(dict(to_launch), dict(unlimited), [n for n in ctx.nodes if n.status == TO_TERMINATE], infeasible,
                  infeasible_gangs, infeasible_constraint, ctx.nodes)


def _gang_ever_fits(node_types: dict[str, NodeTypeConfig], gang: Gang, conserve_gpu_nodes: bool) -> bool:
    """Could the gang be placed on new nodes alone, were there no limits? (Else it is infeasible: no node type
    can hold it, whatever the cluster does.)"""
    unlimited = {name: NodeTypeConfig(name, t.resources, max_workers=len(gang.requests) + 1)
                 for name, t in node_types.items()}
    ctx = _Context(unlimited, [], None, frozenset(), conserve_gpu_nodes, None)
    return not ctx.place(_combine_affinity(gang), DEMAND, GANG)


def _copy(requests) -> list[Request]:
    """Copies, identical requests merged into one with their counts (the work is per distinct request)."""
    merged: dict[tuple, Request] = {}
    for r in requests:
        if r.count <= 0:
            continue
        shape = {k: float(v) for k, v in r.shape.items() if v > 0}
        key = (tuple(sorted(shape.items())), r.anti_affinity, r.affinity)
        if key in merged:  # anti-affinity still holds: each node takes at most one of them
            merged[key].count += r.count
        else:
            merged[key] = Request(shape, r.count, r.anti_affinity, r.affinity)
    return list(merged.values())


def _combine_affinity(gang: Gang) -> list[Request]:
    """STRICT_PACK: all bundles with the same affinity label as one request (they go to one node)."""
    out: list[Request] = []
    combined: dict[str, dict[str, float]] = {}
    for r in gang.requests:
        if r.affinity:
            shape = combined.setdefault(r.affinity, {})
            for k, v in r.shape.items():
                shape[k] = shape.get(k, 0.0) + v * r.count
        else:
            out.append(r)
    return _copy(out + [Request(shape, 1) for shape in combined.values()])


def termination_order(node: Node) -> tuple:
    """Ray's: nodes not running Ray first, then the longest idle, then the least used."""
    utils = [(t - node.free[DEMAND].get(k, 0.0)) / t for k, t in node.total.items() if t > 0]
    return (node.running_ray, -node.idle_ms, sum(utils) / len(utils) if utils else 0.0)


class _Context:
    def __init__(self, node_types, nodes, max_workers, unavailable_types, conserve_gpu_nodes, max_new_nodes) -> None:
        self.node_types = node_types
        self.nodes = nodes
        self.new_nodes_left = math.inf if max_new_nodes is None else max_new_nodes
        self.max_workers = max_workers
        self.unavailable = unavailable_types
        self.conserve_gpu = conserve_gpu_nodes

    # ------------------------------------------------------------------ counts and limits
    def _live(self) -> list[Node]:
        return [n for n in self.nodes if n.status != TO_TERMINATE]

    def _count_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for n in self._live():
            if n.managed:
                counts[n.node_type] += 1
        return counts

    def _terminate(self, candidates: list[Node], how_many: int, cause: str, details: str) -> None:
        for n in sorted((c for c in candidates if c.managed), key=termination_order)[:how_many]:
            n.status = TO_TERMINATE
            n.termination = (cause, details)

    def enforce_max_per_type(self) -> None:
        by_type: dict[str, list[Node]] = defaultdict(list)
        for n in self._live():
            if n.managed:
                by_type[n.node_type].append(n)
        for node_type, nodes in by_type.items():
            config = self.node_types.get(node_type)
            limit = config.max_workers if config else 0
            if len(nodes) > limit:
                self._terminate(nodes, len(nodes) - limit, MAX_NUM_NODE_PER_TYPE,
                                f"Terminating node due to MAX_NUM_NODE_PER_TYPE: max_num_nodes_per_type={limit}")

    def enforce_max_global(self) -> None:
        if self.max_workers is None:
            return
        workers = [n for n in self._live() if n.managed]
        if len(workers) > self.max_workers:
            self._terminate(workers, len(workers) - self.max_workers, MAX_NUM_NODES,
                            f"Terminating node due to MAX_NUM_NODES: max_num_nodes={self.max_workers + 1}")

    def enforce_min_workers(self) -> None:
        counts = self._count_by_type()
        for name, config in self.node_types.items():
            if name in self.unavailable:
                continue  # backing off: no node of it is on its way, so none may be counted on
            for _ in range(max(0, config.min_workers - counts.get(name, 0))):
                self.nodes.append(Node(name, dict(config.resources), status=TO_LAUNCH, launch_reason=MIN_WORKERS))

    def _available_to_launch(self) -> dict[str, int]:
        counts = self._count_by_type()
        return {name: max(0, t.max_workers - counts.get(name, 0)) for name, t in self.node_types.items()
                if name not in self.unavailable and any(v > 0 for v in t.resources.values())}

    def _workers_room(self) -> float:
        if self.max_workers is None:
            return math.inf
        return self.max_workers - sum(1 for n in self._live() if n.managed)

    def fits_some_type(self, r: Request) -> bool:
        """Could a node of some type (or a node there is) ever hold this request?"""
        shapes = [t.resources for t in self.node_types.values()] + [n.total for n in self._live()]
        return any(all(total.get(k, 0.0) + EPS >= v for k, v in r.shape.items()) for total in shapes)

    # ------------------------------------------------------------------ state for gangs (all or nothing)
    def snapshot(self):
        return [(n, dict(n.free[0]), dict(n.free[1]), set(n.labels), [list(n.placed[0]), list(n.placed[1])])
                for n in self.nodes], len(self.nodes)

    def restore(self, saved) -> None:
        states, count = saved
        del self.nodes[count:]
        for n, free0, free1, labels, placed in states:
            n.free = [free0, free1]
            n.labels = labels
            n.placed = placed

    # ------------------------------------------------------------------ fitting
    @staticmethod
    def _floor(requests: list[Request]) -> dict[str, float]:
        """For each resource every request needs, the least any of them needs: a node with less of one of these
        left can take none of them (the fitting stops there)."""
        if not requests:
            return {}
        common = set(requests[0].shape)
        for r in requests[1:]:
            common &= r.shape.keys()
            if not common:
                return {}
        return {k: min(r.shape[k] for r in requests) for k in common}

    def _fit(self, node: Node, requests: list[Request], source: int,
             floor: dict[str, float] | None = None) -> _Fit | None:
        free = dict(node.free[source])
        labels = set()
        placed = []
        floor = self._floor(requests) if floor is None else floor
        if any(free.get(k, 0.0) + EPS < v for k, v in floor.items()):
            return None
        for i, r in enumerate(requests):
            if r.count <= 0 or (r.anti_affinity and (r.anti_affinity in node.labels or r.anti_affinity in labels)):
                continue
            k = r.count
            for name, amount in r.shape.items():
                fits = int((free.get(name, 0.0) + EPS) // amount)
                if fits < k:
                    k = fits
                    if k <= 0:
                        break
            if k <= 0:
                continue
            if r.anti_affinity:
                k = 1
                labels.add(r.anti_affinity)
            for name, amount in r.shape.items():
                free[name] = free.get(name, 0.0) - k * amount
            placed.append((i, k))
            if any(free.get(key, 0.0) + EPS < v for key, v in floor.items()):
                break  # full for every request left
        if not placed:
            return None
        return _Fit(free, placed, labels, self._score(node, free, [requests[i].shape for i, _ in placed], source))

    def _score(self, node: Node, free: dict[str, float], shapes: list[dict[str, float]], source: int) -> tuple:
        """Ray's utilisation score (higher is better)."""
        all_shapes = node.placed[source] + shapes
        kinds = {k for s in all_shapes for k, v in s.items() if v > 0}
        matching = sum(1 for k in kinds if k in node.total)
        utils = []
        for k, v in node.total.items():
            if v <= 0 or k not in free:
                continue
            util = min(max((v - free[k]) / v, 0.0), 1.0)
            utils.append(v * util**3)
        gpu_ok = True
        if self.conserve_gpu and node.total.get("GPU", 0) > 0:
            gpu_ok = any("GPU" in s for s in all_shapes)
        return (gpu_ok, matching, min(utils) if utils else 0.0, sum(utils) / len(utils) if utils else 0.0)

    def _commit(self, node: Node, fit: _Fit, requests: list[Request], source: int, times: int = 1) -> None:
        node.free[source] = fit.free
        node.labels |= fit.labels
        for i, k in fit.placed:
            node.placed[source].append(requests[i].shape)
            requests[i].count -= k * times

    @staticmethod
    def _best(results: list[tuple[Node, _Fit]]) -> tuple[Node, _Fit] | None:
        best = None
        for node, fit in results:  # the first of equal scores wins (Ray's stable sort)
            if best is None or fit.score > best[1].score:
                best = (node, fit)
        return best

    def place(self, requests: list[Request], source: int, reason: str = DEMAND_REASON) -> list[Request]:
        """Places as many requests as possible, on the nodes there are, then on new nodes; returns the rest."""
        everything = sorted(requests, key=Request.sort_key, reverse=True)
        requests = everything
        candidates = [n for n in self.nodes if n.status != TO_TERMINATE]
        while candidates:
            requests = [r for r in requests if r.count > 0]
            if not requests:
                break
            floor = self._floor(requests)
            results, seen = [], set()
            for node in candidates:
                key = (node.node_type, node.managed, tuple(sorted(node.free[source].items())),
                       frozenset(node.labels), node.status, frozenset(k for p in node.placed[source] for k in p))
                if key in seen:
                    continue  # a node just like one already tried would fit the same
                seen.add(key)
                fit = self._fit(node, requests, source, floor)
                if fit is not None:
                    results.append((node, fit))
            best = self._best(results)
            if best is None:
                break
            self._commit(best[0], best[1], requests, source)
            candidates.remove(best[0])

        available = self._available_to_launch()
        room = self._workers_room()
        while room > 0 and self.new_nodes_left > 0:
            requests = [r for r in requests if r.count > 0]
            if not requests:
                break
            floor = self._floor(requests)
            results = []
            for name, left in available.items():
                if left <= 0:
                    continue
                fresh = Node(name, dict(self.node_types[name].resources), status=TO_LAUNCH,
                             labels=set(), launch_reason=reason)
                fit = self._fit(fresh, requests, source, floor)
                if fit is not None:
                    results.append((fresh, fit))
            best = self._best(results)
            if best is None:
                break
            node, fit = best
            # While the counts stay above what every type's node took, the next node would be decided the same
            # way: decide that many at once.
            times = min(available[node.node_type], room, self.new_nodes_left)
            took = dict(fit.placed)
            for _, other in results:
                for i, k in other.placed:
                    if took.get(i):
                        times = min(times, 1 + (requests[i].count - k) // took[i])
            times = max(1, int(times))
            self._commit(node, fit, requests, source, times)
            self.nodes.append(node)
            for _ in range(times - 1):
                twin = Node(node.node_type, dict(node.total), status=TO_LAUNCH, labels=set(node.labels),
                            launch_reason=reason)
                twin.free = [dict(f) for f in node.free]
                twin.placed = [list(p) for p in node.placed]
                self.nodes.append(twin)
            available[node.node_type] -= times
            room -= times
            self.new_nodes_left -= times
        return [r for r in everything if r.count > 0]

    # ------------------------------------------------------------------ scale down
    def enforce_idle_termination(self, idle_timeout_s: float | None) -> None:
        counts = self._count_by_type()
        terminated: dict[str, int] = defaultdict(int)
        for n in sorted(self.nodes, key=termination_order):
            if n.status != RUNNING or not n.managed or not n.running_ray:
                continue
            config = self.node_types.get(n.node_type)
            timeout = config.idle_timeout_s if config and config.idle_timeout_s is not None else idle_timeout_s
            if timeout is None or n.idle_ms <= timeout * 1000:
                continue
            if n.placed[DEMAND] or n.placed[CONSTRAINT]:
                continue  # something waiting needs it
            minimum = config.min_workers if config else 0
            if counts.get(n.node_type, 0) - terminated[n.node_type] <= minimum:
                continue
            terminated[n.node_type] += 1
            n.status = TO_TERMINATE
            n.termination = (IDLE, f"idle for {n.idle_ms / 1000} secs > timeout={timeout} secs")
