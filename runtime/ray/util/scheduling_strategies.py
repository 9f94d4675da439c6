"""Scheduling strategies accepted by `.options(scheduling_strategy=...)`, and their wire form for the raylet."""

from __future__ import annotations

_INVALID_NODE_ID = ("Invalid node_id '{}'. Node ID must be a valid hex string. To get a list of all nodes and their "
                    "IDs in your cluster, use ray.nodes(). See "
                    "https://docs.ray.io/en/latest/ray-core/miscellaneous.html#node-information for more details.")


class NodeAffinitySchedulingStrategy:
    """Run the task or actor on the node `node_id` (a hex string, as `ray.nodes()[i]["NodeID"]` and
    `ray.get_runtime_context().get_node_id()` give it, or a `ray.NodeID`). If that node is dead, unknown or
    too small, `soft=False` fails the task/actor (TaskUnschedulableError / ActorUnschedulableError) and
    `soft=True` schedules it elsewhere; while it is only busy, the task waits for it."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False):
        if not isinstance(node_id, str):
            node_id = node_id.hex()  # a NodeID
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable
        self._validate_attributes()

    def _validate_attributes(self) -> None:
        from ray._common.ids import NodeID

        try:
            node_id = NodeID.from_hex(self.node_id)
        except Exception as e:
            raise ValueError(_INVALID_NODE_ID.format(self.node_id)) from e
        if node_id.is_nil():
            raise ValueError(_INVALID_NODE_ID.format(self.node_id))
        if self._spill_on_unavailable and not self.soft:
            raise ValueError("_spill_on_unavailable cannot be set when soft is False. Please set soft to True to use "
                             "_spill_on_unavailable.")
        if self._fail_on_unavailable and self.soft:
            raise ValueError("_fail_on_unavailable cannot be set when soft is True. Please set soft to False to use "
                             "_fail_on_unavailable.")


class PlacementGroupSchedulingStrategy:
    def __init__(self, placement_group, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


STRATEGY_TYPES = (type(None), str, PlacementGroupSchedulingStrategy, NodeAffinitySchedulingStrategy)


def check_option(options: dict) -> None:
    """`scheduling_strategy=` of `@ray.remote(...)`/`.options(...)` must be one of STRATEGY_TYPES (TypeError, as
    Ray); an unknown string is refused at `.remote()` (`to_wire`)."""
    if "scheduling_strategy" in options:
        from ray._private.options import check_type

        check_type("scheduling_strategy", options["scheduling_strategy"], STRATEGY_TYPES)


def to_wire(strategy) -> dict:
    """The strategy as the raylet understands it (checked at `.remote()`, as Ray does)."""
    if strategy is None or strategy == "DEFAULT":
        return {}
    if strategy == "SPREAD":
        return {"type": "SPREAD"}
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        wire = {"type": "NODE_AFFINITY", "node_id": strategy.node_id, "soft": bool(strategy.soft)}
        if strategy._spill_on_unavailable:
            wire["spill_on_unavailable"] = True
        if strategy._fail_on_unavailable:
            wire["fail_on_unavailable"] = True
        return wire
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        # The request's resources must be renamed too: ray.util.placement_group.resolve_scheduling does both.
        return {"type": "PLACEMENT_GROUP", "placement_group_id": strategy.placement_group.id.hex(),
                "bundle_index": strategy.placement_group_bundle_index,
                "capture_child_tasks": bool(strategy.placement_group_capture_child_tasks)}
    raise ValueError(f"Invalid scheduling_strategy value {strategy}. Valid values are "
                     '["DEFAULT" | "SPREAD" | PlacementGroupSchedulingStrategy | NodeAffinitySchedulingStrategy]')
