"""Placement groups' names for things, shared by the GCS, the raylets, `ray status` and the public API.

A committed bundle turns into resources of its node, named as Ray names them: for bundle `i` of group `G`
(hex id) holding `{"CPU": 2}`, the node gains `CPU_group_i_G: 2` (that bundle) and `CPU_group_G: 2` (the
group's wildcard, summed over its bundles on the node), plus the markers `bundle_group_i_G: 1000` and
`bundle_group_G: 1000 x bundles`. A task placed in the group asks for the renamed resources instead of its
own (`task_resources`), so only the bundle's node can run it and it uses only the bundle's share.
"""

from __future__ import annotations

import functools
import re

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
# Ray's `PlacementGroupTableData.PlacementGroupState` names, in its enum order.
STATES = ("PENDING", "PREPARED", "CREATED", "REMOVED", "RESCHEDULING")
BUNDLE_RESOURCE = "bundle"  # Ray's PLACEMENT_GROUP_BUNDLE_RESOURCE_NAME
BUNDLE_MARKER_TOTAL = 1000.0  # what one bundle adds to `bundle_group_...`
BUNDLE_MARKER_REQUEST = 0.001  # what a task in the bundle asks of it
STRATEGY_TYPE = "PLACEMENT_GROUP"  # the scheduling strategy's "type" on the wire

# `CPU_group_0_<hex>` / `CPU_group_<hex>` (a hex id is 36 characters: 18 bytes).
_INDEXED = re.compile(r"^(.+)_group_(\d+)_([0-9a-f]{36})$")
_WILDCARD = re.compile(r"^(.+)_group_([0-9a-f]{36})$")


def indexed_name(resource: str, pg_hex: str, index: int) -> str:
    return f"{resource}_group_{index}_{pg_hex}"


def wildcard_name(resource: str, pg_hex: str) -> str:
    return f"{resource}_group_{pg_hex}"


def parse_resource(name: str) -> tuple[str, str | None, int | None]:
    """`CPU_group_1_<hex>` -> ("CPU", hex, 1); `CPU_group_<hex>` -> ("CPU", hex, None); `CPU` -> ("CPU", None, None)."""
    m = _INDEXED.match(name)
    if m:
        return m.group(1), m.group(3), int(m.group(2))
    m = _WILDCARD.match(name)
    if m:
        return m.group(1), m.group(2), None
    return name, None, None


@functools.lru_cache(maxsize=16384)  # the same names come in every report: 1.1-1.6 us each by regex, 0.05 cached
def is_group_resource(name: str) -> bool:
    return "_group_" in name and parse_resource(name)[1] is not None


def bundle_node_resources(pg_hex: str, index: int, bundle: dict[str, float]) -> tuple[dict, dict]:
    """What committing bundle `index` adds to its node: (indexed resources, wildcard resources)."""
    indexed = {indexed_name(k, pg_hex, index): v for k, v in bundle.items() if v > 0}
    indexed[indexed_name(BUNDLE_RESOURCE, pg_hex, index)] = BUNDLE_MARKER_TOTAL
    wildcard = {wildcard_name(k, pg_hex): v for k, v in bundle.items() if v > 0}
    wildcard[wildcard_name(BUNDLE_RESOURCE, pg_hex)] = BUNDLE_MARKER_TOTAL
    return indexed, wildcard


def task_resources(resources: dict[str, float], pg_hex: str, index: int) -> dict[str, float]:
    """A task's or actor's request as it runs inside the group: the group's wildcard resources, and the
    bundle's own when `index` >= 0 (both, so the wildcard count stays right), plus the bundle marker."""
    out: dict[str, float] = {}
    for name, amount in resources.items():
        if amount <= 0:
            continue
        out[wildcard_name(name, pg_hex)] = amount
        if index >= 0:
            out[indexed_name(name, pg_hex, index)] = amount
    out[wildcard_name(BUNDLE_RESOURCE, pg_hex)] = BUNDLE_MARKER_REQUEST
    if index >= 0:
        out[indexed_name(BUNDLE_RESOURCE, pg_hex, index)] = BUNDLE_MARKER_REQUEST
    return out


def original_resources(resources: dict[str, float]) -> dict[str, float]:
    """A renamed request back to the user's names (the bundle marker dropped), for messages and demand."""
    out: dict[str, float] = {}
    for name, amount in resources.items():
        base, pg, index = parse_resource(name)
        if pg is not None and (index is not None or base == BUNDLE_RESOURCE):
            continue  # counted once, under its wildcard name
        out[base] = amount
    out.pop(BUNDLE_RESOURCE, None)
    return out


def placement_group_of(strategy: dict) -> tuple[str, int] | None:
    """(group hex id, bundle index) of a wire strategy that places into a group, else None."""
    if strategy and strategy.get("type") == STRATEGY_TYPE:
        return strategy["placement_group_id"], strategy.get("bundle_index", -1)
    return None


def bundle_label_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Ray's label selector values: `v` (equal), `!v` (not equal), `in(a,b)`, `!in(a,b)`."""
    for key, want in selector.items():
        have = labels.get(key)
        negate = want.startswith("!")
        expr = want[1:] if negate else want
        if expr.startswith("in(") and expr.endswith(")"):
            values = {v.strip() for v in expr[3:-1].split(",") if v.strip()}
            ok = have in values
        else:
            ok = have == expr
        if ok == negate:
            return False
    return True
