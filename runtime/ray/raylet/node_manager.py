"""The raylet's node manager: the node's plumbing around its lease manager, worker pool and object store.

It registers the node with the GCS and reports the node's resources and demand to it (the reply keeps the
scheduler's cluster view current), serves the framed protocol (lease messages go to the lease manager in
`raylet.scheduling`), registers drivers and workers, prestarts workers, and cleans up after connections,
drivers and workers that go away. The node's store and the GCS's KV are reached through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time

from ray._common import framing
from ray._common.config import config
from ray._common.gcs_client import AsyncGcsClient
from ray.protocol import autoscaler_pb2 as apb
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher, handles
from ray.raylet.log_monitor import LogMonitor
from ray.raylet.object_manager import ObjectManager
from ray.raylet.object_store import LocalObjectStore
from ray.raylet.runtime_envs import RuntimeEnvProvider
from ray.raylet.scheduling.cluster_view import ClusterResourceView
from ray.raylet.scheduling.lease_manager import LeaseManager
from ray.raylet.scheduling.local_resources import LocalResourceManager
from ray.raylet.scheduling.placement_groups import PlacementGroupBundles, lookup_in_gcs
from ray.raylet.state_reporter import StateReporter
from ray.raylet.worker_pool import DEAD, Worker, WorkerPool, env_key

logger = logging.getLogger(__name__)


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
        self.resources = LocalResourceManager(resources, os.environ.get("CUDA_VISIBLE_DEVICES"))
        from ray._common.process_registry import shm_dir_for_node

        self.shm_dir = str(shm_dir_for_node(session_dir, node_id))
        self.socket_path = framing.abstract_socket_name("raylet", node_id[:24])
        self.tcp_port = 0
        self._drivers: dict[framing.Connection, str] = {}  # driver connection -> job id
        self._stopping = asyncio.Event()
        # Since when (time.monotonic()) the node has had nothing to do; None while it is busy (`activity`).
        self._idle_since: float | None = time.monotonic()
        self.drain_reason = ""  # set once a drain is accepted
        self._draining_for_stop = False
        # Building the pool starts nothing: the worker fork server starts in `start()`.
        self.pool = WorkerPool(f"unix:{self.socket_path}", self.node_id, self.node_ip, self.gcs_address,
                               self.session_dir, self.shm_dir, self._on_worker_dead)
        self.cluster = ClusterResourceView(node_id, self.resources)
        self.leases = LeaseManager(node_id, self.resources, self.cluster, self.pool, self.runtime_envs,
                                   self._start_slots, refresh_node_table=self._refresh_node_table)
        self._node_table_task: asyncio.Task | None = None
        self._node_table_wanted = False
        self.bundles = PlacementGroupBundles(node_id, self.resources, lambda pg: lookup_in_gcs(self.gcs, pg),
                                             self.leases.schedule, self.leases.end_placement_group_leases)
        self.leases.placement_groups = self.bundles
        self.log_monitor = LogMonitor(self)
        self.store = LocalObjectStore(self.shm_dir, os.path.join(session_dir, "spill", node_id[:12]),
                                      int(resources.get("object_store_memory", 0)))
        self.objects = ObjectManager(self.store, lambda conn, method, body: self._dispatch(conn, method, body))
        self._dispatch = Dispatcher(msg.RAYLET, self, self.leases, self.bundles, self.objects)
        self.state = StateReporter(node_id, node_ip)
        self.gcs: AsyncGcsClient | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        os.makedirs(self.shm_dir, exist_ok=True)
        await framing.serve(self._dispatch, unix_path=self.socket_path, on_close=self._on_conn_closed)
        from ray._common.net import bind_host

        _, self.tcp_port = await framing.serve(self._dispatch, host=bind_host(self.node_ip), port=0,
                                               on_close=self._on_conn_closed)
        self.cluster.local_address = self.objects.address = f"{self.node_ip}:{self.tcp_port}"
        await self.pool.start_template()
        self.gcs = AsyncGcsClient(self.gcs_address)
        info = pb.GcsNodeInfo(
            node_id=bytes.fromhex(self.node_id), node_manager_address=self.node_ip,
            node_manager_port=self.tcp_port, object_manager_port=self.tcp_port,
            object_store_socket_name=self.shm_dir, raylet_socket_name=self.socket_path,
            node_manager_hostname=os.uname().nodename, node_name=self.node_ip,
            resources_total=self.resources.total.to_dict(), labels=self.labels, is_head_node=self.is_head,
            metrics_export_port=self.metrics_export_port, session_dir=self.session_dir,
            raylet_tcp_port=self.tcp_port,
            # Set by whoever started the node for an autoscaler (KubeRay's pods, the fake provider, ...).
            instance_id=os.environ.get("RAY_CLOUD_INSTANCE_ID", ""),
            node_type_name=os.environ.get("RAY_NODE_TYPE_NAME", ""),
        )
        await self.gcs.call(self.gcs.stubs.node.RegisterNode, pb.RegisterNodeRequest(node_info=info))
        self.state.start(self.gcs)
        asyncio.get_running_loop().create_task(self._report_loop())
        self._log_monitor_task = asyncio.get_running_loop().create_task(self.log_monitor.run())
        if config().debug_dump_period_milliseconds > 0:
            self._debug_dump_task = asyncio.get_running_loop().create_task(self._debug_dump_loop())

    def ready_info(self) -> dict:
        return {"node_id": self.node_id, "socket": self.socket_path, "tcp_port": self.tcp_port,
                "shm_dir": self.shm_dir, "pid": os.getpid()}

    async def run_until_stopped(self) -> None:
        await self._stopping.wait()

    async def stop_gracefully(self) -> None:
        """SIGUSR2 (`ray stop`, a pod's preStop): drain first. Nothing new is granted here (the GCS learns it
        with the next report and schedulers skip the node; waiting requests go elsewhere), running tasks
        finish (actors do not end by themselves: they stop with the node), then the node stops. A second
        SIGUSR2, SIGTERM, or SIGKILL at the end of `ray stop`'s grace period, stops it at once."""
        if self._draining_for_stop or self._stopping.is_set():
            await self.shutdown()
            return
        self._draining_for_stop = True
        if self.leases.num_task_leases:
            logger.info("Stopping: draining first (%d running task(s) finish; nothing new is granted here).",
                        self.leases.num_task_leases)
            if not self.leases.draining:
                self.drain_reason = "The raylet was asked to stop."
                self.leases.set_draining()
            while self.leases.num_task_leases and not self._stopping.is_set():
                await asyncio.sleep(0.05)
        await self.shutdown()

    async def shutdown(self, unregister: bool = True) -> None:
        self.leases.stop()  # no grant from here on: the requests still waiting go with their connections
        self.pool.kill_all()
        if unregister and self.gcs:
            try:
                await self.gcs.call(self.gcs.stubs.node.UnregisterNode,
                                    pb.UnregisterNodeRequest(node_id=bytes.fromhex(self.node_id),
                                                             reason="The raylet was stopped."), timeout_s=2)
            except ConnectionError:
                pass
        self.objects.close()
        self.store.destroy()
        self._stopping.set()

    # ------------------------------------------------------------------ GCS report / cluster view
    async def _report_loop(self) -> None:
        period = config().raylet_report_resources_period_ms / 1000
        cfg = config()
        soft_limit = cfg.num_workers_soft_limit if cfg.num_workers_soft_limit >= 0 else int(self.resources.total.get("CPU"))
        while not self._stopping.is_set():
            self.pool.reap()
            self.pool.kill_idle_above(soft_limit, cfg.idle_worker_killing_time_threshold_ms / 1000)
            self.resources.set_object_store_used(self.store.used_bytes)
            activity = self.activity()
            req = pb.ReportResourceUsageRequest(
                node_id=bytes.fromhex(self.node_id), resources_available=self.resources.reported_available(),
                resources_total=self.resources.total.to_dict(), demands=self.leases.demands(),
                object_store_used_bytes=float(self.store.used_bytes),
                idle_duration_ms=self._idle_ms(activity), node_activity=activity, is_draining=self.leases.draining,
                bundle_messages_handled=self.bundles.messages_handled,
            )
            try:
                # A GCS that went away has `gcs_rpc_server_reconnect_timeout_s` to come back (restarted
                # with Redis it knows this node again); then the raylet gives up, as Ray's does.
                reply = await self.gcs.call(self.gcs.stubs.node.ReportResourceUsage, req,
                                            timeout_s=cfg.gcs_rpc_server_reconnect_timeout_s)
            except ConnectionError as e:
                logger.error("Lost the GCS at %s for %d s (gcs_rpc_server_reconnect_timeout_s); the raylet exits. %s",
                             self.gcs_address, cfg.gcs_rpc_server_reconnect_timeout_s, e)
                await self.shutdown(unregister=False)
                return
            if reply.node_is_dead:
                logger.error("The GCS declared this node dead; the raylet exits.")
                await self.shutdown(unregister=False)
                return
            if self.cluster.update(reply.nodes):
                asyncio.get_running_loop().create_task(self._fill_addresses())
            self.leases.on_cluster_update()
            await asyncio.sleep(period)

    async def _fill_addresses(self) -> None:
        started = time.monotonic()
        try:
            reply = await self.gcs.call(self.gcs.stubs.node.GetAllNodeInfo, pb.GetAllNodeInfoRequest())
        except ConnectionError:
            return  # the report loop notices a lost GCS
        self.cluster.fill_addresses(reply.node_info_list, started)
        self.leases.schedule()

    def _refresh_node_table(self) -> None:
        """The lease manager needs the GCS node table as it is from now on (hard affinity to a node it has not
        heard of): one read begun after this call, however many requests ask meanwhile."""
        self._node_table_wanted = True
        if self._node_table_task is None or self._node_table_task.done():
            self._node_table_task = asyncio.get_running_loop().create_task(self._read_node_table())

    async def _read_node_table(self) -> None:
        while self._node_table_wanted:
            self._node_table_wanted = False
            await self._fill_addresses()

    # ------------------------------------------------------------------ idleness and draining
    def activity(self) -> list[str]:
        """Why the node is not idle: the leases' activity, and objects in its store (which someone may still
        need: the node must not go while it holds them). Empty: idle."""
        out = self.leases.activity()
        if self.store.num_objects:
            out.append("Resource: object_store_memory currently in use.")
        return out

    def _idle_ms(self, activity: list[str]) -> int:
        now = time.monotonic()
        if activity:
            self._idle_since = None
            return 0
        if self._idle_since is None:
            self._idle_since = now
        return max(1, int((now - self._idle_since) * 1000))

    @handles(msg.DRAIN_RAYLET)
    def drain(self, conn: framing.Connection, body: msg.DrainRaylet) -> msg.DrainReply:
        """Ray's DrainRaylet: an idle-termination drain is refused while the node is busy (the autoscaler saw
        it idle a moment ago, and something has arrived since); any other is accepted. Once draining, the node
        grants nothing new; what runs here finishes."""
        if body["reason"] == apb.DRAIN_NODE_REASON_IDLE_TERMINATION and not self.leases.draining:
            activity = self.activity()
            if activity:
                return {"accepted": False, "rejection_reason": "The node is not idle: " + " ".join(activity)}
        if not self.leases.draining:
            self.drain_reason = body.get("reason_message") or apb.DrainNodeReason.Name(body["reason"])
            logger.info("Draining this node (%s): no new work is granted here.", self.drain_reason)
            self.leases.set_draining()
        return {"accepted": True, "rejection_reason": ""}

    # ------------------------------------------------------------------ debug state
    def debug_state_text(self) -> str:
        """The scheduler's state as text, the counterpart of Ray's raylet `debug_state.txt`."""
        state = self.leases.debug_state()
        lines = [
            "NodeManager:",
            f"Node ID: {self.node_id}",
            f"Node name: {self.node_ip}",
            f"InitialConfigResources: {self.resources.total.to_dict()}",
            f"Available resources: {self.resources.available.to_dict()}",
            "ClusterLeaseManager:",
            f"Schedule queue length: {state['num_pending']}",
            f"Infeasible queue length: {state['num_infeasible']}",
            f"Leases starting a worker: {state['num_starting']}",
            f"Leases held: {state['num_leased']}",
            f"Num leases granted: {state['num_granted']}",
            f"Num leases rescheduled (spilled back): {state['num_rescheduled']}",
            f"Num leases rejected: {state['num_rejected']}",
            f"Num leases cancelled: {state['num_cancelled']}",
        ]
        lines += [f"  {kind}: {n}" for kind, n in sorted(state["cancelled_by_type"].items())]
        lines.append("Cluster resources as this raylet sees them:")
        for v in self.cluster.nodes():
            lines.append(f"  node {v.node_id}: total {v.total.to_dict()} available {v.available.to_dict()}")
        lines.append("Recent leases (oldest first):")
        for r in state["recent"]:
            where = f" node={r['node_id']}" if "node_id" in r else ""
            why = f" {r['cancel_type']}: {r['message']}" if r["state"] == "cancelled" else ""
            kind = "actor" if r["is_actor"] else "task"
            lines.append(f"  {r['state']}{where} {kind} job={r['job_id']} {r['strategy']} {r['resources']}{why}")
        return "\n".join(lines) + "\n"

    async def _debug_dump_loop(self) -> None:
        path = os.path.join(self.session_dir, "logs", "debug_state.txt")
        period = config().debug_dump_period_milliseconds / 1000
        while not self._stopping.is_set():
            await asyncio.sleep(period)
            try:
                tmp = path + ".tmp"
                with open(tmp, "w") as f:
                    f.write(self.debug_state_text())
                os.replace(tmp, path)
            except OSError:
                pass  # the session dir is going away

    # ------------------------------------------------------------------ protocol
    @handles(msg.REGISTER_CLIENT)
    def register_client(self, conn: framing.Connection, body: msg.RegisterClient) -> msg.ClientRegistered:
        kind = body["kind"]
        conn.peer_info.update(body)
        if kind == "driver":
            self._drivers[conn] = body["job_id"]
            self.state.started(body["worker_id"], "DRIVER", body.get("pid", 0), body["job_id"])
            self._prestart(body["job_id"], body.get("runtime_env") or {}, body.get("num_prestart", 0))
        elif kind == "worker":
            if body["worker_id"] not in self.pool.workers:  # forked, and here before the fork server's answer
                return self._register_worker_once_recorded(conn, body)
            self._register_worker(conn, body)
        return self._client_registered()

    def _client_registered(self) -> msg.ClientRegistered:
        return {"node_id": self.node_id, "shm_dir": self.shm_dir, "session_dir": self.session_dir,
                "gcs_address": self.gcs_address, "node_ip": self.node_ip,
                "raylet_tcp": f"{self.node_ip}:{self.tcp_port}"}

    def _register_worker(self, conn: framing.Connection, body: msg.RegisterClient) -> None:
        worker = self.pool.on_registered(body["worker_id"], conn, body["address"])
        if worker is None:
            return
        self.state.started(worker.worker_id, "WORKER", body.get("pid", 0), body["job_id"], worker.launch_time_ms)
        if conn.closed:  # it went away while its registration waited: nothing will notice the close again
            self.pool.mark_dead(worker)

    async def _register_worker_once_recorded(self, conn: framing.Connection,
                                             body: msg.RegisterClient) -> msg.ClientRegistered:
        """A worker whose start the pool has not recorded yet registers once it has (see `wait_recorded`)."""
        await self.pool.wait_recorded(body["worker_id"], config().worker_register_timeout_seconds)
        self._register_worker(conn, body)
        return self._client_registered()

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
        if not fut.cancelled() and fut.exception() is None and worker.state != DEAD:
            self.pool.push_idle(worker)
            self.leases.schedule()

    def _on_conn_closed(self, conn: framing.Connection) -> None:
        info = conn.peer_info
        if info.get("kind") == "worker":
            worker = self.pool.workers.get(info["worker_id"])
            if worker is not None:
                self.pool.mark_dead(worker)
        job_id = self._drivers.pop(conn, None)
        if job_id is not None:
            self.state.ended(info.get("worker_id", ""), "INTENDED_USER_EXIT", "The driver disconnected.")
            asyncio.get_running_loop().create_task(self._on_driver_exit(job_id))
        self.leases.on_owner_closed(conn)

    async def _on_driver_exit(self, job_id: str) -> None:
        self.pool.kill_job(job_id)
        try:
            await self.gcs.call(self.gcs.stubs.job.MarkJobFinished,
                                pb.MarkJobFinishedRequest(
                                    job_id=bytes.fromhex(job_id), driver_failed=True,
                                    driver_exit_detail="The driver exited without disconnecting from Ray (it was "
                                                       "killed or crashed)."), timeout_s=10)
        except ConnectionError:
            pass

    def _on_worker_dead(self, worker: Worker) -> None:
        self.runtime_envs.release(worker.env_key)
        code = worker.proc.poll()
        if worker.lease_id and not worker.exit_type and (  # exit_type: the raylet ended it on purpose
                code != 0 if not worker.is_actor else isinstance(worker.proc, subprocess.Popen) and code not in (0, None)):
            # Ray's `(raylet)` line on the driver: the worker of a running task died on its own. An actor's
            # worker only with a known bad exit status (a forked one's is unknown here, and exit_actor() is a
            # clean exit).
            self.log_monitor.publish_raylet_error(worker.job_id, (
                "A worker died or was killed while executing a task by an unexpected system error. To "
                "troubleshoot the problem, check the logs for the dead worker. "
                f"Worker ID: {worker.worker_id} Node ID: {self.node_id} Worker IP address: {self.node_ip} "
                f"Worker PID: {worker.proc.pid} Worker exit type: SYSTEM_ERROR Worker exit detail: the "
                f"worker's process exited with code {code}; see {worker.log_base}.err"))
        self.leases.on_worker_dead(worker)
        if worker.exit_type:
            self.state.ended(worker.worker_id, worker.exit_type, worker.exit_detail)
        else:  # its connection closed: its exit code (soon known) says whether it meant to go
            asyncio.get_running_loop().call_later(0.2, self._report_exit, worker)

    def _report_exit(self, worker: Worker) -> None:
        code = worker.proc.poll()
        if code == 0:
            self.state.ended(worker.worker_id, "INTENDED_USER_EXIT",
                             "The worker exited on its own (exit_actor, max_calls or sys.exit).")
        else:
            why = f"exit code {code}" if code is not None else "its connection to the raylet closed"
            self.state.ended(worker.worker_id, "SYSTEM_ERROR",
                             f"The worker exited unexpectedly ({why}). It may have been killed by a signal (for "
                             "example the out-of-memory killer) or crashed; see its .err log.")

    # ------------------------------------------------------------------ workers and node stats
    @handles(msg.KILL_WORKER)
    def kill_worker(self, conn: framing.Connection, body: msg.KillWorker) -> bool:
        worker = self.pool.workers.get(body["worker_id"])
        if worker is None:
            return False
        if body.get("force", True):
            self.pool.kill(worker, exit_type="INTENDED_USER_EXIT",
                           exit_detail="The worker was killed by ray.kill or ray.cancel(force=True).")
        else:  # an actor whose job ended: its last task events are reported before it goes
            self.pool.end(worker, "The actor's worker exited because its job (driver) ended.")
        return True

    @handles(msg.LIST_OBJECTS)
    async def list_objects(self, conn: framing.Connection, body: dict) -> dict:
        """Every driver's and worker's refs on this node, and the store's usage (the state API's objects)."""
        timeout = float(body.get("timeout", 10))
        clients = list(self._drivers) + [w.conn for w in self.pool.workers.values()
                                         if w.state != DEAD and w.conn is not None and not w.conn.closed]

        async def ask(client: framing.Connection) -> list | None:
            try:
                return await asyncio.wait_for(client.request(msg.GET_OBJECT_REFS, None), timeout)
            except Exception:  # noqa: BLE001 - a worker going away or busy: counted as failed
                return None

        answers = await asyncio.gather(*(ask(c) for c in clients))
        rows = [row for answer in answers if answer for row in answer]
        return {"objects": rows, "store": self.store.stats(), "failed": sum(a is None for a in answers)}

    @handles(msg.TASK_EVENTS)
    def task_events(self, conn: framing.Connection, batch: bytes) -> None:
        self.state.forward_task_events(batch)

    @handles(msg.GET_NODE_STATS)
    def get_node_stats(self, conn: framing.Connection, body: None) -> dict:
        return {
            "node_id": self.node_id,
            "total": self.resources.total.to_dict(),
            "available": self.resources.available.to_dict(),
            "num_workers": sum(1 for w in self.pool.workers.values() if w.state != DEAD),
            "worker_pids": [w.proc.pid for w in self.pool.workers.values() if w.state != DEAD],
            "workers": self._worker_rows(),
            **self.store.stats(),
            **self.objects.stats(),
            "pending_leases": self.leases.num_pending,
            "infeasible_leases": self.leases.num_infeasible,
            "leases": self.leases.debug_state(),
            # The scheduler's view of every node (this one as it is now, the others as last reported).
            "cluster_view": {v.node_id: {"total": v.total.to_dict(), "available": v.available.to_dict()}
                             for v in self.cluster.nodes()},
        }

    def _worker_rows(self) -> list[dict]:
        """Each live worker for the node agent's stats (the dashboard's node view): ids, pid, state, the
        actor or task it runs (as its log announces them) and the GPU ids of its lease."""
        rows = []
        for w in self.pool.workers.values():
            if w.state == DEAD:
                continue
            names = self.log_monitor.names_of(w.proc.pid)
            rows.append({"worker_id": w.worker_id, "pid": w.proc.pid, "job_id": w.job_id, "state": w.state,
                         "is_actor": w.is_actor, "gpu_ids": self.leases.gpu_ids_of(w), **names})
        return rows

    # ------------------------------------------------------------------ object store accounting
    @handles(msg.OBJECT_CREATED)
    def object_created(self, conn: framing.Connection, body: msg.ObjectCreated) -> None:
        self.store.on_created(body["object_id"], body["size"])

    @handles(msg.FREE_OBJECTS)
    def free_objects(self, conn: framing.Connection, body: msg.FreeObjects) -> None:
        self.store.free(body["object_ids"], body.get("recycled"))
        self.objects.freed(body["object_ids"])  # and the copies other nodes pulled (object_manager.py)

    @handles(msg.RESTORE_OBJECT)
    def restore_object(self, conn: framing.Connection, body: msg.ObjectByHex) -> bool:
        return self.store.restore(body["object_id"])

    @handles(msg.KV_GET)
    async def kv_get(self, conn: framing.Connection, body: msg.KvGet) -> bytes | None:
        """Workers read the function table through their raylet, so they need no gRPC of their own."""
        return await self.gcs.internal_kv_get(body["key"], namespace=body.get("namespace"))

    @handles(msg.KV_PUT)
    async def kv_put(self, conn: framing.Connection, body: msg.KvPut) -> int:
        return await self.gcs.internal_kv_put(body["key"], body["value"], overwrite=body.get("overwrite", True),
                                              namespace=body.get("namespace"))
