"""This node's resources as its scheduler holds them: the total, what is free now, and which GPU ids are free.

Ray's LocalResourceManager. GPUs are instances, not only a quantity: a lease is given GPU ids (for its
worker's CUDA_VISIBLE_DEVICES), and a fractional GPU shares one id with other fractional leases.

Placement group bundles (Ray's PlacementGroupResourceManager) are reserved in two phases: `prepare_bundles`
sets a bundle's resources (and GPU ids) aside, all of a request or none; `commit_bundles` turns each into the
node's renamed resources (`CPU_group_<i>_<pg>`, `CPU_group_<pg>`, `bundle_group_...`, see
`ray._common.placement_groups`) that tasks placed in the bundle lease, and GPU leases in a bundle are given
the bundle's own GPU ids; `return_bundle` undoes either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ray._common import placement_groups as pgs
from ray._common.resources import GRANULARITY, ResourceSet


@dataclass
class _Bundle:
    resources: ResourceSet  # what it set aside, in the node's own names
    gpu_ids: list[str]
    committed: bool = False
    # After commit: the renamed resources it added (indexed and wildcard), and its GPU ids' free shares.
    added: dict[str, int] = field(default_factory=dict)
    gpu_free: dict[str, int] = field(default_factory=dict)
    gpu_share: dict[str, int] = field(default_factory=dict)


def _gpu_slots(count: float, visible_gpus: str | None) -> dict[str, int]:
    """GPU id -> its free share in fixed point (GRANULARITY is one whole GPU). The ids are the raylet's own
    CUDA_VISIBLE_DEVICES when it has one, so a worker's ids stay valid in the node's numbering."""
    ids = visible_gpus.split(",") if visible_gpus else [str(i) for i in range(int(count))]
    return {gpu: GRANULARITY for gpu in ids[: int(count)]}


class LocalResourceManager:
    def __init__(self, resources: dict[str, float], visible_gpus: str | None = None) -> None:
        self.total = ResourceSet(resources)
        self.available = ResourceSet(resources)
        self._gpu_free = _gpu_slots(resources.get("GPU", 0), visible_gpus)
        self._store_used = 0  # bytes in the node's object store (the node manager keeps it current)
        self._bundles: dict[tuple[str, int], _Bundle] = {}  # (group hex id, index) -> bundle

    def fits(self, request: ResourceSet) -> bool:
        return request.is_subset_of(self.available)

    def allocate(self, held: ResourceSet) -> list[str]:
        """Takes `held` from what is free; returns the GPU ids that go with it."""
        gpus = held.get("GPU")
        gpu_ids = self._take_gpus(gpus) if gpus or not self._bundles else self._take_bundle_gpus(held)
        self.available = self.available - held
        return gpu_ids

    def free(self, held: ResourceSet, gpu_ids: list[str], cpu_lent: bool = False) -> None:
        """Gives back what `allocate` took. CPUs already lent back (their worker was blocked) are not added twice;
        resources of a bundle returned meanwhile are gone and are not given back."""
        gpus = held.get("GPU")
        if cpu_lent:
            held = held - ResourceSet({"CPU": held.get("CPU")})
        total = self.total._amounts
        if any(name not in total for name in held._amounts):
            held = ResourceSet._from_fixed({k: v for k, v in held._amounts.items() if k in total})
        self.available = self.available + held
        if gpus or not gpu_ids:
            self._give_gpus(gpus, gpu_ids)
        else:
            self._give_bundle_gpus(held, gpu_ids)

    def lend_cpu(self, cpu: float) -> None:
        """A leased worker blocks in ray.get: its CPUs may run other work meanwhile."""
        self.available = self.available + ResourceSet({"CPU": cpu})

    def reclaim_cpu(self, cpu: float) -> None:
        """... and takes them back when it wakes. This may overcommit for a moment (CPU below zero), as Ray
        does; later grants wait until usage drops."""
        amounts = dict(self.available._amounts)
        amounts["CPU"] = amounts.get("CPU", 0) - round(cpu * GRANULARITY)
        self.available = ResourceSet._from_fixed(amounts)

    def set_object_store_used(self, used_bytes: int) -> None:
        """The store's usage: like Ray, the node's available object_store_memory is its capacity minus what the
        store holds (the hybrid policy scores it, `ray status` shows it); leases never take it."""
        self._store_used = max(0, int(used_bytes))

    def view_available(self) -> ResourceSet:
        """What is free as the scheduler and the GCS see it: the leases' availability, with object_store_memory
        reduced by the store's usage."""
        total_store = self.total.get("object_store_memory")
        if not self._store_used or not total_store:
            return self.available
        amounts = dict(self.available._amounts)
        used = min(round(self._store_used), round(total_store))  # bytes are whole units
        amounts["object_store_memory"] = max(0, amounts.get("object_store_memory", 0) - used * GRANULARITY)
        return ResourceSet._from_fixed(amounts)

    def reported_available(self) -> dict[str, float]:
        """What is free, for the GCS: an overcommitted quantity is reported as zero."""
        return {k: max(v, 0.0) for k, v in self.view_available().to_dict().items()}

    def _take_gpus(self, amount: float) -> list[str]:
        if not amount:
            return []
        fixed = round(amount * GRANULARITY)
        if fixed < GRANULARITY:
            for gpu, free in self._gpu_free.items():
                if free >= fixed:
                    self._gpu_free[gpu] -= fixed
                    return [gpu]
            return []
        whole = [g for g, free in self._gpu_free.items() if free == GRANULARITY][: fixed // GRANULARITY]
        for g in whole:
            self._gpu_free[g] = 0
        return whole

    def _give_gpus(self, amount: float, gpu_ids: list[str]) -> None:
        fixed = round(amount * GRANULARITY)
        for g in gpu_ids:
            self._gpu_free[g] = min(GRANULARITY, self._gpu_free[g] + (fixed if fixed < GRANULARITY else GRANULARITY))

    # ------------------------------------------------------------------ placement group bundles
    def prepare_bundles(self, bundles: list[tuple[str, int, dict[str, float]]]) -> bool:
        """Sets the bundles' resources aside, all of them or none (False: they do not fit now). A bundle
        already prepared or committed here counts as done (the GCS may ask again)."""
        new = [(pg, i, ResourceSet(r)) for pg, i, r in bundles if (pg, i) not in self._bundles]
        need = ResourceSet()
        for _, _, res in new:
            need = need + res
        if not need.is_subset_of(self.available):
            return False
        whole_gpus = sum(1 for free in self._gpu_free.values() if free == GRANULARITY)
        if sum(int(res.get("GPU")) for _, _, res in new) > whole_gpus:
            return False
        for pg, i, res in new:
            self._bundles[(pg, i)] = _Bundle(res, self._take_gpus(res.get("GPU")))
            self.available = self.available - res
        return True

    def commit_bundles(self, keys: list[tuple[str, int]]) -> bool:
        """Prepared bundles become resources tasks can lease. False if one of them was not prepared here."""
        if any(key not in self._bundles for key in keys):
            return False
        for key in keys:
            bundle = self._bundles[key]
            if bundle.committed:
                continue
            indexed, wildcard = pgs.bundle_node_resources(key[0], key[1], bundle.resources.to_dict())
            added = ResourceSet(indexed)._amounts
            for name, amount in ResourceSet(wildcard)._amounts.items():
                added[name] = added.get(name, 0) + amount
            self._change(added, clip=False)
            bundle.added, bundle.committed = added, True
            gpus = round(bundle.resources.get("GPU") * GRANULARITY)
            for gpu in bundle.gpu_ids:
                bundle.gpu_free[gpu] = bundle.gpu_share[gpu] = min(gpus, GRANULARITY)
        return True

    def return_bundle(self, pg_hex: str, index: int) -> bool:
        """Gives a bundle back: its renamed resources leave the node, what it set aside is free again. Leases
        still holding its resources should be ended first (their share is not given back twice)."""
        bundle = self._bundles.pop((pg_hex, index), None)
        if bundle is None:
            return False
        if bundle.committed:
            self._change({k: -v for k, v in bundle.added.items()}, clip=True)
        self.available = self.available + bundle.resources
        self._give_gpus(bundle.resources.get("GPU"), bundle.gpu_ids)
        return True

    def bundles(self) -> list[tuple[str, int]]:
        return list(self._bundles)

    def bundle_committed(self, pg_hex: str, index: int) -> bool:
        bundle = self._bundles.get((pg_hex, index))
        return bundle is not None and bundle.committed

    def _change(self, delta: dict[str, int], clip: bool) -> None:
        """Adds fixed-point `delta` to the total and to what is free; a name whose total reaches zero is gone.
        `clip`: what is free never goes below zero (leases may still hold part of what leaves)."""
        total, available = dict(self.total._amounts), dict(self.available._amounts)
        for name, amount in delta.items():
            total[name] = total.get(name, 0) + amount
            left = available.get(name, 0) + amount
            available[name] = max(left, 0) if clip else left
            if total[name] <= 0:
                total.pop(name)
                available.pop(name, None)
        self.total, self.available = ResourceSet._from_fixed(total), ResourceSet._from_fixed(available)

    def _bundle_of(self, held: ResourceSet) -> list[_Bundle]:
        """The committed bundles a lease of group GPUs takes its ids from: its own bundle when it names an
        index, else any bundle of its group on this node."""
        wildcard_pg = None
        for name in held.names():
            base, pg, index = pgs.parse_resource(name)
            if base != "GPU" or pg is None:
                continue
            if index is not None:
                bundle = self._bundles.get((pg, index))
                return [bundle] if bundle is not None and bundle.committed else []
            wildcard_pg = pg
        if wildcard_pg is None:
            return []
        return [b for (p, _), b in self._bundles.items() if p == wildcard_pg and b.committed]

    def _group_gpu_amount(self, held: ResourceSet) -> int:
        for name in held.names():
            base, pg, _ = pgs.parse_resource(name)
            if base == "GPU" and pg is not None:
                return round(held.get(name) * GRANULARITY)
        return 0

    def _take_bundle_gpus(self, held: ResourceSet) -> list[str]:
        fixed = self._group_gpu_amount(held)
        if not fixed:
            return []
        for bundle in self._bundle_of(held):
            if fixed < GRANULARITY:
                for gpu, free in bundle.gpu_free.items():
                    if free >= fixed:
                        bundle.gpu_free[gpu] -= fixed
                        return [gpu]
                continue
            whole = [g for g, free in bundle.gpu_free.items() if free == GRANULARITY][: fixed // GRANULARITY]
            if len(whole) == fixed // GRANULARITY:
                for g in whole:
                    bundle.gpu_free[g] = 0
                return whole
        return []

    def _give_bundle_gpus(self, held: ResourceSet, gpu_ids: list[str]) -> None:
        fixed = self._group_gpu_amount(held)
        for bundle in self._bundle_of(held):
            if all(g in bundle.gpu_free for g in gpu_ids) and all(
                    bundle.gpu_free[g] < bundle.gpu_share[g] for g in gpu_ids):
                for g in gpu_ids:
                    bundle.gpu_free[g] = min(bundle.gpu_share[g], bundle.gpu_free[g] + (
                        fixed if fixed < GRANULARITY else GRANULARITY))
                return
