"""Scheduling strategies accepted by `.options(scheduling_strategy=...)`."""

from __future__ import annotations


class NodeAffinitySchedulingStrategy:
    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False):
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable


class PlacementGroupSchedulingStrategy:
    def __init__(self, placement_group, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


def to_wire(strategy) -> dict:
    """The strategy as the raylet understands it."""
    if strategy is None or strategy == "DEFAULT":
        return {}
    if strategy == "SPREAD":
        return {"type": "SPREAD"}
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return {"type": "NODE_AFFINITY", "node_id": strategy.node_id, "soft": strategy.soft}
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        # The request's resources must be renamed too: ray.util.placement_group.resolve_scheduling does both.
        return {"type": "PLACEMENT_GROUP", "placement_group_id": strategy.placement_group.id.hex(),
                "bundle_index": strategy.placement_group_bundle_index,
                "capture_child_tasks": bool(strategy.placement_group_capture_child_tasks)}
    raise ValueError(
        f"Invalid scheduling_strategy {strategy!r}: use 'DEFAULT', 'SPREAD' or NodeAffinitySchedulingStrategy."
    )
