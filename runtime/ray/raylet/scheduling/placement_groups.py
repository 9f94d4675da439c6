"""Placement groups on a raylet: the GCS's two-phase bundle reservation, and where a lease placed in a bundle goes.

The GCS reserves a group's bundles with `PREPARE_BUNDLES` on every chosen node, then `COMMIT_BUNDLES`
(`LocalResourceManager` does the accounting); `CANCEL_BUNDLES` gives bundles back, after a failed prepare
elsewhere or when the group is removed — then the leases holding the group's resources here end (their
workers are killed, as Ray's raylet does) and queued requests for a removed group fail.

A request placed in a group (`ray._common.placement_groups.task_resources` renamed its resources) can only run
on a node holding its bundle: `decide` picks the node whose view shows the bundle's resources, this one first.
When no node shows them yet (the group is pending, rescheduling, or committed a moment ago and the view lags),
it asks the GCS where the group's bundles are; a removed or unknown group fails the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ray._common import framing
from ray._common import placement_groups as pgs
from ray._common.resources import ResourceSet
from ray.protocol import messages as msg
from ray.protocol import placement_group_pb2 as ppb
from ray.protocol.messages import handles
from ray.raylet.scheduling import policy
from ray.raylet.scheduling.local_resources import LocalResourceManager

logger = logging.getLogger(__name__)

LOOKUP_TTL_S = 1.0  # how long an answer of the GCS about a group is trusted
MAX_REMOVED_KEPT = 10_000  # removed groups remembered (requests for them fail at once)

# What `lookup` returns: (state name, {bundle index: node hex id}), or None for a group the GCS does not know.
GroupInfo = tuple[str, dict[int, str]] | None


@dataclass
class PlacementDecision(policy.Decision):
    """A policy decision for a request placed in a group: a node, or wait (the group is not placed yet),
    or fail (`failed` says why)."""

    wait: bool = False
    failed: str = ""


def removed_message(pg_hex: str) -> str:
    return f"Required placement group {pg_hex} is removed."


async def lookup_in_gcs(gcs, pg_hex: str) -> GroupInfo:
    """The group's state and where its bundles are, from the GCS (`gcs`: an AsyncGcsClient)."""
    reply = await gcs.call(gcs.stubs.placement_group.GetPlacementGroup,
                           ppb.GetPlacementGroupRequest(placement_group_id=bytes.fromhex(pg_hex)), timeout_s=10)
    if not reply.found:
        return None
    data = reply.placement_group_table_data
    state = ppb.PlacementGroupTableData.PlacementGroupState.Name(data.state)
    return state, {b.bundle_index: b.node_id.hex() for b in data.bundles if b.node_id}


class PlacementGroupBundles:
    def __init__(self, node_id: str, resources: LocalResourceManager,
                 lookup: Callable[[str], Awaitable[GroupInfo]], on_change: Callable[[], None],
                 end_leases: Callable[[str, bool], None]) -> None:
        self.node_id = node_id
        self.resources = resources
        self._lookup = lookup  # asks the GCS
        self._on_change = on_change  # schedule queued requests again
        self._end_leases = end_leases  # end every lease holding a group's resources here
        self._known: dict[str, tuple[float, GroupInfo]] = {}
        self._asking: set[str] = set()
        self._removed: dict[str, None] = {}  # removed groups, oldest first (at most MAX_REMOVED_KEPT)
        # Bundle messages handled so far: each resource report carries it, so the GCS can tell a report
        # made before its latest bundle change here (stale) from one made after.
        self.messages_handled = 0

    # ------------------------------------------------------------------ the GCS's two phases
    @handles(msg.PREPARE_BUNDLES)
    def prepare_bundles(self, conn: framing.Connection, body: msg.Bundles) -> bool:
        bundles = [(b["placement_group_id"], b["bundle_index"], b["resources"]) for b in body["bundles"]]
        self.messages_handled += 1
        ok = self.resources.prepare_bundles(bundles)
        if not ok:
            logger.info("Could not prepare bundles %s: they do not fit in %s now.",
                        [(pg[:8], i) for pg, i, _ in bundles], self.resources.available)
        return ok

    @handles(msg.COMMIT_BUNDLES)
    def commit_bundles(self, conn: framing.Connection, body: msg.Bundles) -> bool:
        self.messages_handled += 1
        ok = self.resources.commit_bundles([(b["placement_group_id"], b["bundle_index"]) for b in body["bundles"]])
        for b in body["bundles"]:
            self._known.pop(b["placement_group_id"], None)
        self._on_change()
        return ok

    @handles(msg.CANCEL_BUNDLES)
    def cancel_bundles(self, conn: framing.Connection, body: msg.CancelBundles) -> bool:
        self.messages_handled += 1
        groups = {b["placement_group_id"] for b in body["bundles"]}
        for pg in groups:
            if any(self.resources.bundle_committed(pg, b["bundle_index"])
                   for b in body["bundles"] if b["placement_group_id"] == pg):
                self._end_leases(pg, bool(body.get("removed")))  # before their resources leave the node
            self._known.pop(pg, None)
            if body.get("removed"):
                self._forget_removed(pg)
        for b in body["bundles"]:
            self.resources.return_bundle(b["placement_group_id"], b["bundle_index"])
        self._on_change()
        return True

    # ------------------------------------------------------------------ where a lease goes
    def decide(self, request: ResourceSet, views: list[policy.NodeView], pg_hex: str, index: int,
               local_only: bool) -> PlacementDecision:
        """`views`: the nodes the request may go to (only this one for a spilled-back request)."""
        if pg_hex in self._removed:
            return PlacementDecision(None, failed=removed_message(pg_hex))
        marker = (pgs.indexed_name(pgs.BUNDLE_RESOURCE, pg_hex, index) if index >= 0
                  else pgs.wildcard_name(pgs.BUNDLE_RESOURCE, pg_hex))
        with_bundle = [v for v in views if v.alive and v.total.get(marker) > 0]
        holders = [v for v in with_bundle if request.is_subset_of(v.total)]
        if holders:
            # This node first, then a node with the bundle's resources free now.
            holders.sort(key=lambda v: (v.node_id != self.node_id, not request.is_subset_of(v.available)))
            best = holders[0]
            return PlacementDecision(best.node_id, request.is_subset_of(best.available))
        if with_bundle or local_only:
            # The bundle is placed but the request can never fit in it (infeasible, as in Ray), or this is a
            # spilled-back request whose bundle is not here (any more): the owner asks its own raylet again.
            return PlacementDecision(None)
        known = self._known.get(pg_hex)
        if known is None or time.monotonic() - known[0] > LOOKUP_TTL_S:
            self._ask(pg_hex)
            if known is None:
                return PlacementDecision(None, wait=True)
        info = known[1]
        if info is None or info[0] == "REMOVED":
            return PlacementDecision(None, failed=removed_message(pg_hex))
        state, nodes = info
        if state == "CREATED":
            # Committed a moment ago: the cluster view has not caught up with the bundle's node yet.
            wanted = [n for i, n in nodes.items() if index < 0 or i == index]
            for node_id in wanted:
                if any(v.node_id == node_id for v in views):
                    return PlacementDecision(node_id, False)
            if index >= 0 and nodes and not wanted:
                return PlacementDecision(None, failed=(
                    f"placement group bundle index {index} is invalid for placement group {pg_hex}"))
            # A bundle that no resources of ours could fit would wait forever: it is not feasible.
        return PlacementDecision(None, wait=True)

    def _ask(self, pg_hex: str) -> None:
        if pg_hex in self._asking:
            return
        self._asking.add(pg_hex)

        async def ask() -> None:
            try:
                info = await self._lookup(pg_hex)
            except Exception as e:  # the GCS is unreachable: ask again on the next look
                logger.warning("Could not look up placement group %s: %s", pg_hex, e)
                await asyncio.sleep(0.5)
                return
            finally:
                self._asking.discard(pg_hex)
            self._known[pg_hex] = (time.monotonic(), info)
            if info is None or info[0] == "REMOVED":
                self._forget_removed(pg_hex)
            self._on_change()

        asyncio.get_running_loop().create_task(ask())

    def _forget_removed(self, pg_hex: str) -> None:
        """Remembers a removed group, and forgets everything else about it."""
        self._known.pop(pg_hex, None)
        self._removed[pg_hex] = None
        if len(self._removed) > MAX_REMOVED_KEPT:
            del self._removed[next(iter(self._removed))]
