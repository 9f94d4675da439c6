"""Ray Client, the client's side: `ray.init("ray://host:10001")` from a process on no node.

`ClientCoreWorker` stands in for the core worker: the public API (`RemoteFunction`, `ActorClass`,
`ray.get/put/wait/cancel/kill`, placement groups, `ray.nodes()`...) calls it as it calls a real one, and it
forwards each call over one authenticated framed connection (`_common/framing.py`: the cluster's token,
mutual proof) to the head's client server, which relays it to this session's proxy driver (a real driver
with a core worker, one per session and so one job per client: `ray/util/client/server/`).

Wire (`ray.protocol.messages`, CLIENT_*): `CLIENT_HELLO` {protocol, ray_version, python, client_id,
reconnect}, then `CLIENT_CALL` (seq, ack, cloudpickled (op, args, kwargs)) answered with cloudpickled
(ok, value, text), `CLIENT_RELEASE` [(object id, receipts)], `CLIENT_SHUTDOWN`; `CLIENT_LOGS` batches come
back (the server relays these to and from the proxy as PROXY_*). Object refs keep their real
ids: the proxy holds each ref it sent until the client's refs to it are gone (`release` carries how many
copies arrived, so a release crossing a new copy on the wire leaves that copy held). Every `call` carries a
sequence number: after a lost connection the client reconnects within the grace period
(`RAY_CLIENT_RECONNECT_GRACE_PERIOD`, 30 s) and sends its unanswered calls again; the proxy answers a
number it has seen from its cache (`ack`: every number below it was answered and may be forgotten).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import sys
import threading
import time
import uuid
from typing import Any

import cloudpickle

from ray._common import framing
from ray._common.ids import JobID, WorkerID
from ray._version import version as ray_version
from ray.core_worker import object_ref
from ray.core_worker.function_manager import dumps_keeping_filenames
from ray.core_worker.object_ref import ObjectRef
from ray.exceptions import AuthenticationError
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher, handles

logger = logging.getLogger("ray")

PROTOCOL_VERSION = 1
DEFAULT_CLIENT_PORT = 10001
GRACE_PERIOD_ENV = "RAY_CLIENT_RECONNECT_GRACE_PERIOD"
CONNECT_TIMEOUT_ENV = "RAY_CLIENT_CONNECT_TIMEOUT_S"
# Core-worker calls a client may forward (the proxy accepts these and no others).
FORWARDED = frozenset((
    "submit_task", "submit_actor_task", "create_actor", "named_actor", "kill_actor", "cancel", "get", "put",
    "wait", "internal_kv_get", "internal_kv_put",
))
PLACEMENT_GROUPS_FORWARDED = frozenset(("create", "remove", "info", "all", "wait_ready", "ready_ref"))
GCS_FORWARDED = frozenset(("get_all_node_info", "get_all_resource_usage", "get_placement_group_load",
                           "get_all_job_info", "internal_kv_get", "internal_kv_put", "internal_kv_exists",
                           "internal_kv_del", "internal_kv_keys"))


def grace_period_s() -> float:
    return float(os.environ.get(GRACE_PERIOD_ENV, "30"))


def python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def parse_address(address: str) -> tuple[str, int]:
    """`ray://host[:port]` -> (host, port); the port defaults to 10001 as Ray's."""
    rest = address[len("ray://"):].rstrip("/")
    if not rest:
        raise ValueError(f"Invalid Ray Client address {address!r}: expected 'ray://<host>:<port>'.")
    if rest.startswith("["):  # [ipv6]:port
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, sep, port = rest.rpartition(":")
        if not sep:
            host, port = rest, ""
    try:
        return host, int(port) if port else DEFAULT_CLIENT_PORT
    except ValueError:
        raise ValueError(f"Invalid Ray Client address {address!r}: the port must be a number.") from None


class _Functions:
    """`cw.functions` on a client: functions and classes are cloudpickled here and exported by the proxy."""

    def __init__(self, cw: ClientCoreWorker):
        self._cw = cw

    def export(self, obj: object, kind: str = "RemoteFunction") -> bytes:
        return self._cw._call("export", dumps_keeping_filenames(obj), kind)

    def load(self, key: bytes) -> type:
        """An actor class for `ray.get_actor`: the class itself stays on the cluster; the proxy says which
        methods it has (and their num_returns), which is all a handle needs."""
        class_name, meta = self._cw._call("class_meta", key)
        namespace: dict[str, Any] = {}
        for name, m in meta.items():
            def method(self, *args, **kwargs):  # pragma: no cover - never called: a handle's shape only
                raise NotImplementedError

            method.__ray_num_returns__ = m["num_returns"]
            namespace[name] = method
        return type(class_name, (), namespace)


class _PlacementGroups:
    """`cw.placement_groups` on a client: every call made by the proxy driver."""

    def __init__(self, cw: ClientCoreWorker):
        self._cw = cw

    def __getattr__(self, name: str):
        if name not in PLACEMENT_GROUPS_FORWARDED:
            raise AttributeError(f"placement_groups.{name} is not available through Ray Client")
        return lambda *args, **kwargs: self._cw._call("placement_groups." + name, *args, **kwargs)


class _Gcs:
    """`cw.gcs` on a client (`ray.nodes()`, `ray.cluster_resources()`...): read through the proxy."""

    def __init__(self, cw: ClientCoreWorker):
        self._cw = cw

    def __getattr__(self, name: str):
        if name not in GCS_FORWARDED:
            raise AttributeError(f"{name} is not available through Ray Client")
        return lambda *args, **kwargs: self._cw._call("gcs." + name, *args, **kwargs)


class ClientCoreWorker:
    """The core worker of a Ray Client process: every call goes to the session's proxy driver."""

    mode = "driver"

    def __init__(self, address: str):
        self.client_address = address
        self.host, self.port = parse_address(address)
        self.client_id = uuid.uuid4().hex
        self.functions = _Functions(self)
        self.placement_groups = _PlacementGroups(self)
        self._gcs = _Gcs(self)
        self.loop = framing.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="ray-client-io", daemon=True)
        self._conn: framing.Connection | None = None
        self._conn_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._outstanding: set[int] = set()
        self._lock = threading.Lock()
        self._local: dict[bytes, int] = {}  # object id -> live ObjectRefs here
        self._receipts: dict[bytes, int] = {}  # object id -> copies the proxy sent (and holds for us)
        self._releases: list[tuple[bytes, int]] = []
        self._flush_scheduled = False
        self._receiving = threading.local()
        self.connected = False
        self.info: dict = {}
        # set from the proxy's answer to init
        self.job_id: JobID | None = None
        self.worker_id = WorkerID.from_random()
        self.node_id = ""
        self.namespace = ""
        self.runtime_env: dict = {}
        self.gcs_address = ""

    # ------------------------------------------------------------------ lifecycle
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _run(self, coro, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(self, namespace: str | None, runtime_env: dict | None) -> dict:
        self._thread.start()
        try:
            self._conn = self._open(reconnect=False)
            env = dict(runtime_env or {})
            if env.get("working_dir") or env.get("py_modules"):
                from ray._common.runtime_env.packaging import upload_working_dir_and_py_modules

                env = upload_working_dir_and_py_modules(env, self._gcs)  # zipped here, stored by the proxy
            self.info = self._call("init", namespace, env)
        except BaseException:
            self._close_conn()
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise
        self.job_id = JobID(bytes.fromhex(self.info["job_id"]))
        self.node_id = self.info["node_id"]
        self.namespace = self.info["namespace"]
        self.runtime_env = self.info["runtime_env"]
        self.gcs_address = self.info["gcs_address"]
        object_ref.set_hooks(self)
        self.connected = True
        return self.info

    def _open(self, reconnect: bool) -> framing.Connection:
        """Connect, authenticate (the handshake) and say hello; clear errors for a port that is not a
        client server, a token the cluster refuses, or another version."""
        where = f"ray://{self.host}:{self.port}"
        timeout = float(os.environ.get(CONNECT_TIMEOUT_ENV, "10"))

        async def open_() -> framing.Connection:
            conn = await asyncio.wait_for(
                framing.connect(f"{self.host}:{self.port}", Dispatcher(msg.CLIENT, self), self._on_lost), timeout)
            try:
                reply = await asyncio.wait_for(conn.request(msg.CLIENT_HELLO, {
                    "protocol": PROTOCOL_VERSION, "ray_version": ray_version, "python": python_version(),
                    "client_id": self.client_id, "reconnect": reconnect}), timeout)
            except BaseException:
                conn.close()
                raise
            conn.peer_info["hello"] = reply
            return conn

        try:
            return self._run(open_())
        except AuthenticationError:
            raise
        except TimeoutError:
            raise ConnectionError(
                f"{where} did not answer as a Ray Client server within {timeout:g} s. Is that the head's Ray "
                f"Client port (`ray start --head --ray-client-server-port`, {DEFAULT_CLIENT_PORT} by default; "
                "the head service's `client` port on Kubernetes)?") from None
        except framing.HandshakeError as e:
            raise ConnectionError(f"{where} is not a Ray Client server ({e}). Use the head's Ray Client port "
                                  f"({DEFAULT_CLIENT_PORT} by default).") from None
        except framing.RemoteError as e:
            text = str(e)
            if "no handler" in text.lower() or "not handled" in text.lower() or "client_hello" in text:
                raise ConnectionError(f"{where} is a Ray process but not a Ray Client server. Use the head's "
                                      f"Ray Client port ({DEFAULT_CLIENT_PORT} by default).") from None
            raise ConnectionError(f"The Ray Client server at {where} refused the connection: "
                                  f"{text.partition(': ')[2] or text}") from None
        except OSError as e:
            raise ConnectionError(f"Could not connect to the Ray Client server at {where}: {e}") from None

    def _on_lost(self, conn: framing.Connection) -> None:
        pass  # noticed by the calls in flight (ConnectionLost) or the next call

    def _reconnect(self, broken: framing.Connection | None) -> framing.Connection:
        with self._conn_lock:
            if self._conn is not None and self._conn is not broken and not self._conn.closed:
                return self._conn
            if not self.connected and broken is not None and self.info:
                raise ConnectionError("Ray Client is disconnected (ray.shutdown() was called).")
            grace = grace_period_s()
            deadline = time.monotonic() + grace
            logger.warning("Lost the connection to the Ray Client server at ray://%s:%s; reconnecting (for up "
                           "to %g s, %s)...", self.host, self.port, grace, GRACE_PERIOD_ENV)
            last: Exception | None = None
            while time.monotonic() < deadline:
                try:
                    conn = self._open(reconnect=True)
                except AuthenticationError:
                    raise
                except ConnectionError as e:
                    last = e
                    if "session" in str(e) and "refused" in str(e):
                        break  # the server no longer knows this session
                    time.sleep(0.5)
                    continue
                self._conn = conn
                logger.warning("Reconnected to the Ray Client server at ray://%s:%s.", self.host, self.port)
                self.loop.call_soon_threadsafe(self._flush_releases)
                return conn
            self.connected = False
            raise ConnectionError(
                f"Lost the Ray Client session with ray://{self.host}:{self.port} and could not reconnect within "
                f"{grace:g} s ({GRACE_PERIOD_ENV}); its objects and actors (except detached ones) are gone. "
                f"Last error: {last}")

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.loop.call_soon_threadsafe(conn.close)

    def shutdown(self) -> None:
        if not self.connected:
            return
        self.connected = False
        object_ref.set_hooks(None)
        conn = self._conn
        if conn is not None and not conn.closed:
            async def bye() -> None:
                await conn.request(msg.CLIENT_SHUTDOWN)

            with contextlib.suppress(Exception):
                self._run(bye(), timeout=30)
        self._close_conn()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ calls
    def _call(self, op: str, *args, **kwargs) -> Any:
        payload = cloudpickle.dumps((op, args, kwargs), protocol=5)
        seq = next(self._seq)
        with self._lock:
            self._outstanding.add(seq)
        try:
            conn = self._conn
            while True:
                if conn is None or conn.closed:
                    conn = self._reconnect(conn)
                with self._lock:
                    ack = min(self._outstanding)
                try:
                    reply = self._run(self._request(conn, seq, ack, payload))
                    break
                except framing.ConnectionLost:
                    conn = self._reconnect(conn)
                except framing.RemoteError as e:
                    raise ConnectionError(f"Ray Client server error: {e}") from None
        finally:
            with self._lock:
                self._outstanding.discard(seq)
        self._receiving.on = True
        try:
            ok, value, text = pickle.loads(reply)
        except Exception as e:
            raise RuntimeError(f"Could not deserialize the Ray Client server's answer to {op}: {e!r}") from e
        finally:
            self._receiving.on = False
        if ok:
            return value
        if isinstance(value, BaseException):
            raise value
        raise RuntimeError(text)

    @staticmethod
    async def _request(conn: framing.Connection, seq: int, ack: int, payload: bytes) -> bytes:
        return await conn.request(msg.CLIENT_CALL, (seq, ack, payload))

    def __getattr__(self, name: str):
        if name in FORWARDED:
            return lambda *args, **kwargs: self._call(name, *args, **kwargs)
        raise AttributeError(name)

    @property
    def gcs(self) -> _Gcs:
        return self._gcs

    def task_context(self, name: str, default=None):
        return default  # the client is a driver: no current task, actor or placement group

    # ------------------------------------------------------------------ pushed by the server
    @handles(msg.CLIENT_LOGS)
    def client_logs(self, conn: framing.Connection, body: dict) -> None:
        from ray._private.log_printer import print_batch

        print_batch(body, self.info.get("node_ip_address", ""))

    # ------------------------------------------------------------------ ObjectRef hooks
    def add_local_ref(self, oid: bytes, owner: dict | None) -> None:
        with self._lock:
            self._local[oid] = self._local.get(oid, 0) + 1

    def on_ref_deserialized(self, ref: ObjectRef) -> None:
        if getattr(self._receiving, "on", False):
            with self._lock:
                self._receipts[ref._id] = self._receipts.get(ref._id, 0) + 1

    def on_ref_serialized(self, oid: bytes, owner: dict | None) -> None:
        pass  # the proxy holds it while any ref here does

    def remove_local_ref(self, oid: bytes) -> None:
        with self._lock:
            n = self._local.get(oid, 0) - 1
            if n > 0:
                self._local[oid] = n
                return
            self._local.pop(oid, None)
            receipts = self._receipts.pop(oid, 0)
            if not receipts:
                return
            self._releases.append((oid, receipts))
            if self._flush_scheduled or not self.connected:
                return
            self._flush_scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed at exit
            self.loop.call_soon_threadsafe(self._flush_releases)

    def _flush_releases(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            batch, self._releases = self._releases, []
        conn = self._conn
        if not batch:
            return
        if conn is None or conn.closed:
            with self._lock:
                self._releases[:0] = batch  # sent after the reconnection
            return
        try:
            conn.notify(msg.CLIENT_RELEASE, batch)
        except framing.ConnectionLost:
            with self._lock:
                self._releases[:0] = batch

    def future_for(self, ref: ObjectRef):
        import concurrent.futures

        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(self._call("get", [ref], None)[0])
            except BaseException as e:  # the task's error is the future's
                fut.set_exception(e)

        threading.Thread(target=run, name="ray-client-future", daemon=True).start()
        return fut
