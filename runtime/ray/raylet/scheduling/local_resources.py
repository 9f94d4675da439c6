"""This node's resources as its scheduler holds them: the total, what is free now, and which GPU ids are free.

Ray's LocalResourceManager. GPUs are instances, not only a quantity: a lease is given GPU ids (for its
worker's CUDA_VISIBLE_DEVICES), and a fractional GPU shares one id with other fractional leases.
"""

from __future__ import annotations

from ray._common.resources import GRANULARITY, ResourceSet


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

    def fits(self, request: ResourceSet) -> bool:
        return request.is_subset_of(self.available)

    def allocate(self, held: ResourceSet) -> list[str]:
        """Takes `held` from what is free; returns the GPU ids that go with it."""
        gpu_ids = self._take_gpus(held.get("GPU"))
        self.available = self.available - held
        return gpu_ids

    def free(self, held: ResourceSet, gpu_ids: list[str], cpu_lent: bool = False) -> None:
        """Gives back what `allocate` took. CPUs already lent back (their worker was blocked) are not added twice."""
        gpus = held.get("GPU")
        if cpu_lent:
            held = held - ResourceSet({"CPU": held.get("CPU")})
        self.available = self.available + held
        self._give_gpus(gpus, gpu_ids)

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
