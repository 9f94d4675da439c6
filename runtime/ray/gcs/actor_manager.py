"""GCS actor management: registration with names/namespaces, creation through raylet leases (bottom-up,
following spillback), restarts on worker/node death up to `max_restarts`, kill, and cleanup when the
owning job ends (detached actors survive it).

A lease request the raylet cancels ends the creation: unschedulable (hard node affinity to a dead or unknown
node) makes the actor DEAD with `unschedulable` set (its calls raise ActorUnschedulableError), a runtime env
that cannot be created makes it DEAD with that cause. Killing an actor that is still waiting for its lease
(ray.kill, its job ending) withdraws the request (CANCEL_LEASE), so its shape leaves the demand at once.

Each actor's table row and its creation spec (`ACTOR_TASK_SPEC`, as Ray keeps it) are stored, so a GCS
restarted from Redis (`load`) knows them again: named actors resolve; an ALIVE one is adopted (the GCS
connects to its worker again, ADOPT_ACTOR, and watches it as before), or restarted if its worker is gone;
one still being created is created again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import OrderedDict

from ray._common import framing
from ray._common import placement_groups as pgs
from ray._common.config import config
from ray.protocol import actor_pb2 as apb
from ray.protocol import actor_pb2_grpc
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher, handles

logger = logging.getLogger(__name__)

ACTOR_TABLE = "ACTOR"
ACTOR_TASK_SPEC_TABLE = "ACTOR_TASK_SPEC"
ACTOR_LEASE_TABLE = "ACTOR_LEASE"  # the lease an actor being created holds (GCS fault tolerance)
ACTOR_CHANNEL = "ACTOR"
# Ray's message for an actor whose placement group was removed before it could be created.
PG_REMOVED_CAUSE = "Could not create the actor because its associated placement group was removed."
State = apb.ActorTableData


class _Actor:
    __slots__ = ("data", "spec", "spec_bytes", "conn", "raylet", "lease_id", "no_restart", "exiting", "changed",
                 "lease_request")

    def __init__(self, data: apb.ActorTableData, spec: apb.ActorCreationSpec):
        self.data = data
        self.spec = spec
        self.spec_bytes = spec.SerializeToString()  # what each (re)start sends to the actor's worker
        self.conn: framing.Connection | None = None  # to the worker running it
        self.raylet: framing.Connection | None = None
        self.lease_id = 0
        self.no_restart = False
        self.exiting = False
        self.changed = asyncio.Event()
        self.lease_request: tuple[framing.Connection, int] | None = None  # (raylet, request id) while waiting


# What a dead actor keeps instead of its creation spec (never used again: kept up to
# maximum_gcs_destroyed_actor_cached_count of them) and of its state-change event (it never changes again).
_NO_SPEC = apb.ActorCreationSpec()
_NEVER_CHANGES = asyncio.Event()


class ActorManager(actor_pb2_grpc.ActorInfoGcsServiceServicer):
    def __init__(self, gcs_server):
        self.gcs = gcs_server
        self._actors: dict[bytes, _Actor] = {}
        self._names: dict[tuple[str, str], bytes] = {}
        self._dispatch = Dispatcher(msg.GCS, self)
        self._pool = framing.ConnectionPool(self._dispatch)
        self._request_ids = itertools.count(1)
        # Dead actors, oldest first: Ray's destroyed-actor cache, bounded by maximum_gcs_destroyed_actor_cached_count.
        self._destroyed: OrderedDict[bytes, None] = OrderedDict()
        gcs_server.jobs.on_job_finished.append(self._on_job_finished)

    # ------------------------------------------------------------------ state
    async def _set_state(self, actor: _Actor, state: int, **fields) -> None:
        actor.data.state = state
        for k, v in fields.items():
            setattr(actor.data, k, v)
        actor.data.version += 1
        if state == State.DEAD and actor.data.name:
            self._names.pop((actor.data.ray_namespace, actor.data.name), None)
        actor_id = actor.data.actor_id
        deletes = [(ACTOR_TASK_SPEC_TABLE, actor_id)] if state == State.DEAD else []
        if state in (State.DEAD, State.ALIVE):
            deletes.append((ACTOR_LEASE_TABLE, actor_id))
        await self.gcs.storage.write([(ACTOR_TABLE, actor_id, actor.data.SerializeToString())], deletes)
        self.gcs.publisher.publish(ACTOR_CHANNEL, actor.data.actor_id, actor.data.SerializeToString())
        changed, actor.changed = actor.changed, asyncio.Event() if state != State.DEAD else _NEVER_CHANGES
        if changed is not _NEVER_CHANGES:
            changed.set()
        if state == State.DEAD:
            actor.spec, actor.spec_bytes = _NO_SPEC, b""
            await self._remember_destroyed(actor.data.actor_id)
            await self.gcs.placement_groups.on_actor_dead(actor.data.actor_id)

    async def _remember_destroyed(self, actor_id: bytes) -> None:
        self._destroyed[actor_id] = None
        limit = config().maximum_gcs_destroyed_actor_cached_count
        while len(self._destroyed) > limit:
            old, _ = self._destroyed.popitem(last=False)
            self._actors.pop(old, None)
            await self.gcs.storage.delete(ACTOR_TABLE, old)

    # ------------------------------------------------------------------ rpc
    async def RegisterActor(self, request, context):
        spec = request.spec
        name, namespace = spec.name, spec.ray_namespace
        if name:
            existing = self._names.get((namespace, name))
            if existing is not None:
                if request.get_if_exists:
                    return apb.RegisterActorReply(actor=self._actors[existing].data)
                return apb.RegisterActorReply(code=1, error_message=(
                    f"The name {name} (namespace={namespace}) is already taken. Please use a different name or "
                    f"get the existing actor using ray.get_actor('{name}', namespace='{namespace}')"))
        data = apb.ActorTableData(
            actor_id=spec.actor_id, job_id=spec.job_id, name=name, ray_namespace=namespace,
            class_name=spec.class_name, state=State.PENDING_CREATION, max_restarts=spec.max_restarts,
            is_detached=spec.is_detached, owner_address_json=spec.owner_address_json, version=1,
            max_task_retries=spec.max_task_retries, function_key=spec.function_key,
            required_resources=spec.resources,
        )
        actor = _Actor(data, spec)
        self._actors[data.actor_id] = actor
        if name:
            self._names[(namespace, name)] = data.actor_id
        await self.gcs.storage.write([(ACTOR_TASK_SPEC_TABLE, data.actor_id, actor.spec_bytes),
                                      (ACTOR_TABLE, data.actor_id, data.SerializeToString())])
        asyncio.get_running_loop().create_task(self._create(actor))
        return apb.RegisterActorReply(actor=data)

    # ------------------------------------------------------------------ a restarted GCS
    async def load(self) -> None:
        """The actors of the stored tables (a GCS restarted from Redis): known, named, and watched again."""
        specs = await self.gcs.storage.get_all(ACTOR_TASK_SPEC_TABLE)
        loop = asyncio.get_running_loop()
        for value in (await self.gcs.storage.get_all(ACTOR_TABLE)).values():
            data = apb.ActorTableData.FromString(value)
            spec_bytes = specs.get(data.actor_id)
            spec = apb.ActorCreationSpec.FromString(spec_bytes) if spec_bytes else apb.ActorCreationSpec()
            actor = _Actor(data, spec)
            self._actors[data.actor_id] = actor
            if data.state == State.DEAD:
                continue
            if spec_bytes is None:  # cannot be created again without its spec
                loop.create_task(self._set_state(actor, State.DEAD, death_cause=(
                    "The GCS restarted and found no creation spec for this actor.")))
                continue
            if data.name:
                self._names[(data.ray_namespace, data.name)] = data.actor_id
            loop.create_task(self._recover(actor))
        if self._actors:
            logger.info("Loaded %d actors from storage (%d named).", len(self._actors), len(self._names))

    async def _ask_worker(self, actor: _Actor, address: dict) -> tuple[framing.Connection | None, bytes | None]:
        """(connection, the id of the actor the worker at `address` runs, b"" for none); (None, None): gone."""
        conn = None
        try:
            conn = await asyncio.wait_for(framing.connect(address["tcp"], self._dispatch), 10)
            return conn, await asyncio.wait_for(conn.request(msg.ADOPT_ACTOR, actor.data.actor_id), 10)
        except (OSError, KeyError, TimeoutError, framing.ConnectionLost, framing.RemoteError) as e:
            logger.info("Actor %s: its worker is gone (%s)", actor.data.actor_id.hex(), e)
            if conn is not None:
                conn.close()
            return None, None

    async def _recover(self, actor: _Actor) -> None:
        if actor.data.state != State.ALIVE:
            await self._recover_creation(actor)
            return
        conn, running = await self._ask_worker(actor, json.loads(actor.data.address_json or "{}"))
        if running != actor.data.actor_id:
            if conn is not None:
                conn.close()
            await self._after_death(actor)
            return
        actor.conn = conn
        conn.peer_info["actor_id"] = actor.data.actor_id
        conn.on_close_callbacks.append(lambda c, a=actor: self._on_worker_lost(a, c))
        raylet_address = self._raylet_address_for(actor.data.node_id)
        if raylet_address is not None:
            try:
                actor.raylet = await self._pool.get(raylet_address)
            except (OSError, framing.ConnectionLost) as e:
                logger.warning("Actor %s: its raylet %s is unreachable: %s", actor.data.actor_id.hex(),
                               raylet_address, e)
        logger.info("Adopted actor %s (pid %d)", actor.data.actor_id.hex(), actor.data.pid)

    async def _recover_creation(self, actor: _Actor) -> None:
        """An actor the previous GCS was creating: the worker it had leased becomes it (its constructor ran or
        runs there), or its lease is given back (it never got the actor), or it is created anew."""
        stored = await self.gcs.storage.get(ACTOR_LEASE_TABLE, actor.data.actor_id)
        lease = json.loads(stored) if stored else None
        if lease is not None:
            conn, running = await self._ask_worker(actor, lease["address"])
            if running == actor.data.actor_id:
                actor.conn = conn
                conn.peer_info["actor_id"] = actor.data.actor_id
                conn.on_close_callbacks.append(lambda c, a=actor: self._on_worker_lost(a, c))
                with contextlib.suppress(OSError, framing.ConnectionLost):
                    actor.raylet = await self._pool.get(lease["raylet"])
                actor.lease_id = lease["lease_id"]
                await self._set_state(actor, State.ALIVE, address_json=json.dumps(lease["address"]),
                                      node_id=bytes.fromhex(lease["node_id"]), pid=lease.get("pid", 0))
                logger.info("Adopted actor %s, created while the GCS was down", actor.data.actor_id.hex())
                return
            if conn is not None:
                conn.close()
            if running is not None:  # a live worker that never became the actor: its lease goes back
                with contextlib.suppress(OSError, framing.ConnectionLost):
                    raylet = await self._pool.get(lease["raylet"])
                    raylet.notify(msg.RETURN_LEASE, {"lease_id": lease["lease_id"], "kill": True})
            await self.gcs.storage.delete(ACTOR_LEASE_TABLE, actor.data.actor_id)
        await self._create(actor)

    async def GetActorInfo(self, request, context):
        actor = self._actors.get(request.actor_id)
        return apb.GetActorInfoReply(found=actor is not None, actor=actor.data if actor else None)

    async def GetNamedActorInfo(self, request, context):
        actor_id = self._names.get((request.ray_namespace, request.name))
        if actor_id is None:
            return apb.GetNamedActorInfoReply(found=False)
        return apb.GetNamedActorInfoReply(found=True, actor=self._actors[actor_id].data)

    async def ListNamedActors(self, request, context):
        out = [self._actors[a].data for (ns, _), a in self._names.items()
               if request.all_namespaces or ns == request.ray_namespace]
        return apb.ListNamedActorsReply(actors=out)

    async def GetAllActorInfo(self, request, context):
        return apb.GetAllActorInfoReply(actor_table_data=[a.data for a in self._actors.values()])

    async def WaitActorStateChange(self, request, context):
        actor = self._actors.get(request.actor_id)
        if actor is None:
            return apb.WaitActorStateChangeReply(found=False)
        if actor.data.version <= request.known_version:
            try:
                await asyncio.wait_for(actor.changed.wait(), timeout=request.timeout_s or 30)
            except TimeoutError:
                pass
        return apb.WaitActorStateChangeReply(found=True, actor=actor.data)

    async def KillActorViaGcs(self, request, context):
        actor = self._actors.get(request.actor_id)
        if actor is None:
            return apb.KillActorViaGcsReply(code=1, error_message="Actor not found.")
        await self.kill(actor, no_restart=request.no_restart, reason="The actor was killed by `ray.kill`.")
        return apb.KillActorViaGcsReply()

    # ------------------------------------------------------------------ creation
    def _raylet_address_for(self, node_id: bytes) -> str | None:
        info = self.gcs.nodes.node(node_id)
        if info is None or info.state != pb.GcsNodeInfo.ALIVE:
            return None
        return f"{info.node_manager_address}:{info.raylet_tcp_port}"

    def _any_raylet(self) -> str | None:
        alive = [n for n in self.gcs.nodes.alive_nodes() if self.gcs.nodes.schedulable(n.node_id)] or \
            self.gcs.nodes.alive_nodes()
        usage = self.gcs.nodes.usage()

        def free_cpu(n):
            u = usage.get(n.node_id)
            return u.resources_available.get("CPU", 0) if u else 0

        alive.sort(key=free_cpu, reverse=True)
        return f"{alive[0].node_manager_address}:{alive[0].raylet_tcp_port}" if alive else None

    async def _create(self, actor: _Actor) -> None:
        if actor.data.state == State.DEAD:
            return  # killed before a retry: its spec is dropped
        spec, spec_bytes = actor.spec, actor.spec_bytes  # a kill meanwhile drops them from the actor
        owner_node = bytes.fromhex(json.loads(spec.owner_address_json)["node_id"])
        lease_request: msg.RequestLease = {
            "resources": dict(spec.placement_resources), "running_resources": dict(spec.resources),
            "runtime_env": json.loads(spec.runtime_env_json or "{}"),
            "strategy": json.loads(spec.scheduling_strategy_json or "{}"), "job_id": spec.job_id.hex(),
            "is_actor": True,
        }
        address = self._raylet_address_for(owner_node) or self._any_raylet()
        grant_or_reject = False
        while True:
            if actor.data.state == State.DEAD:
                return
            if address is None:
                await asyncio.sleep(0.5)
                address = self._any_raylet()
                continue
            request_id = next(self._request_ids)
            try:
                raylet = await self._pool.get(address)
                if actor.data.state == State.DEAD:  # killed while we connected: ask for nothing
                    return
                actor.lease_request = (raylet, request_id)
                reply = await raylet.request(msg.REQUEST_LEASE, {**lease_request, "grant_or_reject": grant_or_reject,
                                                                 "request_id": request_id})
            except (OSError, framing.ConnectionLost, framing.RemoteError) as e:
                logger.warning("Lease request for actor %s at %s failed: %s", actor.data.actor_id.hex(), address, e)
                address, grant_or_reject = self._any_raylet(), False
                await asyncio.sleep(0.2)
                continue
            finally:
                actor.lease_request = None
            if "spillback" in reply:
                address, grant_or_reject = reply["spillback"], True
                continue
            if "rejected" in reply:
                address, grant_or_reject = self._any_raylet(), False
                await asyncio.sleep(0.1)
                continue
            if "cancelled" in reply:
                cancelled = reply["cancelled"]
                if cancelled["type"] == msg.CANCELLED_INTENDED or actor.data.state == State.DEAD:
                    return  # withdrawn by us (the actor was killed)
                if cancelled["type"] == msg.CANCELLED_RUNTIME_ENV_SETUP_FAILED:
                    await self._set_state(actor, State.DEAD, death_cause=cancelled["message"])
                elif cancelled["type"] == msg.CANCELLED_PLACEMENT_GROUP_REMOVED:
                    await self._set_state(actor, State.DEAD, unschedulable=True, death_cause=PG_REMOVED_CAUSE)
                else:  # Ray's ActorUnschedulableContext: calls raise ActorUnschedulableError
                    await self._set_state(actor, State.DEAD, death_cause=cancelled["message"], unschedulable=True)
                return
            grant = reply["granted"]
            break
        if actor.data.state == State.DEAD:
            raylet.notify(msg.RETURN_LEASE, {"lease_id": grant["lease_id"], "kill": True})
            return
        # Kept until the actor is ALIVE: a GCS restarted meanwhile finds the worker it leased (see _recover).
        await self.gcs.storage.put(ACTOR_LEASE_TABLE, actor.data.actor_id, json.dumps(
            {"raylet": address, "lease_id": grant["lease_id"], "address": grant["address"],
             "node_id": grant["node_id"], "pid": grant.get("pid", 0)}).encode())
        try:
            conn = await framing.connect(grant["address"]["tcp"], self._dispatch)
            created = await conn.request(msg.CREATE_ACTOR, {"spec": spec_bytes, "lease_id": grant["lease_id"],
                                                            "gpu_ids": grant["gpu_ids"],
                                                            "restarted": actor.data.num_restarts > 0})
        except (OSError, framing.ConnectionLost, framing.RemoteError) as e:
            logger.warning("Creating actor %s failed: %s; retrying", actor.data.actor_id.hex(), e)
            await asyncio.sleep(0.2)
            asyncio.get_running_loop().create_task(self._create(actor))
            return
        if not created.get("ok"):
            conn.close()
            raylet.notify(msg.RETURN_LEASE, {"lease_id": grant["lease_id"], "kill": True})
            error = msg.StoredObjectWire(*created["error"][:6])  # the constructor's exception, serialized
            await self._set_state(actor, State.DEAD, creation_error=error.data,
                                  death_cause="The actor died because of an error raised in its creation task.")
            return
        actor.conn, actor.raylet, actor.lease_id = conn, raylet, grant["lease_id"]
        conn.peer_info["actor_id"] = actor.data.actor_id
        conn.on_close_callbacks.append(lambda c, a=actor: self._on_worker_lost(a, c))
        await self._set_state(actor, State.ALIVE, address_json=json.dumps(grant["address"]),
                              node_id=bytes.fromhex(grant["node_id"]), pid=created.get("pid", 0))

    @handles(msg.ACTOR_EXITING)
    def actor_exiting(self, conn: framing.Connection, body: dict) -> None:
        actor = self._actors.get(conn.peer_info.get("actor_id", b""))
        if actor is not None:
            actor.exiting = True

    # ------------------------------------------------------------------ death / restart
    def _on_worker_lost(self, actor: _Actor, conn) -> None:
        if actor.conn is not conn:
            return
        actor.conn = None
        asyncio.get_running_loop().create_task(self._after_death(actor))

    async def _after_death(self, actor: _Actor) -> None:
        if actor.data.state == State.DEAD:
            return
        if actor.exiting:
            await self._set_state(actor, State.DEAD, death_cause=(
                "The actor is dead because its worker process has died. Worker exit type: INTENDED_USER_EXIT "
                "Worker exit detail: Worker exits by an user request. exit_actor() is called."))
            return
        restarts_left = actor.data.max_restarts == -1 or actor.data.num_restarts < actor.data.max_restarts
        if restarts_left and not actor.no_restart:
            await self._set_state(actor, State.RESTARTING, num_restarts=actor.data.num_restarts + 1)
            await self._create(actor)
            return
        await self._set_state(actor, State.DEAD, death_cause=actor.data.death_cause or (
            "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR"))

    async def kill(self, actor: _Actor, no_restart: bool, reason: str, force: bool = True) -> None:
        """`force`: SIGKILLed now (ray.kill); else asked to exit, reporting its last task events first."""
        if no_restart:
            actor.no_restart = True
            actor.data.death_cause = reason
        if actor.data.state in (State.PENDING_CREATION, State.RESTARTING) and no_restart:
            self._cancel_lease_request(actor)
            await self._set_state(actor, State.DEAD, death_cause=reason)
            return
        if actor.raylet is not None and not actor.raylet.closed and actor.conn is not None:
            actor.raylet.notify(msg.KILL_WORKER, {"worker_id": json.loads(actor.data.address_json)["worker_id"],
                                                "force": force})
        if no_restart and actor.data.state != State.DEAD:
            await self._set_state(actor, State.DEAD, death_cause=reason)  # callers learn it at once

    def _cancel_lease_request(self, actor: _Actor) -> None:
        """The actor will not be created: withdraw the lease request it is waiting on, if any."""
        if actor.lease_request is not None:
            raylet, request_id = actor.lease_request
            if not raylet.closed:
                raylet.notify(msg.CANCEL_LEASE, {"request_id": request_id})

    async def on_placement_group_removed(self, pg_hex: str) -> None:
        """The group's actors die with it: those alive are killed, those never created are unschedulable."""
        for actor in list(self._actors.values()):
            if actor.data.state == State.DEAD or not actor.spec.scheduling_strategy_json:
                continue
            placed = pgs.placement_group_of(json.loads(actor.spec.scheduling_strategy_json))
            if placed is None or placed[0] != pg_hex:
                continue
            if actor.data.state == State.PENDING_CREATION:
                actor.no_restart = True
                self._cancel_lease_request(actor)
                await self._set_state(actor, State.DEAD, unschedulable=True, death_cause=PG_REMOVED_CAUSE)
            else:
                await self.kill(actor, no_restart=True, reason=(
                    "The actor is dead because its worker process has died. Worker exit type: INTENDED_SYSTEM_EXIT "
                    "Worker exit detail: Destroying worker since its placement group was removed. Placement group "
                    f"id: {pg_hex}"))

    async def _on_job_finished(self, job_id: bytes) -> None:
        for actor in list(self._actors.values()):
            if actor.data.job_id == job_id and not actor.data.is_detached and actor.data.state != State.DEAD:
                await self.kill(actor, no_restart=True, force=False,
                                reason="The actor is dead because its owner has died (its job finished).")


def add_actor_service(gcs_server, grpc_server):
    manager = ActorManager(gcs_server)
    actor_pb2_grpc.add_ActorInfoGcsServiceServicer_to_server(manager, grpc_server)
    return manager
