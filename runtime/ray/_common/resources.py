"""Resource arithmetic in Ray's fixed point (1e-4 granularity), so 0.1 + 0.2 is exactly 0.3.

A `ResourceSet` maps resource names to quantities. Node totals/availability and task demands are all
`ResourceSet`s; subtraction below zero is refused rather than clamped so accounting bugs show up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

GRANULARITY = 10_000  # 1 / MIN_RESOURCE_GRANULARITY (0.0001)
MAX_RESOURCE_QUANTITY = 100e12


def to_fixed(value: float) -> int:
    if value < 0 or math.isnan(value) or value > MAX_RESOURCE_QUANTITY:
        raise ValueError(f"Resource quantities must be between 0 and {MAX_RESOURCE_QUANTITY:g}, got {value!r}.")
    return round(value * GRANULARITY)


def from_fixed(value: int) -> float:
    return value / GRANULARITY


class ResourceSet:
    __slots__ = ("_amounts",)

    def __init__(self, amounts: Mapping[str, float] | None = None):
        self._amounts: dict[str, int] = {}
        for name, value in (amounts or {}).items():
            fixed = to_fixed(float(value))
            if fixed:
                self._amounts[name] = fixed

    @classmethod
    def _from_fixed(cls, amounts: dict[str, int]) -> ResourceSet:
        rs = cls()
        rs._amounts = {k: v for k, v in amounts.items() if v}
        return rs

    def get(self, name: str) -> float:
        return from_fixed(self._amounts.get(name, 0))

    def names(self) -> Iterable[str]:
        return self._amounts.keys()

    def is_subset_of(self, other: ResourceSet) -> bool:
        """True when every quantity here fits into `other` (the task fits on the node)."""
        return all(other._amounts.get(k, 0) >= v for k, v in self._amounts.items())

    def __add__(self, other: ResourceSet) -> ResourceSet:
        out = dict(self._amounts)
        for k, v in other._amounts.items():
            out[k] = out.get(k, 0) + v
        return ResourceSet._from_fixed(out)

    def __sub__(self, other: ResourceSet) -> ResourceSet:
        out = dict(self._amounts)
        for k, v in other._amounts.items():
            left = out.get(k, 0) - v
            if left < 0:
                raise ValueError(f"Cannot take {from_fixed(v)} {k} from {from_fixed(out.get(k, 0))}.")
            out[k] = left
        return ResourceSet._from_fixed(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceSet) and other._amounts == self._amounts

    def __hash__(self) -> int:
        return hash(frozenset(self._amounts.items()))

    def to_dict(self) -> dict[str, float]:
        return {k: from_fixed(v) for k, v in sorted(self._amounts.items())}

    def __repr__(self) -> str:
        return f"ResourceSet({self.to_dict()})"


def utilization(total: ResourceSet, available: ResourceSet) -> float:
    """Highest used fraction over the node's resources (Ray's hybrid policy's score)."""
    worst = 0.0
    for name in total.names():
        t = total.get(name)
        if t > 0 and not name.startswith("node:"):
            worst = max(worst, (t - available.get(name)) / t)
    return worst


def task_resources(
    num_cpus: float | None,
    num_gpus: float | None,
    memory: float | None,
    resources: Mapping[str, float] | None,
    default_cpus: float = 1,
) -> dict[str, float]:
    """Validate and merge a task's/actor's resource options into one request dict, with Ray's errors."""
    resources = dict(resources or {})
    for reserved in ("CPU", "GPU"):
        if reserved in resources:
            raise ValueError(
                f"Use the 'num_cpus' and 'num_gpus' keyword instead of '{reserved}' in 'resources' keyword"
            )
    if num_gpus is not None and num_gpus > 1 and num_gpus != int(num_gpus):
        raise ValueError(f"num_gpus greater than 1 must be a whole number, got {num_gpus}.")
    request = {"CPU": default_cpus if num_cpus is None else num_cpus}
    if num_gpus:
        request["GPU"] = num_gpus
    if memory:
        request["memory"] = memory
    for name, value in resources.items():
        if value < 0:
            raise ValueError(f"Resource quantities must be >= 0, got {name}={value}.")
        request[name] = value
    return {k: float(v) for k, v in request.items() if v}
