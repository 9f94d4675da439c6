"""Leases of this node's workers: lease requests, where each one runs (here, spilled back, queued, infeasible), grants and returns.

Bottom-up scheduling: owners (drivers, workers, the GCS for actors) ask their own raylet first.
`request_lease` answers `{"granted": ...}`, `{"spillback": ...}` (a node with room, from the cluster view),
`{"rejected": True}` (a spilled-back request that no longer fits here) or `{"failed": ...}`. A granted lease
holds the request's resources until `return_lease`; a worker blocked in `ray.get` lends its CPUs back.
Requests that fit nowhere wait as infeasible and are looked at again after every resource report; their
shapes, with the queued ones', are the demand the autoscaler reads from the GCS.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from ray._common import framing
from ray._common import placement_groups as pgs
from ray._common.config import config
from ray._common.resources import ResourceSet
from ray.exceptions import RuntimeEnvSetupError
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg
from ray.protocol.messages import handles
from ray.raylet.runtime_envs import RuntimeEnvProvider
from ray.raylet.scheduling import policy
from ray.raylet.scheduling.cluster_view import ClusterResourceView
from ray.raylet.scheduling.local_resources import LocalResourceManager
from ray.raylet.scheduling.placement_groups import PlacementDecision, PlacementGroupBundles, removed_message
from ray.raylet.worker_pool import DEAD, LEASED, Worker, WorkerPool, env_key


@dataclass
class LeaseRequest:
    resources: ResourceSet
    env_key: str
    job_id: str
    runtime_env: dict
    strategy: dict
    grant_or_reject: bool
    conn: framing.Connection
    future: asyncio.Future
    is_actor: bool = False
    warned_infeasible: bool = False
    # Actors need their placement resources to be scheduled but hold only these while running (Ray's
    # default actor: 1 CPU to place, 0 to run).
    running_resources: ResourceSet | None = None


@dataclass
class Lease:
    lease_id: int
    worker: Worker | None  # None while its worker is being started
    resources: ResourceSet
    gpu_ids: list[str]
    owner: framing.Connection
    blocked: bool = False
    is_actor: bool = False
    placement_group: str = ""  # hex id of the group whose bundle it runs in
    request: LeaseRequest | None = None  # while its worker starts


class LeaseManager:
    def __init__(self, node_id: str, resources: LocalResourceManager, cluster: ClusterResourceView,
                 pool: WorkerPool, runtime_envs: RuntimeEnvProvider, start_slots: asyncio.Semaphore) -> None:
        self.node_id = node_id
        self.resources = resources
        self.cluster = cluster
        self.pool = pool
        self.runtime_envs = runtime_envs
        # Shared with the node manager's prestart: at most this many workers boot at once on the node.
        self._start_slots = start_slots
        self._pending: list[LeaseRequest] = []
        self._infeasible: list[LeaseRequest] = []
        self._leases: dict[int, Lease] = {}
        self._lease_ids = itertools.count(1)
        self._spread_counter = 0
        self.placement_groups: PlacementGroupBundles | None = None  # set by the node manager

    # ------------------------------------------------------------------ protocol
    @handles(msg.REQUEST_LEASE)
    def request_lease(self, conn: framing.Connection, body: msg.RequestLease) -> asyncio.Future:
        runtime_env = body.get("runtime_env") or {}
        fut = asyncio.get_running_loop().create_future()
        req = LeaseRequest(
            resources=ResourceSet(body["resources"]), env_key=env_key(body["job_id"], runtime_env),
            job_id=body["job_id"], runtime_env=runtime_env, strategy=body.get("strategy") or {},
            grant_or_reject=body.get("grant_or_reject", False), conn=conn, future=fut,
            is_actor=body.get("is_actor", False),
            running_resources=ResourceSet(body["running_resources"]) if "running_resources" in body else None,
        )
        self._pending.append(req)
        self.schedule()
        return fut

    @handles(msg.RETURN_LEASE)
    def return_lease(self, conn: framing.Connection, body: msg.ReturnLease) -> None:
        self._return(body["lease_id"], kill=body.get("kill", False))

    @handles(msg.NOTIFY_BLOCKED)
    def notify_blocked(self, conn: framing.Connection, body: msg.LeaseRef) -> None:
        lease = self._leases.get(body["lease_id"])
        if lease is not None and not lease.blocked and lease.resources.get("CPU"):
            lease.blocked = True
            self.resources.lend_cpu(lease.resources.get("CPU"))
            self.schedule()

    @handles(msg.NOTIFY_UNBLOCKED)
    def notify_unblocked(self, conn: framing.Connection, body: msg.LeaseRef) -> None:
        lease = self._leases.get(body["lease_id"])
        if lease is not None and lease.blocked:
            lease.blocked = False
            self.resources.reclaim_cpu(lease.resources.get("CPU"))

    # ------------------------------------------------------------------ what the node tells the leases
    def on_cluster_update(self) -> None:
        """A resource report came back: infeasible requests get another look against the new view."""
        self._infeasible, retry = [], self._infeasible
        self._pending.extend(retry)
        self.schedule()

    def on_worker_dead(self, worker: Worker) -> None:
        lease = self._leases.pop(worker.lease_id, None) if worker.lease_id else None
        if lease is not None:
            self._release(lease)
            self.schedule()

    def on_owner_closed(self, conn: framing.Connection) -> None:
        """Leases held by an owner that went away: its queued requests are dropped (first, so that freed
        resources do not start workers for it), their workers killed, resources freed. A lease whose worker
        is still starting is returned when the start ends (`_attach_worker` sees the closed connection)."""
        self._pending = [r for r in self._pending if r.conn is not conn]
        self._infeasible = [r for r in self._infeasible if r.conn is not conn]
        for lease in list(self._leases.values()):
            if lease.owner is conn and lease.worker is not None:
                self.pool.kill(lease.worker)

    def end_placement_group_leases(self, pg_hex: str, removed: bool) -> None:
        """The group's bundles leave this node: its leases end and their workers die (Ray's raylet does the
        same); a lease whose worker is still starting answers its owner instead (a removed group fails the
        request, else the owner asks again), and is returned when the start ends."""
        for lease in list(self._leases.values()):
            if lease.placement_group != pg_hex:
                continue
            req = lease.request
            if req is not None and not req.future.done():
                req.future.set_result({"cancelled": {"type": msg.CANCELLED_PLACEMENT_GROUP_REMOVED,
                                                     "message": removed_message(pg_hex)}}
                                      if removed else {"rejected": True})
            if lease.worker is None:
                continue
            del self._leases[lease.lease_id]
            self._release(lease)
            if lease.worker.state == LEASED:
                self.pool.kill(lease.worker)

    def demands(self) -> list[pb.ResourceDemand]:
        """The shapes this node cannot place now (queued) or anywhere (infeasible), counted: the autoscaler's input."""
        shapes: dict[tuple, list[int]] = {}
        for req, infeasible in [(r, False) for r in self._pending] + [(r, True) for r in self._infeasible]:
            key = tuple(sorted(req.resources.to_dict().items()))
            counts = shapes.setdefault(key, [0, 0])
            counts[int(infeasible)] += 1
        return [pb.ResourceDemand(shape=dict(k), num_ready_requests_queued=c[0], num_infeasible_requests_queued=c[1])
                for k, c in shapes.items()]

    @property
    def num_pending(self) -> int:
        return len(self._pending)

    @property
    def num_infeasible(self) -> int:
        return len(self._infeasible)

    # ------------------------------------------------------------------ scheduling
    def schedule(self) -> None:
        """Decides every pending request that can be decided now; the rest stay queued."""
        still_pending = []
        for req in self._pending:
            if req.future.done():
                continue
            decision = self._decide(req)
            if isinstance(decision, PlacementDecision) and (decision.wait or decision.failed):
                if decision.failed:  # its placement group was removed
                    req.future.set_result({"cancelled": {"type": msg.CANCELLED_PLACEMENT_GROUP_REMOVED,
                                                         "message": decision.failed}})
                else:  # its placement group is not placed yet
                    still_pending.append(req)
                continue
            if decision.node_id is None and req.grant_or_reject:
                req.future.set_result({"rejected": True})  # the owner asks its own raylet again
                continue
            if decision.node_id is None:
                self._infeasible.append(req)
                if not req.warned_infeasible:
                    req.warned_infeasible = True
                    if not req.conn.closed:
                        req.conn.notify(msg.LEASE_INFEASIBLE, {"resources": req.resources.to_dict()})
                continue
            if decision.node_id != self.node_id:
                if not self._spill_back(req, decision.node_id):
                    still_pending.append(req)
                continue
            if not self.resources.fits(req.resources):
                still_pending.append(req)
                continue
            self._grant(req)
        self._pending = still_pending

    def _decide(self, req: LeaseRequest) -> policy.Decision:
        views = self.cluster.nodes()
        if req.grant_or_reject:
            views = [v for v in views if v.node_id == self.node_id]
        cfg = config()
        strategy = req.strategy
        kind = strategy.get("type", "DEFAULT")
        if kind == "NODE_AFFINITY":
            return policy.node_affinity(req.resources, views, strategy["node_id"], strategy.get("soft", False),
                                        self.node_id, cfg.scheduler_spread_threshold)
        if kind == pgs.STRATEGY_TYPE:
            return self.placement_groups.decide(req.resources, views, strategy["placement_group_id"],
                                                strategy.get("bundle_index", -1), req.grant_or_reject)
        if kind == "SPREAD":
            self._spread_counter += 1
            return policy.spread(req.resources, views, self._spread_counter)
        return policy.hybrid(req.resources, views, self.node_id, cfg.scheduler_spread_threshold)

    def _spill_back(self, req: LeaseRequest, node_id: str) -> bool:
        """Answers the owner with the raylet of `node_id`; False while that raylet's address is unknown."""
        target = self.cluster.node(node_id)
        if not target.address:
            return False
        # Count the request against the target so a burst does not all spill to one node.
        try:
            target.available = target.available - req.resources
        except ValueError:
            pass
        req.future.set_result({"spillback": target.address, "node_id": node_id})
        return True

    # ------------------------------------------------------------------ grants and returns
    def _grant(self, req: LeaseRequest) -> None:
        held = req.running_resources if req.running_resources is not None else req.resources
        gpu_ids = self.resources.allocate(held)
        in_group = pgs.placement_group_of(req.strategy)
        lease = Lease(next(self._lease_ids), None, held, gpu_ids, req.conn, is_actor=req.is_actor,
                      placement_group=in_group[0] if in_group else "", request=req)
        self._leases[lease.lease_id] = lease
        asyncio.get_running_loop().create_task(self._attach_worker(req, lease))

    async def _attach_worker(self, req: LeaseRequest, lease: Lease) -> None:
        worker = self.pool.pop_idle(req.env_key)
        try:
            if worker is None:
                ctx = await self.runtime_envs.acquire(req.env_key, req.runtime_env, req.job_id)
                # At most `maximum_startup_concurrency` (= CPUs) workers boot at once, as in Ray: a burst of
                # 100 actors must not starve this process (and its GCS heartbeats) of CPU.
                async with self._start_slots:
                    worker = self.pool.pop_idle(req.env_key)
                    if worker is not None:
                        self.runtime_envs.release(req.env_key)  # an idle worker of this env turned up
                    else:
                        try:
                            worker = await self.pool.start_worker(req.env_key, req.job_id, req.runtime_env, ctx)
                        except BaseException:
                            self.runtime_envs.release(req.env_key)
                            raise
                        lease.worker = worker
                        worker.lease_id = lease.lease_id
                        worker.state = LEASED
                        await asyncio.wait_for(worker.registered, config().worker_register_timeout_seconds)
        except Exception as e:
            if self._leases.pop(lease.lease_id, None) is not None:
                self._release(lease)
            if not req.future.done():
                message = e.error_message if isinstance(e, RuntimeEnvSetupError) else f"Could not start a worker: {e}"
                req.future.set_result({"failed": message})
            self.schedule()
            return
        if worker.state == DEAD:  # died between registering and now: queue the request again
            if self._leases.pop(lease.lease_id, None) is not None:
                self._release(lease)
            self._pending.append(req)
            self.schedule()
            return
        lease.worker = worker
        lease.request = None
        worker.lease_id = lease.lease_id
        worker.state = LEASED
        worker.is_actor = req.is_actor
        if req.future.done() or req.conn.closed:
            self._return(lease.lease_id, kill=req.conn.closed)
            return
        req.future.set_result({"granted": {
            "lease_id": lease.lease_id, "worker_id": worker.worker_id, "address": worker.address,
            "node_id": self.node_id, "gpu_ids": lease.gpu_ids, "pid": worker.proc.pid,
            "resources": req.resources.to_dict(),
        }})

    def _release(self, lease: Lease) -> None:
        self.resources.free(lease.resources, lease.gpu_ids, cpu_lent=lease.blocked)

    def _return(self, lease_id: int, kill: bool = False) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return
        self._release(lease)
        worker = lease.worker
        if worker is not None and worker.state == LEASED:
            if kill or lease.is_actor:
                self.pool.kill(worker)
            else:
                self.pool.push_idle(worker)
        self.schedule()
