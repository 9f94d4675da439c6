"""The Ray Client server: `ray start --head` runs it on `--ray-client-server-port` (10001 by default).

It accepts framed connections (the cluster's token, mutual proof: `_common/framing.py`), checks the client's
hello (protocol and Python versions), starts one proxy driver per session (`proxy.py`, its own job) and
relays the session's calls to it and its logs back. A session outlives a lost connection for the grace
period (`RAY_CLIENT_RECONNECT_GRACE_PERIOD`, 30 s): a client that reconnects with its id gets it back; else
the proxy is told to shut down, which ends the job and releases its non-detached actors and objects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ray._common import framing, lifetime
from ray._private import client_mode
from ray._version import version as ray_version
from ray.protocol import messages as msg
from ray.protocol.messages import Dispatcher, handles

logger = logging.getLogger("ray.client.server")

_CLIENT_ID = re.compile(r"^[0-9a-f]{32}$")


class Session:
    def __init__(self, client_id: str, proc: subprocess.Popen, proxy: framing.Connection):
        self.client_id = client_id
        self.proc = proc
        self.proxy = proxy
        self.client: framing.Connection | None = None
        self.expiry: asyncio.TimerHandle | None = None
        self.ended = False


class ClientServer:
    def __init__(self, gcs_address: str, host: str, port: int, logs_dir: str):
        self.gcs_address = gcs_address
        self.host = host
        self.port = port
        self.logs_dir = logs_dir
        self.sessions: dict[str, Session] = {}
        self._starting: dict[str, asyncio.Future] = {}
        self.dispatcher = Dispatcher(msg.CLIENT_SERVER, self)

    async def start(self) -> int:
        self.server, self.port = await framing.serve(self.dispatcher, host=self.host, port=self.port,
                                                     on_close=self._client_lost)
        return self.port

    # ------------------------------------------------------------------ client messages
    @staticmethod
    def _session(conn: framing.Connection) -> Session:
        session: Session | None = conn.peer_info.get("session")
        if session is None or session.ended:
            raise RuntimeError("this Ray Client session has ended" if session else "say client_hello first")
        return session

    @handles(msg.CLIENT_CALL)
    def client_call(self, conn: framing.Connection, body: tuple):
        return self._session(conn).proxy.request(msg.PROXY_CALL, body)

    @handles(msg.CLIENT_RELEASE)
    def client_release(self, conn: framing.Connection, body: list) -> None:
        with contextlib.suppress(framing.ConnectionLost):
            self._session(conn).proxy.notify(msg.PROXY_RELEASE, body)

    @handles(msg.CLIENT_SHUTDOWN)
    def client_shutdown(self, conn: framing.Connection, body: None):
        return self._end(self._session(conn), "the client called ray.shutdown()")

    @handles(msg.PROXY_LOGS)
    def proxy_logs(self, conn: framing.Connection, body: dict) -> None:
        session: Session | None = conn.peer_info.get("session")
        if session is not None and session.client is not None:
            with contextlib.suppress(framing.ConnectionLost):
                session.client.notify(msg.CLIENT_LOGS, body)

    @handles(msg.CLIENT_HELLO)
    def client_hello(self, conn: framing.Connection, hello: Any):
        return self._hello(conn, hello)

    async def _hello(self, conn: framing.Connection, hello: Any) -> dict:
        if not isinstance(hello, dict):
            raise ValueError("malformed client_hello")
        theirs = hello.get("protocol")
        if theirs != client_mode.PROTOCOL_VERSION or hello.get("ray_version") != ray_version:
            raise ValueError(
                f"Version mismatch: the client runs OpenRay {hello.get('ray_version')} (Ray Client protocol "
                f"{theirs}), this cluster OpenRay {ray_version} (protocol {client_mode.PROTOCOL_VERSION}). Install "
                f"the cluster's version on the client (pip install openray=={ray_version}).")
        if hello.get("python") != client_mode.python_version():
            raise ValueError(
                f"Python minor version mismatch: the client runs Python {hello.get('python')}, the cluster "
                f"Python {client_mode.python_version()}; functions pickled by one cannot be loaded by the other. "
                "Use the cluster's Python version on the client.")
        client_id = str(hello.get("client_id", ""))
        if not _CLIENT_ID.match(client_id):
            raise ValueError("malformed client id")
        session = self.sessions.get(client_id)
        if hello.get("reconnect"):
            if session is None or session.ended:
                raise ValueError(f"Ray Client session {client_id} is unknown to this server: it ended (its "
                                 "grace period ran out, or the server restarted).")
            self._attach(session, conn)
            logger.info("Client %s reconnected.", client_id)
            return {"session": client_id, "reconnected": True}
        if session is not None or client_id in self._starting:
            raise ValueError(f"Ray Client session {client_id} already exists")
        fut = self._starting[client_id] = asyncio.get_running_loop().create_future()
        try:
            session = await self._start_session(client_id)
        finally:
            del self._starting[client_id]
            fut.cancel()
        if conn.closed:
            self._expire_later(session)
        else:
            self._attach(session, conn)
        return {"session": client_id, "reconnected": False}

    def _attach(self, session: Session, conn: framing.Connection) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        old, session.client = session.client, conn
        conn.peer_info["session"] = session
        if old is not None and old is not conn:
            old.peer_info.pop("session", None)
            old.close()

    def _client_lost(self, conn: framing.Connection) -> None:
        session: Session | None = conn.peer_info.pop("session", None)
        if session is None or session.ended or session.client is not conn:
            return
        session.client = None
        self._expire_later(session)

    def _expire_later(self, session: Session) -> None:
        grace = client_mode.grace_period_s()
        logger.info("Client %s disconnected; its session ends in %g s unless it reconnects.",
                    session.client_id, grace)
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(
            grace, lambda: loop.create_task(self._end(session, f"no reconnection within {grace:g} s")))

    # ------------------------------------------------------------------ sessions
    async def _start_session(self, client_id: str) -> Session:
        socket_name = framing.abstract_socket_name("client", client_id[:24])
        log_base = os.path.join(self.logs_dir, f"ray_client_server_{client_id[:8]}")
        env = dict(os.environ)
        env.update(lifetime.env_for_child())
        with open(log_base + ".out", "ab") as out, open(log_base + ".err", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ray.util.client.server.proxy", "--gcs-address", self.gcs_address,
                 "--socket", socket_name], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                proxy = await framing.connect(f"unix:{socket_name}", self.dispatcher)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                tail = _tail(log_base + ".err")
                raise RuntimeError(f"the session's driver did not start (see {log_base}.err){tail}")
            await asyncio.sleep(0.05)
        session = Session(client_id, proc, proxy)
        proxy.peer_info["session"] = session
        proxy.on_close_callbacks.append(lambda _c: self._proxy_lost(session))
        self.sessions[client_id] = session
        logger.info("Client %s connected; its driver is pid %d.", client_id, proc.pid)
        return session

    def _proxy_lost(self, session: Session) -> None:
        if not session.ended:
            logger.warning("The driver of client %s exited (code %s).", session.client_id, session.proc.poll())
            asyncio.get_running_loop().create_task(self._end(session, "its driver exited"))

    async def _end(self, session: Session, why: str) -> bool:
        if session.ended:
            return True
        session.ended = True
        if session.expiry is not None:
            session.expiry.cancel()
        self.sessions.pop(session.client_id, None)
        logger.info("Ending the session of client %s: %s.", session.client_id, why)
        if not session.proxy.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.proxy.request(msg.PROXY_SHUTDOWN), 30)
            session.proxy.close()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, session.proc.wait), 10)
        except TimeoutError:
            session.proc.kill()
            await loop.run_in_executor(None, session.proc.wait)
        if session.client is not None:
            session.client.peer_info.pop("session", None)
        return True

    async def close(self) -> None:
        self.server.close()
        for session in list(self.sessions.values()):
            await self._end(session, "the client server is stopping")


def _tail(path: str) -> str:
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()[-10:]
    except OSError:
        return ""
    return (":\n" + "\n".join(lines)) if lines else ""


def main(argv: list[str] | None = None) -> None:
    lifetime.die_with_parent()
    parser = argparse.ArgumentParser(description="The Ray Client server (ray://) of a head node.")
    parser.add_argument("--address", required=True, help="the GCS address")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=client_mode.DEFAULT_CLIENT_PORT)
    parser.add_argument("--logs-dir", default=".")
    parser.add_argument("--port-file", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s")
    loop = framing.new_event_loop()
    asyncio.set_event_loop(loop)
    server = ClientServer(args.address, args.host, args.port, args.logs_dir)
    port = loop.run_until_complete(server.start())
    logger.info("Ray Client server listening on %s:%d", args.host, port)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        Path(tmp).write_text(str(port))
        os.replace(tmp, args.port_file)
    import signal

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
        loop.run_until_complete(server.close())
    finally:
        loop.close()


if __name__ == "__main__":
    main()
