"""The framed protocol's contract: every message the runtime sends on its hot paths, who sends it to whom,
what it carries and what comes back; the task specs and argument kinds they carry.

The control plane is gRPC (`gcs.proto`, `actor.proto`, `placement_group.proto`, `runtime_env_agent.proto` beside
this file). The hot paths — leases, task pushes, actor calls, returns, object fetches, borrower bookkeeping —
and the GCS's requests to raylets (which serve no gRPC) are frames of `ray._common.framing`: `(kind, request
id, message name, payload)`. Each message below is a plain string constant (it travels as one), declared once
in `MESSAGES` with its direction and payload, and received through a `Dispatcher`, which refuses a handler for
a message its process is not meant to receive.

Payloads are TypedDicts (they travel as plain dicts: no cost on the hot path); the task specs are slotted
dataclasses in code and plain tuples on the wire (`to_wire`/`from_wire`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, NotRequired, TypedDict

# ---------------------------------------------------------------------------- who talks
OWNER = "core worker"  # any driver or worker, as the owner of its objects and tasks
WORKER = "worker"  # a worker process's task executor
RAYLET = "raylet"
GCS = "gcs"
DASHBOARD = "dashboard"
AGENT = "node agent"  # its node's stats for the dashboard
CLIENT = "ray client"  # a `ray://` driver's client core worker
CLIENT_SERVER = "client server"  # the head's Ray Client server
CLIENT_PROXY = "client proxy"  # one Ray Client session's proxy driver


class Address(TypedDict):
    """How to reach a core worker: its ids, its Unix socket on its node, its TCP address elsewhere."""

    worker_id: str
    node_id: str
    unix: str
    tcp: str


# ---------------------------------------------------------------------------- objects on the wire
class StoredObjectWire(NamedTuple):
    """A value as it travels (a task's return, a fetched object): inline bytes, or where it lives."""

    kind: int  # memory_store.INLINE (`data` holds the serialized value) or IN_STORE (a node's shared memory)
    data: bytes | None
    is_error: bool
    node_id: str  # IN_STORE: the node holding it
    raylet_tcp: str  # IN_STORE: that node's raylet, which serves copies to other nodes
    size: int
    # optional 7th item: the (object id, owner Address) pairs of the refs pickled inside the value


class ArgKind(enum.IntEnum):
    """How a task argument travels (`TaskArg`). Values match `actor.proto`'s `TaskArg.Kind`."""

    BY_REF = 0  # (BY_REF, object id, owner Address): the executor fetches it from its owner
    VALUE = 1  # (VALUE, serialized bytes): small, inline
    STORED = 2  # (STORED, object id, StoredObjectWire): resolved by the owner; the executor reads it


# (ArgKind, ...) as described on each kind.
TaskArg = tuple


def _args_to_wire(args: list[TaskArg]) -> list[tuple]:
    # An IntEnum member pickles as a call to its class: on the wire each kind is its plain int (equal to it).
    return [(int(arg[0]), *arg[1:]) for arg in args]


# ---------------------------------------------------------------------------- task specs
# A spec travels as a plain tuple (`to_wire`/`from_wire`): a tuple of builtins pickles as fast as a plain dict
# (~1 us each way for a push, measured), the dataclasses themselves took 4-5 us.
@dataclass(slots=True)
class TaskOptions:
    """What a remote function runs and how: one per `.options()`, shared by all its calls."""

    name: str
    function_key: bytes
    num_returns: int
    resources: dict[str, float]
    runtime_env: dict
    strategy: dict  # util.scheduling_strategies.to_wire: {} is Ray's default (hybrid)
    max_retries: int
    retry_exceptions: bool | bytes  # bytes: the cloudpickled tuple of exception types to retry on


@dataclass(slots=True)
class TaskSpec:
    """One call of a remote function, as its owner submits it and a leased worker runs it."""

    options: TaskOptions
    task_id: bytes
    args: list[TaskArg]  # positional args, then the values of kwargs_keys
    kwargs_keys: tuple[str, ...]
    return_ids: list[bytes]
    owner: Address
    namespace: str
    parent_task_id: bytes | None = None  # the task that submitted it, for recursive `ray.cancel`

    def to_wire(self) -> tuple:
        o = self.options
        return (o.name, o.function_key, o.num_returns, o.resources, o.runtime_env, o.strategy, o.max_retries,
                o.retry_exceptions, self.task_id, _args_to_wire(self.args), self.kwargs_keys, self.return_ids,
                self.owner, self.namespace, self.parent_task_id)

    @classmethod
    def from_wire(cls, wire: tuple) -> TaskSpec:
        return cls(TaskOptions(*wire[:8]), *wire[8:])


TASK_SPEC_WIRE_TASK_ID = 8  # `TaskSpec.to_wire()`'s index of the task id (read without decoding the rest)


@dataclass(slots=True)
class ActorMethodOptions:
    """One method of an actor class, as its handles call it."""

    method: str
    name: str  # "Class.method", for logs and errors
    num_returns: int


@dataclass(slots=True)
class ActorTaskSpec:
    """One actor method call, pushed in order to the worker running the actor."""

    options: ActorMethodOptions
    task_id: bytes
    args: list[TaskArg]
    kwargs_keys: tuple[str, ...]
    return_ids: list[bytes]
    owner: Address
    namespace: str

    def to_wire(self) -> tuple:
        o = self.options
        return (o.method, o.name, o.num_returns, self.task_id, _args_to_wire(self.args), self.kwargs_keys,
                self.return_ids, self.owner, self.namespace)

    @classmethod
    def from_wire(cls, wire: tuple) -> ActorTaskSpec:
        return cls(ActorMethodOptions(*wire[:3]), *wire[3:])


@dataclass(slots=True, frozen=True)
class ActorOptions:
    """How to create an actor (`@ray.remote` class options). The core worker turns it and the constructor's
    arguments into `actor.proto`'s `ActorCreationSpec`, which the GCS keeps for restarts."""

    function_key: bytes
    class_name: str
    resources: dict[str, float]  # held while it runs
    placement_resources: dict[str, float]  # needed to place it (Ray's default actor: 1 CPU to place, 0 to run)
    runtime_env: dict
    strategy: dict
    name: str
    namespace: str
    detached: bool
    max_restarts: int
    max_task_retries: int
    max_concurrency: int  # 0: the default (1, or 1000 for async actors)
    get_if_exists: bool



# ---------------------------------------------------------------------------- payloads
class RegisterClient(TypedDict):
    kind: str  # "driver" or "worker"
    worker_id: str
    job_id: str
    address: Address
    pid: int
    runtime_env: dict
    num_prestart: int


class ClientRegistered(TypedDict):
    node_id: str
    shm_dir: str
    session_dir: str
    gcs_address: str
    node_ip: str
    raylet_tcp: str


class RequestLease(TypedDict, total=False):
    resources: dict[str, float]
    runtime_env: dict
    strategy: dict
    job_id: str
    request_id: int  # the owner's id for this request on its connection (CANCEL_LEASE names it)
    grant_or_reject: bool  # a spilled-back request: grant here or say "rejected", never spill again
    # Sent to the raylet of the node holding most of the task's argument bytes (locality-aware leasing):
    # granted there when it fits now, else scheduled from there.
    locality: bool
    is_actor: bool
    running_resources: dict[str, float]  # actors: what the lease holds once the actor runs


class LeaseGrant(TypedDict):
    lease_id: int
    worker_id: str
    address: Address
    node_id: str
    gpu_ids: list[str]
    pid: int
    resources: dict[str, float]


# Why a lease request was cancelled (Ray's RequestWorkerLeaseReply.SchedulingFailureType).
CANCELLED_INTENDED = "SCHEDULING_CANCELLED_INTENDED"  # its owner cancelled it, or went away
CANCELLED_UNSCHEDULABLE = "SCHEDULING_CANCELLED_UNSCHEDULABLE"  # it can never run (hard node affinity)
CANCELLED_RUNTIME_ENV_SETUP_FAILED = "SCHEDULING_CANCELLED_RUNTIME_ENV_SETUP_FAILED"
CANCELLED_PLACEMENT_GROUP_REMOVED = "SCHEDULING_CANCELLED_PLACEMENT_GROUP_REMOVED"  # its placement group is gone


class LeaseCancelled(TypedDict):
    type: str  # one of the CANCELLED_* above
    message: str


class LeaseReply(TypedDict, total=False):
    """Exactly one key: granted here, try that raylet instead, not here after all, or cancelled."""

    granted: LeaseGrant
    spillback: str  # the raylet's framed TCP address
    node_id: str  # with spillback
    rejected: bool
    cancelled: LeaseCancelled


class CancelLease(TypedDict):
    request_id: int  # RequestLease.request_id, on the same connection


class ReturnLease(TypedDict, total=False):
    lease_id: int
    kill: bool  # the worker is not reusable (its owner failed to reach it, or it ran an actor)


class LeaseRef(TypedDict):
    lease_id: int


class KillWorker(TypedDict):
    worker_id: str
    force: bool  # SIGKILL now; False: asked to exit (EXIT_WORKER), reporting its last task events first


class ExitWorker(TypedDict):
    timeout_s: float  # how long the worker may take to report what it has left before it exits anyway


class ObjectCreated(TypedDict):
    object_id: str  # hex
    size: int


class FreeObjects(TypedDict):
    object_ids: list[str]  # hex
    # object id (hex) -> the recycled segment its owner already moved the object's file to (same node)
    recycled: NotRequired[dict[str, str]]


class ObjectByHex(TypedDict):
    object_id: str


class ReadObject(TypedDict):
    object_id: str  # hex
    offset: int
    length: int  # at most `object_manager_default_chunk_size`
    copy_at: NotRequired[str]  # the pulling raylet's host:port: told when the object is freed


class PullObject(TypedDict):
    object_id: str  # hex
    size: int  # its stored form's bytes
    source: str  # host:port of the raylet holding it


class ObjectById(TypedDict):
    object_id: bytes


class KvGet(TypedDict):
    key: bytes
    namespace: bytes | None


class KvPut(TypedDict):
    key: bytes
    value: bytes
    overwrite: bool
    namespace: bytes | None


class LeaseInfeasible(TypedDict):
    resources: dict[str, float]


class PushTask(TypedDict, total=False):
    spec: tuple  # TaskSpec.to_wire()
    lease_id: int
    gpu_ids: list[str]
    attempt: int  # 0 for the first try, +1 per retry (the task events' attempt_number)
    # (function key, pickled function): with the first task of a function the submitter pushes to a worker, so
    # the worker need not read the function table in the GCS (which may be restarting) to run it.
    function: tuple[bytes, bytes]


class CreateActor(TypedDict):
    spec: bytes  # actor.proto's ActorCreationSpec, serialized
    lease_id: int
    gpu_ids: list[str]
    restarted: bool


class ActorCreated(TypedDict, total=False):
    ok: bool
    pid: int
    error: StoredObjectWire  # the constructor's exception


class TaskReply(TypedDict, total=False):
    returns: list[tuple[bytes, StoredObjectWire]]
    app_error: bool  # the task raised (as opposed to: its arguments could not be read)
    retryable: bool  # ... and `retry_exceptions` says that error may be retried
    exit: bool  # the worker exits after this reply (exit_actor, max_calls)
    nested_holder: Address  # the worker holds refs inside the returns until RELEASE_NESTED
    # With task events on: when it started running, and for a normal task where its output is in the worker's log
    # files: (RUNNING time,) or (RUNNING time, stdout start, stderr start, stdout end, stderr end).
    ran: tuple
    ran_reported: bool  # the worker reported it RUNNING itself (absent: it did not)
    # It did not run: it was queued behind another task of this worker, which handed it back (that task blocks in
    # ray.get, the worker exits, or its owner asked with HAND_BACK_QUEUED). Nothing else is in the reply.
    handed_back: bool


class CancelTask(TypedDict, total=False):
    task_id: bytes
    recursive: bool  # also cancel the tasks it submitted
    force: bool
    children_only: bool  # only those (the caller kills the worker itself next)
    not_started_only: bool  # only if it is queued behind another task there, not started (answers whether it was)


class Bundle(TypedDict):
    """One bundle of a placement group, as the GCS reserves it on a node."""

    placement_group_id: str  # hex
    bundle_index: int
    resources: dict[str, float]


class Bundles(TypedDict):
    bundles: list[Bundle]


class CancelBundles(Bundles, total=False):
    removed: bool  # the group is removed: requests waiting for it fail


class DrainRaylet(TypedDict):
    """The GCS forwards an accepted-or-not DrainNode (autoscaler.proto) to the node's raylet."""

    reason: int  # autoscaler.proto's DrainNodeReason: IDLE_TERMINATION is refused by a busy node
    reason_message: str
    deadline_ms: int  # unix ms when the node will be stopped anyway (0: none)


class DrainReply(TypedDict):
    accepted: bool
    rejection_reason: str  # why a busy node refused an idle-termination drain


# ---------------------------------------------------------------------------- every message
# core worker -> its raylet (the GCS also leases workers for actors)
REGISTER_CLIENT = "register_client"
REQUEST_LEASE = "request_lease"
CANCEL_LEASE = "cancel_lease"
RETURN_LEASE = "return_lease"
NOTIFY_BLOCKED = "notify_blocked"
NOTIFY_UNBLOCKED = "notify_unblocked"
KILL_WORKER = "kill_worker"
GET_NODE_STATS = "get_node_stats"
OBJECT_CREATED = "object_created"
FREE_OBJECTS = "free_objects"
RESTORE_OBJECT = "restore_object"
READ_OBJECT = "read_object"
PULL_OBJECT = "pull_object"
KV_GET = "kv_get"
KV_PUT = "kv_put"
TASK_EVENTS = "task_events"
# the dashboard -> a raylet -> that node's core workers: the state API's objects (`ray list objects`, `ray memory`)
LIST_OBJECTS = "list_objects"
GET_OBJECT_REFS = "get_object_refs"
# raylet -> owner; core worker <-> core worker
LEASE_INFEASIBLE = "lease_infeasible"
GET_OBJECT = "get_object"
ADD_BORROWER = "add_borrower"
REMOVE_BORROWER = "remove_borrower"
RELEASE_NESTED = "release_nested"
# owner (or the GCS, for actor creation) -> the worker it leased
PUSH_TASK = "push_task"
CREATE_ACTOR = "create_actor"
PUSH_ACTOR_TASK = "push_actor_task"
CANCEL_TASK = "cancel_task"
HAND_BACK_QUEUED = "hand_back_queued"
# a raylet -> a worker it ends (its job or its lease's owner ended, idle too long, its placement group removed)
EXIT_WORKER = "exit_worker"
# a restarted GCS -> the worker of an actor it found alive in its tables (GCS fault tolerance)
ADOPT_ACTOR = "adopt_actor"
# an actor's worker -> the GCS that created it
ACTOR_EXITING = "actor_exiting"
# the GCS -> a raylet: placement group bundles, reserved in two phases (Ray's PrepareBundleResources,
# CommitBundleResources, CancelResourceReserve)
CLIENT_HELLO = "client_hello"
CLIENT_CALL = "client_call"
CLIENT_RELEASE = "client_release"
CLIENT_SHUTDOWN = "client_shutdown"
CLIENT_LOGS = "client_logs"
PROXY_CALL = "proxy_call"
PROXY_RELEASE = "proxy_release"
PROXY_SHUTDOWN = "proxy_shutdown"
PROXY_LOGS = "proxy_logs"
PREPARE_BUNDLES = "prepare_bundles"
COMMIT_BUNDLES = "commit_bundles"
CANCEL_BUNDLES = "cancel_bundles"
# the GCS -> a raylet: stop taking work (Ray's DrainRaylet)
DRAIN_RAYLET = "drain_raylet"


class Message(NamedTuple):
    senders: tuple[str, ...]
    receiver: str
    payload: Any  # the body's type
    reply: Any  # None: a notification (no reply)
    doc: str


MESSAGES: dict[str, Message] = {
    REGISTER_CLIENT: Message((OWNER,), RAYLET, RegisterClient, ClientRegistered,
                             "A driver or worker joins its node; the raylet says where the node's store is."),
    REQUEST_LEASE: Message((OWNER, GCS), RAYLET, RequestLease, LeaseReply,
                           "Lease a worker for a scheduling class (bottom-up scheduling with spillback)."),
    CANCEL_LEASE: Message((OWNER, GCS), RAYLET, CancelLease, None,
                          "Withdraw a lease request still waiting here (its tasks were cancelled, its actor killed)."),
    RETURN_LEASE: Message((OWNER, GCS), RAYLET, ReturnLease, None, "The leased worker is idle (or unusable)."),
    NOTIFY_BLOCKED: Message((OWNER,), RAYLET, LeaseRef, None,
                            "A task blocks in ray.get/wait: its CPUs are lent back to the node."),
    NOTIFY_UNBLOCKED: Message((OWNER,), RAYLET, LeaseRef, None, "... and takes them again."),
    KILL_WORKER: Message((OWNER, GCS), RAYLET, KillWorker, bool, "Force-cancel a task, or kill an actor."),
    GET_NODE_STATS: Message((OWNER, AGENT), RAYLET, type(None), dict,
                            "Resources, workers (pid, state, what each runs, GPU ids), store usage and the "
                            "scheduler's lease counters and recent leases (the raylet's debug state; the node "
                            "agent's stats, tests and tools)."),
    OBJECT_CREATED: Message((OWNER,), RAYLET, ObjectCreated, None, "A value was written to the node's store."),
    FREE_OBJECTS: Message((OWNER, RAYLET), RAYLET, FreeObjects, None,
                          "The owner freed these values (a raylet forwards it to the nodes that copied them)."),
    RESTORE_OBJECT: Message((OWNER,), RAYLET, ObjectByHex, bool, "Bring a spilled value back into memory."),
    READ_OBJECT: Message((RAYLET,), RAYLET, ReadObject, bytes,
                         "A chunk of a value held on this node, for another node's pull: a raw reply "
                         "(framing.RawReply) into the puller's buffer (None: not here)."),
    PULL_OBJECT: Message((OWNER,), RAYLET, PullObject, bool,
                         "Pull a copy of another node's value into this node's store (one pull per object, "
                         "whoever asks); False: it could not be had."),
    KV_GET: Message((OWNER,), RAYLET, KvGet, bytes, "The GCS's KV through the raylet: workers need no gRPC."),
    KV_PUT: Message((OWNER,), RAYLET, KvPut, int, "... and writes to it."),
    TASK_EVENTS: Message((OWNER, WORKER), RAYLET, bytes, None,
                         "A core worker's task events since its last report (ray._common.task_events.encode_batch); "
                         "the raylet forwards them to the GCS."),
    LIST_OBJECTS: Message((DASHBOARD,), RAYLET, dict, dict,
                          "The object refs every driver and worker of the node holds ({'timeout': s}); the reply: "
                          "{'objects': [rows], 'store': {...}, 'failed': n}."),
    GET_OBJECT_REFS: Message((RAYLET,), OWNER, type(None), list,
                             "The refs this process holds: the state API's ObjectState rows (without ip)."),
    LEASE_INFEASIBLE: Message((RAYLET,), OWNER, LeaseInfeasible, None,
                              "No node can ever run this shape: the owner warns the user once."),
    GET_OBJECT: Message((OWNER,), OWNER, ObjectById, StoredObjectWire,
                        "A borrower asks the owner for a value (waits until it exists; None: freed)."),
    ADD_BORROWER: Message((OWNER,), OWNER, bytes, bool,
                          "This process holds a ref to your object (acknowledged before it lets go of others)."),
    REMOVE_BORROWER: Message((OWNER,), OWNER, bytes, None, "... and no longer does."),
    RELEASE_NESTED: Message((OWNER,), OWNER, bytes, None,
                            "The caller of task <id> holds the refs inside its returns: the worker lets go."),
    PUSH_TASK: Message((OWNER,), WORKER, PushTask, TaskReply, "Run a normal task on the leased worker."),
    CREATE_ACTOR: Message((GCS,), WORKER, CreateActor, ActorCreated, "Become this actor (run its constructor)."),
    PUSH_ACTOR_TASK: Message((OWNER,), WORKER, tuple, TaskReply, "Call an actor method (in order): ActorTaskSpec.to_wire()."),
    CANCEL_TASK: Message((OWNER,), WORKER, CancelTask, bool,
                         "ray.cancel of a task pushed here; answers whether it had not started."),
    HAND_BACK_QUEUED: Message((OWNER,), WORKER, None, None,
                              "The tasks queued here behind the running one wait too long: answer each with "
                              "handed_back, so that they run elsewhere."),
    EXIT_WORKER: Message((RAYLET,), WORKER, ExitWorker, None,
                         "Exit now: report the task events not reported yet (within timeout_s), then go; the "
                         "raylet SIGKILLs a worker still alive after kill_worker_timeout_milliseconds."),
    ADOPT_ACTOR: Message((GCS,), WORKER, bytes, bytes,
                         "A restarted GCS watches this actor from now on: the worker answers with the id of the "
                         "actor it runs (b'': none), and tells this connection when it exits on purpose."),
    ACTOR_EXITING: Message((WORKER,), GCS, dict, None,
                           "The actor exits on purpose (exit_actor): the GCS must not restart it."),
    PREPARE_BUNDLES: Message((GCS,), RAYLET, Bundles, bool,
                             "Set these bundles' resources aside, all or none (False: they do not fit now)."),
    COMMIT_BUNDLES: Message((GCS,), RAYLET, Bundles, bool,
                            "Prepared bundles become the node's `<name>_group_..` resources tasks can use."),
    CANCEL_BUNDLES: Message((GCS,), RAYLET, CancelBundles, bool,
                            "Give bundles back (a failed prepare, a removed group): their leases end, workers die."),
    DRAIN_RAYLET: Message((GCS,), RAYLET, DrainRaylet, DrainReply,
                          "Take no new work and let the running work finish; an idle-termination drain is "
                          "refused by a node that is not idle."),
    # Ray Client (ray._private.client_mode, ray.util.client.server): bodies of calls are cloudpickled bytes
    CLIENT_HELLO: Message((CLIENT,), CLIENT_SERVER, dict, dict,
                          "Versions and session id (new or reconnecting); refused with the reason."),
    CLIENT_CALL: Message((CLIENT,), CLIENT_SERVER, tuple, bytes,
                         "(seq, ack, cloudpickled (op, args, kwargs)): a core-worker call, relayed to the proxy."),
    CLIENT_RELEASE: Message((CLIENT,), CLIENT_SERVER, list, None, "[(object id, copies received)] the client dropped."),
    CLIENT_SHUTDOWN: Message((CLIENT,), CLIENT_SERVER, type(None), bool, "ray.shutdown(): end the session now."),
    CLIENT_LOGS: Message((CLIENT_SERVER,), CLIENT, dict, None, "A batch of the session job's worker output."),
    PROXY_CALL: Message((CLIENT_SERVER,), CLIENT_PROXY, tuple, bytes, "A client's call (answered from a cache if seen)."),
    PROXY_RELEASE: Message((CLIENT_SERVER,), CLIENT_PROXY, list, None, "The client's released refs."),
    PROXY_SHUTDOWN: Message((CLIENT_SERVER,), CLIENT_PROXY, type(None), bool,
                            "End the session's job (ray.shutdown()) and exit."),
    PROXY_LOGS: Message((CLIENT_PROXY,), CLIENT_SERVER, dict, None, "Worker output for the client."),
}


# ---------------------------------------------------------------------------- receiving
Handler = Callable[[Any, Any], Any]  # (framing.Connection, payload) -> reply, awaitable or Responder


def handles(message: str) -> Callable[[Handler], Handler]:
    """Marks a method as the handler of `message`; `Dispatcher(obj)` finds it."""
    if message not in MESSAGES:
        raise ValueError(f"{message!r} is not a message of ray.protocol.messages")

    def mark(fn: Handler) -> Handler:
        fn.__ray_handles__ = message
        return fn

    return mark


class Dispatcher:
    """Routes each incoming framed message of one process to its handler: `framing`'s connection handler.

    Built from objects whose methods are marked with `@handles(...)`; refuses a handler for a message that
    `MESSAGES` does not address to one of `receivers` (a worker process is both a core worker and a task
    executor), and answers an unknown message with an error naming it."""

    def __init__(self, receivers: str | tuple[str, ...], *handler_objects: object) -> None:
        self.receivers = (receivers,) if isinstance(receivers, str) else tuple(receivers)
        self._routes: dict[str, Handler] = {}
        for obj in handler_objects:
            self.add(obj)

    def add(self, handler_object: object) -> None:
        for name in dir(type(handler_object)):
            message = getattr(getattr(type(handler_object), name), "__ray_handles__", None)
            if message is not None:
                self.route(message, getattr(handler_object, name))

    def route(self, message: str, handler: Handler) -> None:
        declared = MESSAGES[message]
        if declared.receiver not in self.receivers:
            raise ValueError(f"{message!r} is sent to the {declared.receiver}, not to the {' or the '.join(self.receivers)}")
        if message in self._routes:
            raise ValueError(f"two handlers for {message!r}")
        self._routes[message] = handler

    def handled(self) -> frozenset[str]:
        return frozenset(self._routes)

    def __call__(self, conn: Any, message: str, payload: Any) -> Any:
        handler = self._routes.get(message)
        if handler is None:
            raise ValueError(f"this {' and '.join(self.receivers)} does not handle {message!r}")
        return handler(conn, payload)


# ---------------------------------------------------------------------------- actor.proto's TaskArg
def args_to_proto(args: list[TaskArg]) -> list:
    """Arguments as `actor.proto` TaskArgs (an actor's constructor travels through the GCS)."""
    from ray.protocol import actor_pb2 as apb

    out = []
    for arg in args:
        kind = arg[0]
        if kind == ArgKind.VALUE:
            out.append(apb.TaskArg(kind=apb.TaskArg.VALUE, data=arg[1]))
        elif kind == ArgKind.BY_REF:
            out.append(apb.TaskArg(kind=apb.TaskArg.BY_REF, object_id=arg[1], owner_address_json=json.dumps(arg[2])))
        else:
            where = StoredObjectWire(*arg[2][:6])
            out.append(apb.TaskArg(kind=apb.TaskArg.STORED, object_id=arg[1], stored=apb.StoredObject(
                kind=where.kind, data=where.data or b"", is_error=where.is_error, node_id=where.node_id,
                raylet_tcp=where.raylet_tcp, size=where.size)))
    return out


def args_from_proto(proto_args) -> list[TaskArg]:
    out: list[TaskArg] = []
    for arg in proto_args:
        if arg.kind == ArgKind.VALUE:
            out.append((ArgKind.VALUE, arg.data))
        elif arg.kind == ArgKind.BY_REF:
            out.append((ArgKind.BY_REF, arg.object_id, json.loads(arg.owner_address_json)))
        else:
            s = arg.stored
            out.append((ArgKind.STORED, arg.object_id,
                        (s.kind, s.data or None, s.is_error, s.node_id, s.raylet_tcp, s.size)))
    return out
