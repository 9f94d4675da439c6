"""Leases of this node's workers: lease requests, where each one runs (here, spilled back, queued, infeasible), grants,
cancellations and returns.

Bottom-up scheduling: owners (drivers, workers, the GCS for actors) ask their own raylet first, or the raylet of
the node holding most of a task's argument bytes (`locality`). `request_lease` answers `{"granted": ...}`,
`{"spillback": ...}` (a better node, from the cluster view: the lease is *rescheduled* there), `{"rejected": True}`
(a spilled-back request that no longer fits here) or `{"cancelled": {"type", "message"}}`: the owner withdrew it
(`CANCEL_LEASE`, or it went away), it can never run (hard node affinity to a dead or unknown node), or its
runtime env could not be created. A granted lease holds the request's resources until `return_lease`; a worker
blocked in `ray.get` lends its CPUs back. Requests that fit nowhere wait as infeasible and are looked at again
after every resource report; their shapes, with the queued ones', are the demand the autoscaler reads from the
GCS.

What happened to each request is counted and the last ones are kept (`debug_state`): the node manager serves
them in `GET_NODE_STATS` and writes them to `<session>/logs/debug_state.txt`, as Ray's raylet does.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

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
from ray.raylet.scheduling.cluster_view import ALIVE, ClusterResourceView
from ray.raylet.scheduling.local_resources import LocalResourceManager
from ray.raylet.scheduling.placement_groups import PlacementDecision, PlacementGroupBundles, removed_message
from ray.raylet.worker_pool import DEAD, LEASED, Worker, WorkerPool, env_key

# Lease states (seed 001): granted here, rescheduled (spilled back to another node), cancelled; and rejected (a
# spilled-back request that no longer fits here: its owner asks its own raylet again).
GRANTED, RESCHEDULED, CANCELLED, REJECTED = "granted", "rescheduled", "cancelled", "rejected"
RECENT_LEASES = 200  # records kept for the debug state
# How long hard affinity to a node the GCS says is alive waits for the node's first resource report.
_AFFINITY_JOIN_WAIT_S = 10.0


@dataclass(eq=False)
class LeaseRequest:
    resources: ResourceSet
    env_key: str
    job_id: str
    runtime_env: dict
    strategy: dict
    grant_or_reject: bool
    conn: framing.Connection
    future: asyncio.Future
    request_id: int | None = None
    locality: bool = False
    is_actor: bool = False
    warned_infeasible: bool = False
    # Actors need their placement resources to be scheduled but hold only these while running (Ray's
    # default actor: 1 CPU to place, 0 to run).
    running_resources: ResourceSet | None = None
    arrived: float = field(default_factory=time.monotonic)


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


@dataclass
class LeaseRecord:
    """What happened to one lease request, for the debug state."""

    state: str  # GRANTED, RESCHEDULED, CANCELLED or REJECTED
    job_id: str
    resources: dict[str, float]
    is_actor: bool
    strategy: str
    node_id: str = ""  # granted: this node; rescheduled: the node chosen
    lease_id: int = 0
    cancel_type: str = ""
    message: str = ""
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        out = {"state": self.state, "job_id": self.job_id, "resources": self.resources, "is_actor": self.is_actor,
               "strategy": self.strategy, "time": self.time}
        if self.node_id:
            out["node_id"] = self.node_id
        if self.lease_id:
            out["lease_id"] = self.lease_id
        if self.state == CANCELLED:
            out["cancel_type"], out["message"] = self.cancel_type, self.message
        return out


class LeaseManager:
    def __init__(self, node_id: str, resources: LocalResourceManager, cluster: ClusterResourceView,
                 pool: WorkerPool, runtime_envs: RuntimeEnvProvider, start_slots: asyncio.Semaphore,
                 refresh_node_table: Callable[[], None] | None = None) -> None:
        self.node_id = node_id
        self.resources = resources
        self.cluster = cluster
        self.pool = pool
        self.runtime_envs = runtime_envs
        # Shared with the node manager's prestart: at most this many workers boot at once on the node.
        self._start_slots = start_slots
        # Asks the node manager to read the GCS node table (for hard affinity to a node not heard of yet).
        self._refresh_node_table = refresh_node_table
        self._table_asked_at = -1.0  # when a read of the node table was last asked for (time.monotonic())
        self._pending: list[LeaseRequest] = []
        self._infeasible: list[LeaseRequest] = []
        self._starting: set[LeaseRequest] = set()  # granted, their worker still starting
        self._leases: dict[int, Lease] = {}
        self._lease_ids = itertools.count(1)
        self._spread_next = 0
        cfg = config()
        self.hybrid_options = policy.HybridOptions(cfg.scheduler_spread_threshold, cfg.scheduler_top_k_fraction,
                                                   cfg.scheduler_top_k_absolute, cfg.scheduler_avoid_gpu_nodes)
        self._stopped = False
        # Draining (the GCS forwarded an accepted DrainNode): nothing new is granted here; requests go elsewhere.
        self.draining = False
        self.counts: Counter = Counter()  # lease states, and cancellations by type
        self.recent: deque[LeaseRecord] = deque(maxlen=RECENT_LEASES)
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
            request_id=body.get("request_id"), locality=body.get("locality", False),
            is_actor=body.get("is_actor", False),
            running_resources=ResourceSet(body["running_resources"]) if "running_resources" in body else None,
        )
        self._pending.append(req)
        self.schedule()
        return fut

    @handles(msg.CANCEL_LEASE)
    def cancel_lease(self, conn: framing.Connection, body: msg.CancelLease) -> None:
        """The owner withdraws a request (Ray's CancelWorkerLease): answered as cancelled, never granted."""
        rid = body["request_id"]
        for queue in (self._pending, self._infeasible):
            for req in queue:
                if req.conn is conn and req.request_id == rid:
                    queue.remove(req)
                    self._cancel(req, msg.CANCELLED_INTENDED, "The lease request was cancelled by its owner.")
                    return
        for req in self._starting:  # its worker is starting: the lease is returned when it is up
            if req.conn is conn and req.request_id == rid:
                self._cancel(req, msg.CANCELLED_INTENDED, "The lease request was cancelled by its owner.")
                return

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
        for queue in (self._pending, self._infeasible):
            for req in queue:
                if req.conn is conn and not req.future.done():
                    self._cancel(req, msg.CANCELLED_INTENDED, "The lease request's owner exited.")
        self._pending = [r for r in self._pending if r.conn is not conn]
        self._infeasible = [r for r in self._infeasible if r.conn is not conn]
        for lease in list(self._leases.values()):
            if lease.owner is conn and lease.worker is not None:
                if lease.is_actor and lease.worker.is_actor:
                    # Actors are leased by the GCS: a GCS that went away (killed, restarting from Redis) takes
                    # them over again when it comes back, or ends them (KILL_WORKER); they keep running.
                    continue
                self.pool.end(lease.worker, "The worker exited because the owner of its lease (a driver or a "
                                            "worker) exited.")

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
                self.pool.end(lease.worker, f"The worker exited because its placement group {pg_hex} left this "
                                            "node.")

    def demands(self) -> list[pb.ResourceDemand]:
        """The shapes this node cannot place now (queued) or anywhere (infeasible), counted: the autoscaler's input."""
        shapes: dict[tuple, list[int]] = {}
        for req, infeasible in [(r, False) for r in self._pending] + [(r, True) for r in self._infeasible]:
            if req.future.done():
                continue
            key = tuple(sorted(req.resources.to_dict().items()))
            counts = shapes.setdefault(key, [0, 0])
            counts[int(infeasible)] += 1
        return [pb.ResourceDemand(shape=dict(k), num_ready_requests_queued=c[0], num_infeasible_requests_queued=c[1])
                for k, c in shapes.items()]

    def activity(self) -> list[str]:
        """Why the node is busy, as Ray's node activity says it: resources held, leased workers, requests
        waiting here. Empty when the leases have nothing running or waiting."""
        total, available = self.resources.total.to_dict(), self.resources.available.to_dict()
        out = [f"Resource: {name} currently in use." for name in sorted(total)
               if name != "object_store_memory" and not name.startswith("node:")
               and available.get(name, 0.0) < total[name] - 1e-9 and not pgs.is_group_resource(name)]
        if self._leases:
            out.append("Busy workers on node.")
        waiting = sum(1 for r in self._pending + self._infeasible if not r.future.done()) + len(self._starting)
        if waiting:
            out.append(f"{waiting} lease requests waiting on node.")
        return out

    def set_draining(self) -> None:
        """From now on nothing is granted here: waiting requests and new ones go to other nodes (or wait, as
        demand, until one can take them), as if this node were gone; running leases finish."""
        self.draining = True
        self.cluster.local_draining = True
        self.schedule()

    @property
    def num_pending(self) -> int:
        return len(self._pending)

    @property
    def num_infeasible(self) -> int:
        return len(self._infeasible)

    def gpu_ids_of(self, worker: Worker) -> list[str]:
        """The GPU ids of the lease this worker runs (empty when idle or without GPUs)."""
        lease = self._leases.get(worker.lease_id) if worker.lease_id else None
        return list(lease.gpu_ids) if lease is not None else []

    def debug_state(self) -> dict:
        """Counters of lease states, queue lengths and the most recent lease records (newest last)."""
        return {
            "num_granted": self.counts[GRANTED], "num_rescheduled": self.counts[RESCHEDULED],
            "num_rejected": self.counts[REJECTED], "num_cancelled": self.counts[CANCELLED],
            "cancelled_by_type": {k[len("cancel:"):]: v for k, v in self.counts.items() if k.startswith("cancel:")},
            "num_leased": len(self._leases), "num_pending": len(self._pending),
            "num_infeasible": len(self._infeasible), "num_starting": len(self._starting),
            "recent": [r.to_dict() for r in self.recent],
        }

    @property
    def num_task_leases(self) -> int:
        """Task leases granted and not returned: tasks running here (an actor's lease lasts as long as it)."""
        return sum(1 for lease in self._leases.values() if not lease.is_actor)

    def stop(self) -> None:
        """The node is shutting down: nothing is granted any more (killing its workers frees resources, which
        must not start new ones), and a worker start that fails now is not the request's fault."""
        self._stopped = True

    # ------------------------------------------------------------------ scheduling
    def schedule(self) -> None:
        """Decides every pending request that can be decided now; the rest stay queued."""
        if self._stopped:
            return
        still_pending = []
        for req in self._pending:
            if req.future.done():
                continue
            decision = self._decide(req)
            if isinstance(decision, PlacementDecision) and (decision.wait or decision.failed):
                if decision.failed:  # its placement group was removed
                    self._cancel(req, msg.CANCELLED_PLACEMENT_GROUP_REMOVED, decision.failed)
                else:  # its placement group is not placed yet
                    still_pending.append(req)
                continue
            if decision.node_id is None and decision.unschedulable:
                if self._affinity_target_may_appear(req):
                    still_pending.append(req)
                else:
                    self._cancel(req, msg.CANCELLED_UNSCHEDULABLE, decision.unschedulable)
                continue
            if decision.node_id is None and req.grant_or_reject:
                self._reject(req)  # the owner asks its own raylet again
                continue
            if decision.node_id is None:
                self._infeasible.append(req)
                if not req.warned_infeasible:
                    req.warned_infeasible = True
                    if not req.conn.closed:
                        req.conn.notify(msg.LEASE_INFEASIBLE, {"resources": req.resources.to_dict()})
                continue
            if decision.node_id != self.node_id:
                if req.grant_or_reject:
                    self._reject(req)
                elif not self._spill_back(req, decision.node_id):
                    still_pending.append(req)
                continue
            if not self.resources.fits(req.resources):
                still_pending.append(req)
                continue
            self._grant(req)
        self._pending = still_pending

    def _decide(self, req: LeaseRequest) -> policy.Decision:
        # A request spilled back here, or sent here for its data, runs here when it fits now (Ray's
        # "prioritize the local node": no second spillback).
        if (req.grant_or_reject or req.locality) and not self.draining and self.resources.fits(req.resources):
            return policy.Decision(self.node_id, True)
        views = self.cluster.nodes()
        strategy = req.strategy
        kind = strategy.get("type", "DEFAULT")
        if kind == "NODE_AFFINITY":
            return policy.node_affinity(req.resources, views, strategy["node_id"], strategy.get("soft", False),
                                        self.node_id, strategy.get("spill_on_unavailable", False),
                                        strategy.get("fail_on_unavailable", False), self.hybrid_options)
        if kind == pgs.STRATEGY_TYPE:
            return self.placement_groups.decide(req.resources, views, strategy["placement_group_id"],
                                                strategy.get("bundle_index", -1), req.grant_or_reject)
        if kind == "SPREAD":
            decision, self._spread_next = policy.spread(req.resources, views, self._spread_next)
            return decision
        return policy.hybrid(req.resources, views, self.node_id, self.hybrid_options)

    def _affinity_target_may_appear(self, req: LeaseRequest) -> bool:
        """Hard affinity found no usable target. True while it should wait instead of being cancelled: the
        target is not in this raylet's view yet but the GCS says it is alive (it has just joined), or this
        raylet has never heard of it and no read of the GCS node table begun after the request arrived says
        otherwise."""
        target = req.strategy.get("node_id", "")
        if self.cluster.has_node(target):
            return False  # known and alive here: it is too small (infeasible) or unavailable (fail_on_unavailable)
        state = self.cluster.node_state(target)
        if state == ALIVE:
            return time.monotonic() - req.arrived < _AFFINITY_JOIN_WAIT_S
        if state is not None or self._refresh_node_table is None or self.cluster.table_read_at >= req.arrived:
            return False  # dead, or the GCS did not know it when asked after the request came
        if self._table_asked_at < req.arrived:  # one read for every request waiting on it
            self._table_asked_at = time.monotonic()
            self._refresh_node_table()
        return True

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
        self._record(RESCHEDULED, req, node_id=node_id)
        return True

    def _reject(self, req: LeaseRequest) -> None:
        req.future.set_result({"rejected": True})
        self._record(REJECTED, req)

    def _cancel(self, req: LeaseRequest, cancel_type: str, message: str) -> None:
        if req.future.done():
            return
        req.future.set_result({"cancelled": {"type": cancel_type, "message": message}})
        self._record(CANCELLED, req, cancel_type=cancel_type, message=message)

    def _record(self, state: str, req: LeaseRequest, **fields) -> None:
        self.counts[state] += 1
        if state == CANCELLED:
            self.counts["cancel:" + fields["cancel_type"]] += 1
        self.recent.append(LeaseRecord(state, req.job_id, req.resources.to_dict(), req.is_actor,
                                       req.strategy.get("type", "DEFAULT"), **fields))

    # ------------------------------------------------------------------ grants and returns
    def _grant(self, req: LeaseRequest) -> None:
        held = req.running_resources if req.running_resources is not None else req.resources
        gpu_ids = self.resources.allocate(held)
        in_group = pgs.placement_group_of(req.strategy)
        lease = Lease(next(self._lease_ids), None, held, gpu_ids, req.conn, is_actor=req.is_actor,
                      placement_group=in_group[0] if in_group else "", request=req)
        self._leases[lease.lease_id] = lease
        self._starting.add(req)
        asyncio.get_running_loop().create_task(self._attach_worker(req, lease))

    async def _attach_worker(self, req: LeaseRequest, lease: Lease) -> None:
        try:
            await self._start_or_reuse_worker(req, lease)
        finally:
            self._starting.discard(req)

    async def _start_or_reuse_worker(self, req: LeaseRequest, lease: Lease) -> None:
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
            if self._stopped:
                return  # the node is going away; its owner learns it from the closed connection
            message = e.error_message if isinstance(e, RuntimeEnvSetupError) else f"Could not start a worker: {_reason(e)}"
            self._cancel(req, msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED, message)
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
        if req.future.done() or req.conn.closed:  # cancelled, or its owner went away, meanwhile
            self._return(lease.lease_id, kill=req.conn.closed)
            return
        req.future.set_result({"granted": {
            "lease_id": lease.lease_id, "worker_id": worker.worker_id, "address": worker.address,
            "node_id": self.node_id, "gpu_ids": lease.gpu_ids, "pid": worker.proc.pid,
            "resources": req.resources.to_dict(),
        }})
        self._record(GRANTED, req, node_id=self.node_id, lease_id=lease.lease_id)

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


def _reason(error: BaseException) -> str:
    """Why a worker could not be started, also for exceptions whose text is empty (a timeout)."""
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        return (f"it did not register with its raylet within {config().worker_register_timeout_seconds} s "
                "(worker_register_timeout_seconds; the node may be overloaded)")
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
