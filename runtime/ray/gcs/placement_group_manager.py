"""GCS placement groups: registration (names per namespace), scheduling with Ray's two-phase commit, removal,
rescheduling when a node dies, and cleanup when the creating job ends (detached groups outlive it).

A new group is PENDING and queued. The scheduler takes the queue in order: `bundle_policy` picks a node for
each bundle not placed yet from the nodes' last reported resources; the GCS sends `PREPARE_BUNDLES` to every
chosen raylet at once; if one refuses (or cannot be reached), the others give back what they prepared
(`CANCEL_BUNDLES`) and the group stays queued. When all prepared, the group is PREPARED and `COMMIT_BUNDLES`
makes the bundles usable; then it is CREATED and waiters (`pg.ready()`, `pg.wait()`) return. A group that
does not fit waits and is tried again as resources change; one that no node could ever hold is reported
(the GCS log, the driver's warning, `placement_group_table()` stats, `ray status`'s demands) and waits for a
node that can. When a node dies, the groups with bundles there go RESCHEDULING and those bundles are placed
again (the others stay where they are); removal gives every bundle back, which ends the leases in them, and
kills the group's actors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from ray._common import framing
from ray._common import placement_groups as pgs
from ray._common.resources import GRANULARITY, ResourceSet
from ray.gcs import bundle_policy
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg
from ray.protocol import placement_group_pb2 as ppb
from ray.protocol import placement_group_pb2_grpc
from ray.protocol.messages import Dispatcher

logger = logging.getLogger(__name__)

PLACEMENT_GROUP_TABLE = "PLACEMENT_GROUP"
PLACEMENT_GROUP_CHANNEL = "PLACEMENT_GROUP"
RETRY_PERIOD_S = 0.1  # queued groups are looked at this often (resources change with every report)
MAX_RETRY_DELAY_S = 5.0
RAYLET_TIMEOUT_S = 10

Data = ppb.PlacementGroupTableData
Stats = ppb.PlacementGroupStats


class _Group:
    def __init__(self, data: Data) -> None:
        self.data = data
        self.changed = asyncio.Event()
        self.warned_infeasible = False
        self.infeasible = False
        # The cluster view it last did not fit in: tried again when the view changes, or after `retry_at`
        # anyway (a refused prepare may have had another cause), backing off up to MAX_RETRY_DELAY_S.
        self.failed_on: int | None = None
        self.retry_at = 0.0
        self.retry_delay = RETRY_PERIOD_S

    def failed(self, view: int) -> None:
        self.failed_on = view
        self.retry_at = time.monotonic() + self.retry_delay
        self.data.stats.highest_retry_delay_ms = max(self.data.stats.highest_retry_delay_ms,
                                                     self.retry_delay * 1000)
        self.retry_delay = min(self.retry_delay * 2, MAX_RETRY_DELAY_S)

    @property
    def hex(self) -> str:
        return self.data.placement_group_id.hex()

    def strategy(self) -> str:
        return ppb.PlacementStrategy.Name(self.data.strategy)


class PlacementGroupManager(placement_group_pb2_grpc.PlacementGroupInfoGcsServiceServicer):
    def __init__(self, gcs_server) -> None:
        self.gcs = gcs_server
        self._groups: dict[bytes, _Group] = {}
        self._names: dict[tuple[str, str], bytes] = {}  # (namespace, name) -> id, for live groups
        self._queue: list[bytes] = []  # PENDING / RESCHEDULING, in arrival order
        self._wakeup = asyncio.Event()
        self._pool = framing.ConnectionPool(Dispatcher(msg.GCS))
        self._task: asyncio.Task | None = None
        # Each node as placement sees it, with the report it was built from: rebuilt when a new report replaces
        # that one (building walks every group resource of the node), brought up to date when this manager
        # reserves or commits (`_edited_capacity`).
        self._capacity: dict[bytes, tuple[pb.NodeResources, bundle_policy.NodeCapacity]] = {}
        gcs_server.nodes.on_node_dead.append(self._on_node_dead)
        gcs_server.jobs.on_job_finished.append(self._on_job_finished)
        gcs_server.nodes.placement_group_load = self.demands

    # ------------------------------------------------------------------ lifecycle
    async def load(self) -> None:
        """Groups kept in storage (a restarted GCS): live ones are known again; unplaced ones are queued."""
        for value in (await self.gcs.storage.get_all(PLACEMENT_GROUP_TABLE)).values():
            group = _Group(Data.FromString(value))
            self._groups[group.data.placement_group_id] = group
            if group.data.state != Data.REMOVED:
                if group.data.name:
                    self._names[(group.data.ray_namespace, group.data.name)] = group.data.placement_group_id
                if group.data.state != Data.CREATED:
                    self._queue.append(group.data.placement_group_id)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # ------------------------------------------------------------------ rpc
    async def CreatePlacementGroup(self, request, context):
        spec = request.placement_group_spec
        key = (spec.ray_namespace, spec.name)
        if spec.name and key in self._names:
            return ppb.CreatePlacementGroupReply(code=1, error_message=(
                f"Failed to create placement group '{spec.placement_group_id.hex()}' because name '{spec.name}' "
                "already exists."))
        data = Data()
        data.CopyFrom(spec)
        data.state = Data.PENDING
        data.placement_group_creation_timestamp_ms = int(time.time() * 1000)
        data.stats.creation_request_received_ns = time.monotonic_ns()
        data.stats.scheduling_state = Stats.QUEUED
        for bundle in data.bundles:
            bundle.ClearField("node_id")
        group = _Group(data)
        self._groups[data.placement_group_id] = group
        if spec.name:
            self._names[key] = data.placement_group_id
        await self._save(group)
        self._queue.append(data.placement_group_id)
        warning = ""
        if not self._feasible(group):
            group.infeasible = group.warned_infeasible = True
            warning = self._infeasible_message(group)
            logger.warning(warning)
        self._wakeup.set()
        return ppb.CreatePlacementGroupReply(warning=warning)

    async def RemovePlacementGroup(self, request, context):
        group = self._groups.get(request.placement_group_id)
        if group is not None and group.data.state != Data.REMOVED:
            await self.remove(group)
        return ppb.RemovePlacementGroupReply()

    async def GetPlacementGroup(self, request, context):
        group = self._groups.get(request.placement_group_id)
        if group is None:
            return ppb.GetPlacementGroupReply(found=False)
        return ppb.GetPlacementGroupReply(found=True, placement_group_table_data=group.data)

    async def GetNamedPlacementGroup(self, request, context):
        pg_id = self._names.get((request.ray_namespace, request.name))
        if pg_id is None:
            return ppb.GetNamedPlacementGroupReply(found=False)
        return ppb.GetNamedPlacementGroupReply(found=True, placement_group_table_data=self._groups[pg_id].data)

    async def GetAllPlacementGroup(self, request, context):
        return ppb.GetAllPlacementGroupReply(placement_group_table_data=[g.data for g in self._groups.values()])

    async def WaitPlacementGroupUntilReady(self, request, context):
        group = self._groups.get(request.placement_group_id)
        deadline = time.monotonic() + (request.timeout_s if request.timeout_s > 0 else 30)
        while True:
            if group is None:
                return ppb.WaitPlacementGroupUntilReadyReply(
                    error_message=f"Placement group {request.placement_group_id.hex()} does not exist.")
            if group.data.state == Data.CREATED:
                return ppb.WaitPlacementGroupUntilReadyReply(ready=True)
            if group.data.state == Data.REMOVED:
                return ppb.WaitPlacementGroupUntilReadyReply(
                    error_message=f"Placement group {group.hex} is removed before it's ready.")
            left = deadline - time.monotonic()
            if left <= 0:
                return ppb.WaitPlacementGroupUntilReadyReply()
            try:
                await asyncio.wait_for(group.changed.wait(), timeout=left)
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ state
    async def _save(self, group: _Group) -> None:
        await self.gcs.storage.put(PLACEMENT_GROUP_TABLE, group.data.placement_group_id, group.data.SerializeToString())

    async def _set_state(self, group: _Group, state: int) -> None:
        group.data.state = state
        await self._save(group)
        self.gcs.publisher.publish(PLACEMENT_GROUP_CHANNEL, group.data.placement_group_id,
                                   group.data.SerializeToString())
        group.changed.set()
        group.changed = asyncio.Event()

    def demands(self) -> list[pb.PlacementGroupDemand]:
        """Groups waiting for bundles, for the demand snapshot (`GetAllResourceUsage`) and `ray status`."""
        out = []
        for pg_id in self._queue:
            group = self._groups.get(pg_id)
            if group is None or group.data.state not in (Data.PENDING, Data.RESCHEDULING):
                continue
            out.append(pb.PlacementGroupDemand(
                placement_group_id=pg_id, strategy=group.strategy(), infeasible=group.infeasible,
                state=Data.PlacementGroupState.Name(group.data.state),
                bundles=[pb.ResourceDemand(shape=dict(b.unit_resources), num_ready_requests_queued=1)
                         for b in group.data.bundles if not b.node_id]))
        return out

    # ------------------------------------------------------------------ scheduling
    async def _run(self) -> None:
        while True:
            if self._queue:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=RETRY_PERIOD_S)
                except TimeoutError:
                    pass
            else:
                await self._wakeup.wait()
            self._wakeup.clear()
            view = self._view_fingerprint()
            for pg_id in list(self._queue):
                group = self._groups.get(pg_id)
                if group is None or group.data.state in (Data.REMOVED, Data.CREATED):
                    self._dequeue(pg_id)
                    continue
                if group.failed_on == view and time.monotonic() < group.retry_at:
                    continue
                try:
                    if await self._schedule(group):
                        self._dequeue(pg_id)
                except Exception:  # noqa: BLE001 - one group's trouble must not stop the others'
                    logger.exception("Scheduling placement group %s failed; it stays queued.", group.hex)

    def _dequeue(self, pg_id: bytes) -> None:
        if pg_id in self._queue:
            self._queue.remove(pg_id)

    def _view_fingerprint(self, nodes: list[bundle_policy.NodeCapacity] | None = None) -> int:
        """Changes when what placement can use changes (a group that did not fit is tried again then)."""
        return hash(tuple(sorted((n.node_id, n.available, n.group_cpus) for n in nodes or self._nodes())))

    def _nodes(self) -> list[bundle_policy.NodeCapacity]:
        alive = {n.node_id: n for n in self.gcs.nodes.alive_nodes()}
        capacity = {}
        for node_id, usage in self.gcs.nodes.usage().items():
            info = alive.get(node_id)
            if info is None or not self.gcs.nodes.schedulable(node_id):  # draining nodes take no new bundles
                continue
            cached = self._capacity.get(node_id)
            if cached is None or cached[0] is not usage:
                cached = (usage, bundle_policy.node_capacity(node_id, usage.resources_total,
                                                             usage.resources_available, info.labels))
            capacity[node_id] = cached
        self._capacity = capacity
        return [node for _, node in capacity.values()]

    def _unplaced(self, group: _Group) -> list[bundle_policy.BundleRequest]:
        return [bundle_policy.BundleRequest(b.bundle_index, ResourceSet(dict(b.unit_resources)), dict(b.label_selector))
                for b in group.data.bundles if not b.node_id]

    def _placed(self, group: _Group) -> dict[int, bytes]:
        return {b.bundle_index: b.node_id for b in group.data.bundles if b.node_id}

    def _feasible(self, group: _Group) -> bool:
        return bundle_policy.feasible(group.strategy(), self._unplaced(group), self._nodes(), self._placed(group),
                                      group.data.max_cpu_fraction_per_node or 1.0)

    def _infeasible_message(self, group: _Group) -> str:
        shapes: dict[str, int] = {}
        for b in group.data.bundles:
            shape = str({k: float(v) for k, v in sorted(b.unit_resources.items())})
            shapes[shape] = shapes.get(shape, 0) + 1
        requests = ", ".join(f"{shape}*{count}" for shape, count in shapes.items())
        return (f"No available node types can fulfill placement group requests (detail=placement group "
                f"{group.hex}, strategy {group.strategy()}): {requests}. Add suitable node types to this "
                "cluster to resolve this issue.")

    async def _schedule(self, group: _Group) -> bool:
        """One attempt; True when the group needs no more scheduling (created or removed)."""
        data = group.data
        stats = data.stats
        if not stats.scheduling_started_time_ns:
            stats.scheduling_started_time_ns = time.monotonic_ns()
        stats.scheduling_attempt += 1
        stats.scheduling_state = Stats.SCHEDULING_STARTED
        nodes = self._nodes()
        fraction = data.max_cpu_fraction_per_node or 1.0
        view = self._view_fingerprint(nodes)
        assignment = bundle_policy.schedule(group.strategy(), self._unplaced(group), nodes, self._placed(group),
                                            fraction)
        if assignment is None:
            group.failed(view)
            group.infeasible = not bundle_policy.feasible(group.strategy(), self._unplaced(group), nodes,
                                                          self._placed(group), fraction)
            stats.scheduling_state = Stats.INFEASIBLE if group.infeasible else Stats.NO_RESOURCES
            if group.infeasible and not group.warned_infeasible:
                group.warned_infeasible = True
                logger.warning(self._infeasible_message(group))
            return False
        group.infeasible = False
        by_node: dict[bytes, list[msg.Bundle]] = {}
        for b in data.bundles:
            if b.bundle_index in assignment:
                by_node.setdefault(assignment[b.bundle_index], []).append(
                    {"placement_group_id": group.hex, "bundle_index": b.bundle_index,
                     "resources": dict(b.unit_resources)})
        # Phase one: every node sets its bundles aside, or nobody keeps anything.
        prepared = await self._on_each(msg.PREPARE_BUNDLES, by_node)
        self._reserve_in_view(by_node, prepared, sign=-1)
        if data.state == Data.REMOVED or not all(prepared.values()):
            ok = {n: b for n, b in by_node.items() if prepared.get(n)}
            await self._on_each(msg.CANCEL_BUNDLES, ok, removed=data.state == Data.REMOVED)
            self._reserve_in_view(ok, {n: True for n in ok}, sign=+1)
            stats.scheduling_state = Stats.NO_RESOURCES
            # The view was wrong about a node: try again once its next report (or its death) changes the view.
            group.failed(view)
            return data.state == Data.REMOVED
        rescheduling = data.state == Data.RESCHEDULING
        data.state = Data.PREPARED  # for the next moment only: not stored, not published
        # Phase two.
        committed = await self._on_each(msg.COMMIT_BUNDLES, by_node)
        if data.state == Data.REMOVED or not all(committed.values()):
            await self._on_each(msg.CANCEL_BUNDLES, by_node, removed=data.state == Data.REMOVED)
            self._reserve_in_view(by_node, {n: True for n in by_node}, sign=+1)
            if data.state == Data.REMOVED:
                return True
            stats.scheduling_state = Stats.FAILED_TO_COMMIT_RESOURCES
            await self._set_state(group, Data.RESCHEDULING if rescheduling else Data.PENDING)
            return False
        for b in data.bundles:
            if b.bundle_index in assignment:
                b.node_id = assignment[b.bundle_index]
        self._committed_in_view(group.hex, by_node, sign=+1)
        group.failed_on, group.retry_delay = None, RETRY_PERIOD_S
        now = time.monotonic_ns()
        stats.scheduling_state = Stats.FINISHED
        stats.scheduling_latency_us = (now - stats.scheduling_started_time_ns) // 1000
        stats.end_to_end_creation_latency_us = (now - stats.creation_request_received_ns) // 1000
        data.placement_group_final_bundle_placement_timestamp_ms = int(time.time() * 1000)
        await self._set_state(group, Data.CREATED)
        return True

    async def _on_each(self, message: str, by_node: dict[bytes, list[msg.Bundle]], removed: bool = False
                       ) -> dict[bytes, bool]:
        """Sends `message` with each node's bundles to its raylet, all at once; {node: its answer} (False when
        it could not be reached)."""
        async def one(node_id: bytes, bundles: list[msg.Bundle]) -> bool:
            info = self.gcs.nodes.node(node_id)
            if info is None or info.state != pb.GcsNodeInfo.ALIVE:
                return False
            body: dict = {"bundles": bundles}
            if removed:
                body["removed"] = True
            try:
                conn = await self._pool.get(f"{info.node_manager_address}:{info.raylet_tcp_port}")
                self.gcs.nodes.bundle_message_sent(node_id)
                return bool(await asyncio.wait_for(conn.request(message, body), RAYLET_TIMEOUT_S))
            except (OSError, TimeoutError, framing.ConnectionLost, framing.RemoteError) as e:
                logger.warning("%s to node %s failed: %s", message, node_id.hex(), e)
                return False

        nodes = list(by_node)
        answers = await asyncio.gather(*(one(n, by_node[n]) for n in nodes))
        return dict(zip(nodes, answers, strict=True))

    def _reserve_in_view(self, by_node: dict[bytes, list[msg.Bundle]], done: dict[bytes, bool], sign: int) -> None:
        """Keeps the GCS's view of free resources right until the next report (the next group scheduled
        before it must not count on what this one took)."""
        usage = self.gcs.nodes.usage()
        for node_id, bundles in by_node.items():
            u = usage.get(node_id)
            if u is None or not done.get(node_id):
                continue
            for b in bundles:
                for name, amount in b["resources"].items():
                    u.resources_available[name] = max(0.0, u.resources_available.get(name, 0.0) + sign * amount)
            self._edited_capacity(node_id, u)

    def _committed_in_view(self, pg_hex: str, by_node: dict[bytes, list[msg.Bundle]], sign: int) -> None:
        """Committed bundles' renamed resources in the GCS's view at once (`ray.available_resources()` right
        after `pg.ready()` shows them, as Ray's does); the raylets' next reports say the same."""
        usage = self.gcs.nodes.usage()
        for node_id, bundles in by_node.items():
            u = usage.get(node_id)
            if u is None:
                continue
            cpus = 0.0
            for b in bundles:
                cpus += b["resources"].get("CPU", 0.0)
                indexed, wildcard = pgs.bundle_node_resources(pg_hex, b["bundle_index"], b["resources"])
                for name, amount in [*indexed.items(), *wildcard.items()]:
                    for table in (u.resources_total, u.resources_available):
                        left = table.get(name, 0.0) + sign * amount
                        if left > 0:
                            table[name] = left
                        else:
                            table.pop(name, None)
            self._edited_capacity(node_id, u, group_cpus=round(sign * cpus * GRANULARITY))

    def _edited_capacity(self, node_id: bytes, usage: pb.NodeResources, group_cpus: int = 0) -> None:
        """Brings the node's cached placement view up to an edit of its report, in O(own resources) rather than
        rebuilding it from every group resource."""
        cached = self._capacity.get(node_id)
        if cached is None or cached[0] is not usage:
            return
        node = cached[1]
        available = ResourceSet({name: usage.resources_available[name] for name in node.total.names()
                                 if name in usage.resources_available})
        self._capacity[node_id] = (usage, dataclasses.replace(
            node, available=available, group_cpus=max(0, node.group_cpus + group_cpus)))

    # ------------------------------------------------------------------ removal, node death, job end
    async def remove(self, group: _Group) -> None:
        data = group.data
        if data.name and self._names.get((data.ray_namespace, data.name)) == data.placement_group_id:
            del self._names[(data.ray_namespace, data.name)]
        data.stats.scheduling_state = Stats.REMOVED
        await self._set_state(group, Data.REMOVED)
        self._dequeue(data.placement_group_id)
        by_node: dict[bytes, list[msg.Bundle]] = {}
        for b in data.bundles:
            if b.node_id:
                by_node.setdefault(b.node_id, []).append(
                    {"placement_group_id": group.hex, "bundle_index": b.bundle_index,
                     "resources": dict(b.unit_resources)})
        # Ray's removal is asynchronous: the raylets give the bundles back (ending the leases in them) after
        # the reply. The view counts them free now; a group scheduled onto them next is prepared after the
        # cancel on the same connection, so in order.
        asyncio.get_running_loop().create_task(self._on_each(msg.CANCEL_BUNDLES, by_node, removed=True))
        self._reserve_in_view(by_node, {n: True for n in by_node}, sign=+1)
        self._committed_in_view(group.hex, by_node, sign=-1)
        await self.gcs.actors.on_placement_group_removed(group.hex)
        self._wakeup.set()  # what it held may let a queued group fit

    async def _on_node_dead(self, node_id: bytes) -> None:
        for group in list(self._groups.values()):
            data = group.data
            if data.state == Data.REMOVED:
                continue
            lost = [b for b in data.bundles if b.node_id == node_id]
            if not lost:
                continue
            for b in lost:
                b.ClearField("node_id")
            logger.warning("Node %s died with %d bundle(s) of placement group %s; rescheduling them.",
                           node_id.hex(), len(lost), group.hex)
            if data.state in (Data.CREATED, Data.PREPARED):
                data.stats.scheduling_state = Stats.QUEUED
                await self._set_state(group, Data.RESCHEDULING)
            if data.placement_group_id not in self._queue:
                self._queue.append(data.placement_group_id)
        self._wakeup.set()

    async def _on_job_finished(self, job_id: bytes) -> None:
        for group in list(self._groups.values()):
            data = group.data
            if data.creator_job_id == job_id and not data.is_detached and data.state != Data.REMOVED:
                data.creator_job_dead = True
                await self.remove(group)

    async def on_actor_dead(self, actor_id: bytes) -> None:
        """A group created inside an actor shares its fate, unless detached (Ray's creator_actor_dead)."""
        for group in list(self._groups.values()):
            data = group.data
            if data.creator_actor_id == actor_id and not data.is_detached and data.state != Data.REMOVED:
                data.creator_actor_dead = True
                await self.remove(group)


def add_placement_group_service(gcs_server, grpc_server) -> PlacementGroupManager:
    manager = PlacementGroupManager(gcs_server)
    placement_group_pb2_grpc.add_PlacementGroupInfoGcsServiceServicer_to_server(manager, grpc_server)
    return manager
