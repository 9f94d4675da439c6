"""One Ray Client session's proxy driver: a real driver (core worker, its own job) on the head.

Started by the client server (`server.py`) for each new session; it listens on an abstract Unix socket
(framed, authenticated) that only the client server connects to, runs the client's calls on a thread pool
(a blocking `ray.get` does not hold up the others), answers a repeated call from its cache (see
`ray._private.client_mode`), holds every object ref it sent to the client until the client releases it,
and sends the job's worker logs to the client. `shutdown` (the client's `ray.shutdown()`, or the grace
period after a lost client running out) ends the job: its non-detached actors and objects go with it.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import pickle
import sys
import threading
import traceback
from typing import Any

import cloudpickle

import ray
from ray._common import framing, lifetime
from ray._common.gcs_client import GcsClient
from ray._private import client_mode
from ray._private import worker as ray_worker
from ray.actor import _method_meta
from ray.core_worker.object_ref import ObjectRef, collecting_refs
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher, handles

logger = logging.getLogger("ray.client.proxy")


class Proxy:
    def __init__(self, gcs_address: str, socket_name: str):
        self.gcs_address = gcs_address
        self.socket_name = socket_name
        self.loop = asyncio.get_event_loop()
        self.pool = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="ray-client-call")
        self.results: dict[int, asyncio.Future] = {}
        self.held: dict[bytes, list] = {}  # object id -> [ObjectRef, copies sent to the client]
        self.held_lock = threading.Lock()
        self.server_conn: framing.Connection | None = None
        self.kv = GcsClient(gcs_address)  # packages before the job exists
        self.done = asyncio.Event()

    async def serve(self) -> None:
        server, _ = await framing.serve(Dispatcher(msg.CLIENT_PROXY, self), unix_path=self.socket_name, on_close=self._on_close)
        await self.done.wait()
        await asyncio.sleep(0.1)  # the answer to `shutdown` goes out first
        server.close()

    def _on_close(self, conn: framing.Connection) -> None:
        if conn is self.server_conn:  # the client server is gone: so is the session
            self.loop.create_task(self._shutdown())

    # ------------------------------------------------------------------ messages from the client server
    def _first(self, conn: framing.Connection) -> None:
        if self.server_conn is None:
            self.server_conn = conn

    @handles(msg.PROXY_CALL)
    def proxy_call(self, conn: framing.Connection, body: tuple):
        self._first(conn)
        return self._call(body)

    @handles(msg.PROXY_RELEASE)
    def proxy_release(self, conn: framing.Connection, body: list) -> None:
        self._release(body)

    @handles(msg.PROXY_SHUTDOWN)
    def proxy_shutdown(self, conn: framing.Connection, body: None):
        return self._shutdown()

    async def _call(self, body) -> bytes:
        seq, ack, payload = body
        for old in [s for s in self.results if s < ack]:
            del self.results[old]
        fut = self.results.get(seq)
        if fut is None:  # a call seen before (re-sent after a reconnection) is answered from the cache
            fut = self.results[seq] = self.loop.run_in_executor(self.pool, self._execute, payload)
        return await asyncio.shield(fut)

    def _release(self, batch: list[tuple[bytes, int]]) -> None:
        dropped = []
        with self.held_lock:
            for oid, n in batch:
                entry = self.held.get(oid)
                if entry is None:
                    continue
                entry[1] -= n
                if entry[1] <= 0:
                    dropped.append(self.held.pop(oid)[0])
        del dropped  # the refs go here, outside the lock (their owner may free the objects)

    async def _shutdown(self) -> bool:
        if not self.done.is_set():
            await self.loop.run_in_executor(None, self._stop_driver)
            self.done.set()
        return True

    def _stop_driver(self) -> None:
        with self.held_lock:
            self.held.clear()
        ray.shutdown()
        self.kv.close()

    # ------------------------------------------------------------------ the calls, on the pool
    def _execute(self, payload: bytes) -> bytes:
        try:
            op, args, kwargs = pickle.loads(payload)
            result = self._run(op, args, kwargs)
        except BaseException as e:  # the client raises it (a task's error keeps its remote traceback)
            text = "".join(traceback.format_exception(e))
            try:
                return cloudpickle.dumps((False, e, text), protocol=5)
            except Exception:
                return cloudpickle.dumps((False, None, text), protocol=5)
        with collecting_refs() as refs:
            data = cloudpickle.dumps((True, result, ""), protocol=5)
        self._hold(refs)
        return data

    def _hold(self, refs: list[ObjectRef]) -> None:
        with self.held_lock:
            for ref in refs:
                entry = self.held.get(ref._id)
                if entry is None:
                    self.held[ref._id] = [ref, 1]
                else:
                    entry[1] += 1

    def _run(self, op: str, args: tuple, kwargs: dict) -> Any:
        if op == "init":
            return self._init(*args)
        if op.startswith("gcs."):
            name = op[4:]
            if name not in client_mode.GCS_FORWARDED:
                raise ValueError(f"{name} is not available through Ray Client")
            cw = ray_worker.global_worker.core_worker
            gcs = cw.gcs if cw is not None else self.kv
            return getattr(gcs, name)(*args, **kwargs)
        cw = ray_worker.global_worker.core_worker
        if cw is None:
            raise RuntimeError("The Ray Client session is not initialized (or was shut down).")
        if op == "export":
            pickled, kind = args
            return cw.functions.export_pickled(pickled, kind)
        if op == "class_meta":
            cls = cw.functions.load(args[0])
            return cls.__name__, _method_meta(cls)
        if op.startswith("placement_groups."):
            name = op[len("placement_groups."):]
            if name not in client_mode.PLACEMENT_GROUPS_FORWARDED:
                raise ValueError(f"{op} is not a Ray Client call")
            return getattr(cw.placement_groups, name)(*args, **kwargs)
        if op not in client_mode.FORWARDED:
            raise ValueError(f"{op} is not a Ray Client call")
        return getattr(cw, op)(*args, **kwargs)

    def _init(self, namespace: str | None, runtime_env: dict | None) -> dict:
        context = ray.init(address=self.gcs_address, namespace=namespace, runtime_env=runtime_env or None,
                           configure_logging=False)
        gw = ray_worker.global_worker
        if gw.log_printer is not None:
            gw.log_printer.sink = self._send_logs
        cw = gw.core_worker
        return {
            "job_id": cw.job_id.hex(), "node_id": cw.node_id, "namespace": cw.namespace,
            "runtime_env": cw.runtime_env, "gcs_address": self.gcs_address,
            "node_ip_address": context["node_ip_address"], "session_dir": context.get("session_dir", ""),
            "ray_version": ray.__version__, "python_version": client_mode.python_version(),
            "protocol_version": client_mode.PROTOCOL_VERSION,
        }

    def _send_logs(self, batch: dict) -> None:
        conn = self.server_conn
        if conn is not None:
            self.loop.call_soon_threadsafe(self._notify_logs, conn, batch)

    @staticmethod
    def _notify_logs(conn: framing.Connection, batch: dict) -> None:
        try:
            conn.notify(msg.PROXY_LOGS, batch)
        except framing.ConnectionLost:
            pass


def main(argv: list[str] | None = None) -> None:
    lifetime.die_with_parent()
    parser = argparse.ArgumentParser(description="A Ray Client session's proxy driver.")
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s")
    loop = framing.new_event_loop()
    asyncio.set_event_loop(loop)
    proxy = Proxy(args.gcs_address, args.socket)
    try:
        loop.run_until_complete(proxy.serve())
    finally:
        if ray.is_initialized():
            ray.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
