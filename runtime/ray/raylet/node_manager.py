"""The raylet's node manager: leases (bottom-up scheduling with spillback), resources, worker pool, store.

Requests arrive over the framed protocol from owners (drivers, workers, the GCS for actors):
`request_lease` answers `{"granted": ...}`, `{"spillback": ...}` or `{"failed": ...}`. A granted lease
holds the request's resources until `return_lease`. A worker blocked in `ray.get` lends its CPUs back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from dataclasses import dataclass, field

from ray._common import framing
from ray._common.config import config
from ray._common.gcs_client import AsyncGcsClient
from ray._common.resources import GRANULARITY, ResourceSet
from ray.exceptions import RuntimeEnvSetupError
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher, handles
from ray.raylet.log_monitor import LogMonitor
from ray.raylet.object_store import LocalObjectStore
from ray.raylet.runtime_envs import RuntimeEnvProvider
from ray.raylet.scheduling import policy
from ray.raylet.worker_pool import LEASED, Worker, WorkerPool, env_key

logger = logging.getLogger(__name__)


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
    worker: Worker
    resources: ResourceSet
    gpu_ids: list[str]
    owner: framing.Connection
    blocked: bool = False
    is_actor: bool = False
    extra: dict = field(default_factory=dict)


class NodeManager:
    def __init__(self, node_id: str, node_ip: str, gcs_address: str, session_dir: str, resources: dict,
                 labels: dict, is_head: bool, metrics_export_port: int = 0, runtime_env_agent_address: str = ""):
        self.node_id = node_id
        self.node_ip = node_ip
        self.gcs_address = gcs_address
        self.session_dir = session_dir
        self.labels = labels
        self.is_head = is_head
        self.metrics_export_port = metrics_export_port
        self.runtime_env_agent_address = runtime_env_agent_address
        self.runtime_envs = RuntimeEnvProvider(runtime_env_agent_address)
        self._start_slots = asyncio.Semaphore(max(1, int(resources.get("CPU", 1))))
        self.total = ResourceSet(resources)
        self.available = ResourceSet(resources)
        self._gpu_free = self._gpu_slots(resources.get("GPU", 0))
        from ray._common.process_registry import shm_dir_for_node

        self.shm_dir = str(shm_dir_for_node(session_dir, node_id))
        self.socket_path = framing.abstract_socket_name("raylet", node_id[:24])
        self.tcp_port = 0
        self._pending: list[LeaseRequest] = []
        self._infeasible: list[LeaseRequest] = []
        self._leases: dict[int, Lease] = {}
        self._lease_ids = itertools.count(1)
        self._cluster: dict[str, policy.NodeView] = {}
        self._drivers: dict[framing.Connection, str] = {}  # driver connection -> job id
        self._job_envs: dict[str, dict] = {}
        self._spread_counter = 0
        self._stopping = asyncio.Event()
        self._dispatch = Dispatcher(msg.RAYLET, self)
        self.pool: WorkerPool | None = None
        self.gcs: AsyncGcsClient | None = None
        self.store = LocalObjectStore(self.shm_dir, os.path.join(session_dir, "spill", node_id[:12]),
                                      int(resources.get("object_store_memory", 0)))

    # ------------------------------------------------------------------ lifecycle
    def _gpu_slots(self, count: float) -> dict[str, int]:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(int(count))]
        return {gpu: GRANULARITY for gpu in ids[: int(count)]}

    async def start(self) -> None:
        os.makedirs(self.shm_dir, exist_ok=True)
        await framing.serve(self._dispatch, unix_path=self.socket_path, on_close=self._on_conn_closed)
        from ray._common.net import bind_host

        _, self.tcp_port = await framing.serve(self._dispatch, host=bind_host(self.node_ip), port=0,
                                               on_close=self._on_conn_closed)
        self.pool = WorkerPool(f"unix:{self.socket_path}", self.node_id, self.node_ip, self.gcs_address,
                               self.session_dir, self.shm_dir, self._on_worker_dead)
        await self.pool.start_template()
        self.gcs = AsyncGcsClient(self.gcs_address)
        info = pb.GcsNodeInfo(
            node_id=bytes.fromhex(self.node_id), node_manager_address=self.node_ip,
            node_manager_port=self.tcp_port, object_manager_port=self.tcp_port,
            object_store_socket_name=self.shm_dir, raylet_socket_name=self.socket_path,
            node_manager_hostname=os.uname().nodename, node_name=self.node_ip,
            resources_total=self.total.to_dict(), labels=self.labels, is_head_node=self.is_head,
            metrics_export_port=self.metrics_export_port, session_dir=self.session_dir,
            raylet_tcp_port=self.tcp_port,
        )
        await self.gcs.call(self.gcs.stubs.node.RegisterNode, pb.RegisterNodeRequest(node_info=info))
        self._cluster[self.node_id] = self._local_view()
        asyncio.get_running_loop().create_task(self._report_loop())
        self._log_monitor_task = asyncio.get_running_loop().create_task(LogMonitor(self).run())

    def ready_info(self) -> dict:
        return {"node_id": self.node_id, "socket": self.socket_path, "tcp_port": self.tcp_port,
                "shm_dir": self.shm_dir, "pid": os.getpid()}

    async def run_until_stopped(self) -> None:
        await self._stopping.wait()

    async def shutdown(self, unregister: bool = True) -> None:
        if self.pool:
            self.pool.kill_all()
        if unregister and self.gcs:
            try:
                await self.gcs.call(self.gcs.stubs.node.UnregisterNode,
                                    pb.UnregisterNodeRequest(node_id=bytes.fromhex(self.node_id),
                                                             reason="The raylet was stopped."), timeout_s=2)
            except ConnectionError:
                pass
        self.store.destroy()
        self._stopping.set()

    # ------------------------------------------------------------------ GCS report / cluster view
    def _local_view(self) -> policy.NodeView:
        return policy.NodeView(self.node_id, self.total, self.available, f"{self.node_ip}:{self.tcp_port}")

    def _demands(self) -> list[pb.ResourceDemand]:
        shapes: dict[tuple, list[int]] = {}
        for req, infeasible in [(r, False) for r in self._pending] + [(r, True) for r in self._infeasible]:
            key = tuple(sorted(req.resources.to_dict().items()))
            counts = shapes.setdefault(key, [0, 0])
            counts[int(infeasible)] += 1
        return [pb.ResourceDemand(shape=dict(k), num_ready_requests_queued=c[0], num_infeasible_requests_queued=c[1])
                for k, c in shapes.items()]

    async def _report_loop(self) -> None:
        period = config().raylet_report_resources_period_ms / 1000
        cfg = config()
        soft_limit = cfg.num_workers_soft_limit if cfg.num_workers_soft_limit >= 0 else int(self.total.get("CPU"))
        while not self._stopping.is_set():
            self.pool.reap()
            self.pool.kill_idle_above(soft_limit, cfg.idle_worker_killing_time_threshold_ms / 1000)
            req = pb.ReportResourceUsageRequest(
                node_id=bytes.fromhex(self.node_id), resources_available=self._clamped_available(),
                resources_total=self.total.to_dict(), demands=self._demands(),
                object_store_used_bytes=float(self.store.used_bytes),
            )
            try:
                reply = await self.gcs.call(self.gcs.stubs.node.ReportResourceUsage, req, timeout_s=30)
            except ConnectionError:
                logger.error("Lost the GCS at %s; the raylet exits.", self.gcs_address)
                await self.shutdown(unregister=False)
                return
            if reply.node_is_dead:
                logger.error("The GCS declared this node dead; the raylet exits.")
                await self.shutdown(unregister=False)
                return
            self._update_cluster(reply.nodes)
            await asyncio.sleep(period)

    def _clamped_available(self) -> dict[str, float]:
        return {k: max(v, 0.0) for k, v in self.available.to_dict().items()}

    def _update_cluster(self, nodes) -> None:
        view: dict[str, policy.NodeView] = {}
        for n in nodes:
            nid = n.node_id.hex()
            if nid == self.node_id:
                continue
            port = next((v.address for v in self._cluster.values() if v.node_id == nid), None)
            view[nid] = policy.NodeView(nid, ResourceSet(dict(n.resources_total)),
                                        ResourceSet(dict(n.resources_available)), port or "")
        missing = [nid for nid, v in view.items() if not v.address]
        view[self.node_id] = self._local_view()
        changed = set(view) != set(self._cluster)
        self._cluster = view
        if missing:
            asyncio.get_running_loop().create_task(self._fill_addresses())
        if changed or self._infeasible:
            self._infeasible, retry = [], self._infeasible
            self._pending.extend(retry)
        self._schedule()

    async def _fill_addresses(self) -> None:
        reply = await self.gcs.call(self.gcs.stubs.node.GetAllNodeInfo, pb.GetAllNodeInfoRequest())
        for info in reply.node_info_list:
            v = self._cluster.get(info.node_id.hex())
            if v is not None and not v.address:
                v.address = f"{info.node_manager_address}:{info.raylet_tcp_port}"
        self._schedule()

    # ------------------------------------------------------------------ protocol
    @handles(msg.REGISTER_CLIENT)
    def register_client(self, conn: framing.Connection, body: msg.RegisterClient) -> msg.ClientRegistered:
        kind = body["kind"]
        conn.peer_info.update(body)
        if kind == "driver":
            self._drivers[conn] = body["job_id"]
            self._job_envs[body["job_id"]] = body.get("runtime_env") or {}
            self._prestart(body["job_id"], body.get("runtime_env") or {}, body.get("num_prestart", 0))
        elif kind == "worker":
            self.pool.on_registered(body["worker_id"], conn, body["address"])
        return {"node_id": self.node_id, "shm_dir": self.shm_dir, "session_dir": self.session_dir,
                "gcs_address": self.gcs_address, "node_ip": self.node_ip,
                "raylet_tcp": f"{self.node_ip}:{self.tcp_port}"}

    def _prestart(self, job_id: str, runtime_env: dict, count: int) -> None:
        asyncio.get_running_loop().create_task(self._prestart_async(job_id, runtime_env, count))

    async def _prestart_async(self, job_id: str, runtime_env: dict, count: int) -> None:
        key = env_key(job_id, runtime_env)
        for _ in range(max(0, count - self.pool.num_starting(key))):
            try:
                ctx = await self.runtime_envs.acquire(key, runtime_env, job_id)
            except Exception as e:  # reported again, to the task's owner, when a lease needs this env
                logger.warning("Not prestarting workers for job %s: %s", job_id, e)
                return
            async with self._start_slots:
                try:
                    worker = await self.pool.start_worker(key, job_id, runtime_env, ctx)
                except BaseException:
                    self.runtime_envs.release(key)
                    raise
                worker.registered.add_done_callback(lambda f, w=worker: self._on_prestarted(w, f))
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(worker.registered),
                                           config().worker_register_timeout_seconds)

    def _on_prestarted(self, worker: Worker, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is None and worker.state != "DEAD":
            self.pool.push_idle(worker)
            self._schedule()

    def _on_conn_closed(self, conn: framing.Connection) -> None:
        info = conn.peer_info
        if info.get("kind") == "worker":
            worker = self.pool.workers.get(info["worker_id"]) if self.pool else None
            if worker is not None:
                self.pool.mark_dead(worker)
        job_id = self._drivers.pop(conn, None)
        if job_id is not None:
            asyncio.get_running_loop().create_task(self._on_driver_exit(job_id))
        # Leases held by an owner that went away: their workers are killed, resources freed.
        for lease in list(self._leases.values()):
            if lease.owner is conn:
                self.pool.kill(lease.worker)
        for req in list(self._pending):
            if req.conn is conn:
                self._pending.remove(req)
        self._infeasible = [r for r in self._infeasible if r.conn is not conn]

    async def _on_driver_exit(self, job_id: str) -> None:
        self.pool.kill_job(job_id)
        try:
            await self.gcs.call(self.gcs.stubs.job.MarkJobFinished,
                                pb.MarkJobFinishedRequest(job_id=bytes.fromhex(job_id)), timeout_s=10)
        except ConnectionError:
            pass

    def _on_worker_dead(self, worker: Worker) -> None:
        self.runtime_envs.release(worker.env_key)
        lease = self._leases.pop(worker.lease_id, None) if worker.lease_id else None
        if lease is not None:
            self._release(lease)
            self._schedule()

    # ------------------------------------------------------------------ leases
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
        self._schedule()
        return fut

    def _decide(self, req: LeaseRequest) -> policy.Decision:
        views = list(self._cluster.values())
        self._cluster[self.node_id] = self._local_view()
        views = list(self._cluster.values())
        if req.grant_or_reject:
            views = [v for v in views if v.node_id == self.node_id]
        cfg = config()
        strategy = req.strategy
        kind = strategy.get("type", "DEFAULT")
        if kind == "NODE_AFFINITY":
            return policy.node_affinity(req.resources, views, strategy["node_id"], strategy.get("soft", False),
                                        self.node_id, cfg.scheduler_spread_threshold)
        if kind == "SPREAD":
            self._spread_counter += 1
            return policy.spread(req.resources, views, self._spread_counter)
        return policy.hybrid(req.resources, views, self.node_id, cfg.scheduler_spread_threshold)

    def _schedule(self) -> None:
        still_pending = []
        for req in self._pending:
            if req.future.done():
                continue
            decision = self._decide(req)
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
                target = self._cluster[decision.node_id]
                if target.address:
                    # Count the request against the target so a burst does not all spill to one node.
                    try:
                        target.available = target.available - req.resources
                    except ValueError:
                        pass
                    req.future.set_result({"spillback": target.address, "node_id": decision.node_id})
                    continue
                still_pending.append(req)
                continue
            if not req.resources.is_subset_of(self.available):
                still_pending.append(req)
                continue
            self._grant(req)
        self._pending = still_pending

    def _grant(self, req: LeaseRequest) -> None:
        held = req.running_resources if req.running_resources is not None else req.resources
        gpu_ids = self._take_gpus(held.get("GPU"))
        self.available = self.available - held
        lease = Lease(next(self._lease_ids), None, held, gpu_ids, req.conn, is_actor=req.is_actor)
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
            self._schedule()
            return
        lease.worker = worker
        worker.lease_id = lease.lease_id
        worker.state = LEASED
        worker.is_actor = req.is_actor
        if worker.state == "DEAD":  # died between registering and now: queue the request again
            self._pending.append(req)
            self._schedule()
            return
        if req.future.done() or req.conn.closed:
            self._return(lease.lease_id, kill=req.conn.closed)
            return
        req.future.set_result({"granted": {
            "lease_id": lease.lease_id, "worker_id": worker.worker_id, "address": worker.address,
            "node_id": self.node_id, "gpu_ids": lease.gpu_ids, "pid": worker.proc.pid,
            "resources": req.resources.to_dict(),
        }})

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

    def _give_gpus(self, lease: Lease) -> None:
        amount = round(lease.resources.get("GPU") * GRANULARITY)
        for g in lease.gpu_ids:
            self._gpu_free[g] = min(GRANULARITY, self._gpu_free[g] + (amount if amount < GRANULARITY else GRANULARITY))

    def _release(self, lease: Lease) -> None:
        held = lease.resources
        if lease.blocked:
            held = held - ResourceSet({"CPU": held.get("CPU")})
        self.available = self.available + held
        self._give_gpus(lease)

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
        self._schedule()

    @handles(msg.RETURN_LEASE)
    def return_lease(self, conn: framing.Connection, body: msg.ReturnLease) -> bool:
        self._return(body["lease_id"], kill=body.get("kill", False))
        return True

    @handles(msg.NOTIFY_BLOCKED)
    def notify_blocked(self, conn: framing.Connection, body: msg.LeaseRef) -> None:
        lease = self._leases.get(body["lease_id"])
        if lease is not None and not lease.blocked and lease.resources.get("CPU"):
            lease.blocked = True
            self.available = self.available + ResourceSet({"CPU": lease.resources.get("CPU")})
            self._schedule()

    @handles(msg.NOTIFY_UNBLOCKED)
    def notify_unblocked(self, conn: framing.Connection, body: msg.LeaseRef) -> None:
        lease = self._leases.get(body["lease_id"])
        if lease is not None and lease.blocked:
            lease.blocked = False
            # May overcommit for a moment, as Ray does; later grants wait until usage drops.
            cpu = round(lease.resources.get("CPU") * GRANULARITY)
            amounts = dict(self.available._amounts)
            amounts["CPU"] = amounts.get("CPU", 0) - cpu
            self.available = ResourceSet._from_fixed(amounts)

    @handles(msg.KILL_WORKER)
    def kill_worker(self, conn: framing.Connection, body: msg.KillWorker) -> bool:
        worker = self.pool.workers.get(body["worker_id"])
        if worker is None:
            return False
        self.pool.kill(worker, force=body.get("force", True))
        return True

    @handles(msg.GET_NODE_STATS)
    def get_node_stats(self, conn: framing.Connection, body: None) -> dict:
        return {
            "node_id": self.node_id,
            "total": self.total.to_dict(),
            "available": self.available.to_dict(),
            "num_workers": sum(1 for w in self.pool.workers.values() if w.state != "DEAD"),
            "worker_pids": [w.proc.pid for w in self.pool.workers.values() if w.state != "DEAD"],
            **self.store.stats(),
            "pending_leases": len(self._pending),
            "infeasible_leases": len(self._infeasible),
        }

    # ------------------------------------------------------------------ object store accounting
    @handles(msg.OBJECT_CREATED)
    def object_created(self, conn: framing.Connection, body: msg.ObjectCreated) -> None:
        self.store.on_created(body["object_id"], body["size"])

    @handles(msg.FREE_OBJECTS)
    def free_objects(self, conn: framing.Connection, body: msg.FreeObjects) -> None:
        self.store.free(body["object_ids"])

    @handles(msg.RESTORE_OBJECT)
    def restore_object(self, conn: framing.Connection, body: msg.ObjectByHex) -> bool:
        return self.store.restore(body["object_id"])

    @handles(msg.READ_OBJECT)
    def read_object(self, conn: framing.Connection, body: msg.ObjectByHex) -> bytes | None:
        """Another node pulls a copy of an object held here (in memory or spilled)."""
        return self.store.read(body["object_id"])

    @handles(msg.KV_GET)
    async def kv_get(self, conn: framing.Connection, body: msg.KvGet) -> bytes | None:
        """Workers read the function table through their raylet, so they need no gRPC of their own."""
        return await self.gcs.internal_kv_get(body["key"], namespace=body.get("namespace"))

    @handles(msg.KV_PUT)
    async def kv_put(self, conn: framing.Connection, body: msg.KvPut) -> int:
        return await self.gcs.internal_kv_put(body["key"], body["value"], overwrite=body.get("overwrite", True),
                                              namespace=body.get("namespace"))
