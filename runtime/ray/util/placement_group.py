"""Placement groups: `placement_group`, `PlacementGroup`, `remove_placement_group`, `get_placement_group`,
`placement_group_table`, `get_current_placement_group` — Ray's names, defaults, states and messages.

The GCS reserves a group's bundles on the nodes (two-phase, see `ray.gcs.placement_group_manager`). A task or
actor placed in a group (`PlacementGroupSchedulingStrategy`, or the older `placement_group=` options) asks
for its bundle's renamed resources (`CPU_group_<index>_<id>`, see `ray._common.placement_groups`), so it runs
on the bundle's node within the bundle's share; `resolve_scheduling` turns the options into that request.
"""

from __future__ import annotations

import warnings
from typing import Any

from ray._common import placement_groups as pgs
from ray._common.ids import PlacementGroupID
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy, to_wire

VALID_PLACEMENT_GROUP_STRATEGIES = set(pgs.STRATEGIES)
_BUNDLES_SEEN: dict[bytes, list[dict]] = {}  # group id -> bundles, for handles made without them (a worker's)


def _core_worker():
    from ray._private.worker import global_worker

    return global_worker.ensure_connected()


class PlacementGroup:
    """A handle to a placement group."""

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID.nil())

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict] | None = None):
        self.id = id
        self.bundle_cache = bundle_cache

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    def ready(self):
        """An ObjectRef that resolves (to this PlacementGroup) once every bundle is reserved."""
        import ray

        if self.is_empty:
            return ray.put(self)
        return _core_worker().placement_groups.ready_ref(self.id.binary(), self)

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """True once the group is created, False if `timeout_seconds` pass first."""
        ready, error = _core_worker().placement_groups.wait_ready(self.id.binary(), float(timeout_seconds))
        if error:  # removed, or never known (Ray says the same for both)
            raise Exception(f"Placement group {self.id!r} does not exist.")
        return ready

    @property
    def bundle_specs(self) -> list[dict]:
        """The bundles' resources, in order."""
        self._fill_bundle_cache_if_needed()
        return self.bundle_cache

    @property
    def bundle_count(self) -> int:
        self._fill_bundle_cache_if_needed()
        return len(self.bundle_cache)

    def _fill_bundle_cache_if_needed(self) -> None:
        if self.bundle_cache:
            return
        known = _BUNDLES_SEEN.get(self.id.binary())
        if known is None:
            data = _core_worker().placement_groups.info(self.id.binary())
            known = [] if data is None else [
                {k: float(v) for k, v in b.unit_resources.items()}
                for b in sorted(data.bundles, key=lambda b: b.bundle_index)]
            _remember_bundles(self.id.binary(), known)
        self.bundle_cache = known

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()})"


def _remember_bundles(pg_id: bytes, bundles: list[dict]) -> None:
    if len(_BUNDLES_SEEN) > 1000:
        _BUNDLES_SEEN.clear()
    _BUNDLES_SEEN[pg_id] = bundles


# ---------------------------------------------------------------------------- the API
def placement_group(bundles: list[dict[str, float]], strategy: str | None = "PACK", name: str = "",
                    lifetime: str | None = None, _max_cpu_fraction_per_node: float = 1.0,
                    _soft_target_node_id: str | None = None,
                    bundle_label_selector: list[dict[str, str]] | None = None) -> PlacementGroup:
    """Asynchronously reserve `bundles` (resource dicts) with `strategy` ("PACK", "SPREAD", "STRICT_PACK",
    "STRICT_SPREAD"); `lifetime="detached"` outlives the creating job; `name` makes it findable with
    `get_placement_group` in this namespace. `_soft_target_node_id` (a hint) is accepted and not used."""
    strategy = "PACK" if strategy is None else strategy
    validate_placement_group(bundles, strategy, lifetime, _max_cpu_fraction_per_node, bundle_label_selector)
    if _soft_target_node_id and strategy != "STRICT_PACK":
        raise ValueError(f"_soft_target_node_id currently only works with STRICT_PACK but got {strategy}")
    cw = _core_worker()
    pg_id = cw.placement_groups.create(
        [{k: float(v) for k, v in b.items()} for b in bundles], strategy, name or "", lifetime == "detached",
        float(_max_cpu_fraction_per_node), bundle_label_selector or [])
    cache = [{k: float(v) for k, v in b.items()} for b in bundles]
    _remember_bundles(pg_id, cache)
    return PlacementGroup(PlacementGroupID(pg_id), bundle_cache=cache)


def validate_placement_group(bundles, strategy="PACK", lifetime=None, max_cpu_fraction_per_node=1.0,
                             bundle_label_selector=None) -> None:
    """Ray's checks and messages (ValueError)."""
    if strategy not in VALID_PLACEMENT_GROUP_STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. "
                         f"Supported strategies are: {VALID_PLACEMENT_GROUP_STRATEGIES}.")
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if len(bundles) == 0:
        raise ValueError('Bundles must be a non-empty list of resource dictionaries. For example: '
                         '`[{"CPU": 1.0}, {"GPU": 1.0}]`. Got empty list instead.')
    for bundle in bundles:
        if (not isinstance(bundle, dict) or not all(isinstance(k, str) for k in bundle)
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bundle.values())):
            raise ValueError('Bundles must be a non-empty list of resource dictionaries. For example: '
                             '`[{"CPU": 1.0}, {"GPU": 1.0}]`.')
        if len(bundle) == 0 or all(v == 0 for v in bundle.values()):
            raise ValueError(f"Bundles cannot be an empty dictionary or resources with only 0 values. "
                             f"Bundles: {bundles}")
        for name, value in bundle.items():
            if value < 0:
                raise ValueError(f"The quantity of resource {name} cannot be negative. Bundles: {bundles}")
        if "object_store_memory" in bundle:
            warnings.warn("Setting 'object_store_memory' for bundles is deprecated since it doesn't actually "
                          "reserve the required object store memory.", DeprecationWarning, stacklevel=3)
    if bundle_label_selector is not None:
        if not isinstance(bundle_label_selector, list):
            raise ValueError(f"Placement group bundle_label_selector must be a list, got "
                             f"{type(bundle_label_selector)}.")
        if bundle_label_selector and len(bundles) != len(bundle_label_selector):
            raise ValueError(f"Invalid bundle label selector {bundle_label_selector}. The length of "
                             "`bundle_label_selector` should equal the length of `bundles`.")
        for selector in bundle_label_selector:
            if (not isinstance(selector, dict) or not all(isinstance(k, str) for k in selector)
                    or not all(isinstance(v, str) for v in selector.values())):
                raise ValueError('Bundle label selector must be a list of string dictionary label selectors. '
                                 'For example: `[{ray.io/market_type": "spot"}, '
                                 '{"ray.io/accelerator-type": "A100"}]`.')
    if lifetime not in (None, "detached"):
        raise ValueError("Placement group `lifetime` argument must be either `None` or "
                         f"'detached'. Got {lifetime}.")
    if max_cpu_fraction_per_node is None:
        raise ValueError("Invalid argument `_max_cpu_fraction_per_node`: None. "
                         "_max_cpu_fraction_per_node must be a float between 0 and 1. ")
    if not 0 < max_cpu_fraction_per_node <= 1:
        raise ValueError(f"Invalid argument `_max_cpu_fraction_per_node`: {max_cpu_fraction_per_node}. "
                         "_max_cpu_fraction_per_node must be a float between 0 and 1. ")


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Asynchronously remove the group: its bundles are given back, its actors killed, its tasks' leases end."""
    assert placement_group is not None
    _core_worker().placement_groups.remove(placement_group.id.binary())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group called `placement_group_name` in this job's namespace."""
    if not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    cw = _core_worker()
    data = cw.placement_groups.info(name=placement_group_name,
                                   namespace=cw.task_context("namespace") or cw.namespace)
    if data is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return PlacementGroup(PlacementGroupID(data.placement_group_id))


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """One group's state as a dict ({} if unknown), or every group's, by hex id (Ray's shape)."""
    cw = _core_worker()
    if placement_group is not None:
        data = cw.placement_groups.info(placement_group.id.binary())
        return {} if data is None else _table_entry(data)
    return {d.placement_group_id.hex(): _table_entry(d) for d in cw.placement_groups.all()}


def _table_entry(data) -> dict[str, Any]:
    from ray.protocol import placement_group_pb2 as ppb

    stats = data.stats
    bundles = sorted(data.bundles, key=lambda b: b.bundle_index)
    return {
        "placement_group_id": data.placement_group_id.hex(),
        "name": data.name,
        "bundles": {b.bundle_index: {k: float(v) for k, v in b.unit_resources.items()} for b in bundles},
        "bundles_to_node_id": {b.bundle_index: b.node_id.hex() for b in bundles},
        "strategy": ppb.PlacementStrategy.Name(data.strategy),
        "state": pgs.STATES[data.state],
        "stats": {
            "end_to_end_creation_latency_ms": stats.end_to_end_creation_latency_us / 1000.0,
            "scheduling_latency_ms": stats.scheduling_latency_us / 1000.0,
            "scheduling_attempt": stats.scheduling_attempt,
            "highest_retry_delay_ms": stats.highest_retry_delay_ms,
            "scheduling_state": ppb.PlacementGroupStats.SchedulingState.Name(stats.scheduling_state),
        },
    }


def get_current_placement_group() -> PlacementGroup | None:
    """The group the current task or actor runs in; None in a driver or outside any group."""
    from ray._private.worker import global_worker

    cw = global_worker.core_worker
    if cw is None or global_worker.mode == "driver":
        return None
    current = cw.task_context("placement_group")
    if not current:
        return None
    return PlacementGroup(PlacementGroupID.from_hex(current["placement_group_id"]))


# ---------------------------------------------------------------------------- placing tasks and actors
def check_placement_group_index(placement_group: PlacementGroup, bundle_index: int) -> None:
    if placement_group.is_empty:
        if bundle_index != -1:
            raise ValueError("If placement group is not set, the value of bundle index must be -1.")
    elif bundle_index >= placement_group.bundle_count or bundle_index < -1:
        raise ValueError(f"placement group bundle index {bundle_index} is invalid. Valid placement group "
                         f"indexes: 0-{placement_group.bundle_count}")


def _fits_a_bundle(resources: dict[str, float], bundles: list[dict]) -> bool:
    return any(all(bundle.get(k, 0) >= v for k, v in resources.items() if k != pgs.BUNDLE_RESOURCE)
               for bundle in bundles)


def _validate_resource_shape(placement_group: PlacementGroup, resources: dict, placement_resources: dict | None,
                             task_or_actor_repr: str) -> None:
    bundles = placement_group.bundle_specs
    if not _fits_a_bundle(resources, bundles):
        raise ValueError(f"Cannot schedule {task_or_actor_repr} with the placement group because the resource "
                         f"request {resources} cannot fit into any bundles for the placement group, {bundles}.")
    if placement_resources is not None and not _fits_a_bundle(placement_resources, bundles):
        raise ValueError(f"Cannot schedule {task_or_actor_repr} with the placement group because the actor "
                         f"requires {placement_resources.get('CPU', 0)} CPU for creation, but it cannot fit into "
                         f"any bundles for the placement group, {bundles}. Consider creating a placement group "
                         "with CPU resources.")


def _current_capture() -> tuple[PlacementGroup | None, bool]:
    """The current task's group, and whether its children are placed in it too."""
    from ray._private.worker import global_worker

    cw = global_worker.core_worker
    if cw is None or global_worker.mode == "driver":
        return None, False
    current = cw.task_context("placement_group")
    if not current:
        return None, False
    return PlacementGroup(PlacementGroupID.from_hex(current["placement_group_id"])), bool(
        current.get("capture_child_tasks"))


def capture_key(cw) -> tuple | None:
    """What of the current task's context decides where its children go (a cache key for their options)."""
    current = cw.task_context("placement_group")
    return (current["placement_group_id"], current.get("capture_child_tasks")) if current else None


def resolve_scheduling(options: dict[str, Any], resources: dict[str, float],
                       placement_resources: dict[str, float] | None, task_or_actor_repr: str
                       ) -> tuple[dict, dict[str, float], dict[str, float] | None]:
    """The wire strategy and the resources to ask for (an actor's also to be placed with), from the options:
    `scheduling_strategy`, the older `placement_group` / `placement_group_bundle_index` /
    `placement_group_capture_child_tasks`, and the parent task's group when it captures its children."""
    strategy = options.get("scheduling_strategy")
    placement_group = options.get("placement_group", "default")
    if placement_group not in ("default", None) and strategy is not None:
        raise ValueError("Placement groups should be specified via the scheduling_strategy option. "
                         "The placement_group option is deprecated.")
    if strategy is not None and not isinstance(strategy, PlacementGroupSchedulingStrategy):
        return to_wire(strategy), resources, placement_resources
    bundle_index = options.get("placement_group_bundle_index", -1)
    capture = options.get("placement_group_capture_child_tasks")
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        placement_group = strategy.placement_group
        bundle_index = strategy.placement_group_bundle_index
        capture = strategy.placement_group_capture_child_tasks
    elif placement_group != "default" or bundle_index != -1 or capture:
        warnings.warn("placement_group parameter is deprecated. Use "
                      "scheduling_strategy=PlacementGroupSchedulingStrategy(...) instead.",
                      DeprecationWarning, stacklevel=4)
    current, current_captures = _current_capture()
    if capture is None:
        capture = current_captures
    if placement_group == "default":
        placement_group = current if capture and current is not None else None
    if not placement_group:
        placement_group = PlacementGroup.empty()
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"placement_group must be a PlacementGroup, got {type(placement_group)}.")
    check_placement_group_index(placement_group, bundle_index)
    if placement_group.is_empty:
        return {}, resources, placement_resources
    _validate_resource_shape(placement_group, resources, placement_resources, task_or_actor_repr)
    pg_hex = placement_group.id.hex()
    wire = {"type": pgs.STRATEGY_TYPE, "placement_group_id": pg_hex, "bundle_index": bundle_index,
            "capture_child_tasks": bool(capture)}
    return (wire, pgs.task_resources(resources, pg_hex, bundle_index),
            None if placement_resources is None else pgs.task_resources(placement_resources, pg_hex, bundle_index))
