"""The lean framed protocol for hot paths (task push, actor calls, returns, object fetch, leases).

A frame is a 4-byte little-endian length followed by a pickled tuple `(kind, request_id, method, body)`.
Connections are persistent and full duplex: both sides may send requests; replies are matched by id.
A frame sent while nothing is queued is written at once; frames sent after it in the same event-loop turn
are joined into one `write()` at the next turn (batching without added latency, and no extra loop turn
for a lone reply or push).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

REQUEST, REPLY, ERROR, NOTIFY = 0, 1, 2, 3
_LEN = struct.Struct("<I")
Handler = Callable[["Connection", str, Any], Awaitable[Any] | Any]


class RemoteError(Exception):
    """The peer's handler raised; carries its message."""


class ConnectionLost(ConnectionError):
    pass


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


class Connection(asyncio.Protocol):
    """One framed connection. `handler(conn, method, body)` answers the peer's requests and notifies."""

    def __init__(self, handler: Handler | None = None, on_close: Callable[[Connection], None] | None = None):
        self.handler = handler
        self.on_close_callbacks: list[Callable[[Connection], None]] = [on_close] if on_close else []
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_event_loop()
        self._buf = bytearray()
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self.closed = False
        self.peer_info: dict = {}  # what the peer said about itself (worker id, job id...)
        self._closed_event = asyncio.Event()

    # -------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if n - pos - 4 < length:
                break
            frame = bytes(buf[pos + 4 : pos + 4 + length])
            pos += 4 + length
            self._dispatch(pickle.loads(frame))
        if pos:
            del buf[:pos]

    def connection_lost(self, exc) -> None:
        self.closed = True
        err = ConnectionLost(f"connection lost: {exc}" if exc else "connection closed by peer")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        self._closed_event.set()
        for cb in self.on_close_callbacks:
            try:
                cb(self)
            except Exception:
                logger.exception("on_close callback failed")

    # -------------------------------------------------------------- sending
    def _send(self, msg: tuple) -> None:
        if self.closed or self.transport is None:
            raise ConnectionLost("connection is closed")
        payload = pickle.dumps(msg, protocol=5)
        if not self._flush_scheduled:
            # Nothing queued: write now, and queue whatever else this turn sends behind a flush.
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
            self.transport.write(_LEN.pack(len(payload)) + payload)
            return
        self._out.append(_LEN.pack(len(payload)))
        self._out.append(payload)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self.closed and self.transport is not None:
            data = b"".join(self._out)
            self._out.clear()
            self.transport.write(data)

    def request(self, method: str, body: Any = None) -> asyncio.Future:
        """Send a request; the returned future resolves with the peer's answer."""
        rid = next(self._ids)
        fut = self.loop.create_future()
        self._pending[rid] = fut
        try:
            self._send((REQUEST, rid, method, body))
        except ConnectionLost as e:
            del self._pending[rid]
            fut.set_exception(e)
        return fut

    def notify(self, method: str, body: Any = None) -> None:
        self._send((NOTIFY, 0, method, body))

    def reply(self, rid: int, value: Any) -> None:
        with contextlib.suppress(ConnectionLost):
            self._send((REPLY, rid, None, value))

    def reply_error(self, rid: int, message: str) -> None:
        with contextlib.suppress(ConnectionLost):
            self._send((ERROR, rid, None, message))

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self._flush()
            self.transport.close()

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    # -------------------------------------------------------------- receiving
    def _dispatch(self, msg: tuple) -> None:
        kind, rid, method, body = msg
        if kind == REPLY or kind == ERROR:
            fut = self._pending.pop(rid, None)
            if fut is not None and not fut.done():
                if kind == REPLY:
                    fut.set_result(body)
                else:
                    fut.set_exception(RemoteError(body))
            return
        if self.handler is None:
            return
        try:
            result = self.handler(self, method, body)
        except Exception as e:
            logger.exception("handler for %s failed", method)
            if kind == REQUEST:
                self.reply_error(rid, f"{type(e).__name__}: {e}")
            return
        if kind != REQUEST:
            if asyncio.iscoroutine(result):
                self.loop.create_task(result)
            return
        if isinstance(result, Responder):
            result.conn, result.rid = self, rid
            return
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            task = asyncio.ensure_future(result)
            task.add_done_callback(lambda t, rid=rid: self._reply_from(rid, t, method))
        else:
            self.reply(rid, result)

    def _reply_from(self, rid: int, task: asyncio.Future, method: str) -> None:
        if task.cancelled():
            self.reply_error(rid, "cancelled")
        elif task.exception() is not None:
            e = task.exception()
            if not isinstance(e, ConnectionLost):
                logger.error("handler for %s failed: %r", method, e, exc_info=e)
            self.reply_error(rid, f"{type(e).__name__}: {e}")
        else:
            self.reply(rid, task.result())


class Responder:
    """A handler returns one to answer its request later with `send()`, called on the io thread.

    Unlike returning a future, the answer goes out in the same loop turn as `send()` (a future's done
    callbacks run a turn later): this is the task-push hot path.
    """

    __slots__ = ("conn", "rid")

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.rid = 0

    def send(self, value: Any) -> None:
        if self.conn is not None:
            self.conn.reply(self.rid, value)


def _sock_path(path: str) -> str:
    """`@name` is a Linux abstract socket: no file to clean up and no 108-byte path limit on the session dir."""
    return "\0" + path[1:] if path.startswith("@") else path


def abstract_socket_name(kind: str, unique: str) -> str:
    return f"@openray-{kind}-{unique}"


async def serve(handler: Handler, *, unix_path: str | None = None, host: str | None = None, port: int = 0,
                on_close: Callable[[Connection], None] | None = None) -> tuple[asyncio.AbstractServer, int]:
    """Listen on a Unix socket or TCP; returns (server, bound TCP port or 0)."""
    loop = asyncio.get_running_loop()

    def factory() -> Connection:
        return Connection(handler, on_close)

    if unix_path:
        if not unix_path.startswith("@"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(_sock_path(unix_path))  # bound here: uvloop refuses abstract names given as paths
        sock.listen(1024)
        sock.setblocking(False)
        server = await loop.create_unix_server(factory, sock=sock)
        return server, 0
    server = await loop.create_server(factory, host, port)
    return server, server.sockets[0].getsockname()[1]


async def connect(address: str, handler: Handler | None = None,
                  on_close: Callable[[Connection], None] | None = None) -> Connection:
    """`address` is `unix:<path>` or `host:port`."""
    loop = asyncio.get_running_loop()

    def factory() -> Connection:
        return Connection(handler, on_close)

    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(_sock_path(address[5:]))  # local and immediate
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        _, conn = await loop.create_unix_connection(factory, sock=sock)
    else:
        host, _, port = address.rpartition(":")
        _, conn = await loop.create_connection(factory, host, int(port))
        with contextlib.suppress(Exception):
            conn.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class ConnectionPool:
    """One persistent connection per address, created on first use."""

    def __init__(self, handler: Handler | None = None):
        self._handler = handler
        self._conns: dict[str, Connection] = {}
        self._connecting: dict[str, asyncio.Future] = {}

    async def get(self, address: str) -> Connection:
        conn = self._conns.get(address)
        if conn is not None and not conn.closed:
            return conn
        fut = self._connecting.get(address)
        if fut is None:
            fut = asyncio.ensure_future(connect(address, self._handler, self._forget))
            self._connecting[address] = fut
            try:
                conn = await fut
                conn.peer_info["address"] = address
                self._conns[address] = conn
            finally:
                self._connecting.pop(address, None)
            return conn
        return await asyncio.shield(fut)

    def _forget(self, conn: Connection) -> None:
        addr = conn.peer_info.get("address")
        if addr and self._conns.get(addr) is conn:
            del self._conns[addr]

    def close_all(self) -> None:
        for conn in list(self._conns.values()):
            conn.close()
        self._conns.clear()
