"""The lean framed protocol for hot paths (task push, actor calls, returns, object fetch, leases).

A frame is a 4-byte little-endian length followed by a pickled tuple `(kind, request_id, method, body)`.
Connections are persistent and full duplex: both sides may send requests; replies are matched by id.
Bulk bytes (a chunk of a large object) are not pickled: a handler answers with a `RawReply`, which goes out as
a RAW frame `(RAW, request_id, None, n)` followed by the n bytes as they are, and the requester, which named
a buffer with `request_into`, receives them straight into that buffer (the receive side is an
`asyncio.BufferedProtocol`: the kernel copies the payload into the destination, and nothing else does).
Frames themselves are received into one preallocated buffer, grown once to a frame's length when a frame
is larger than it (anonymous memory for a large one, whose pages exist only once its bytes arrive).
A frame sent while nothing is queued is written at once; frames sent after it in the same event-loop turn
are joined into one `write()` at the next turn (batching without added latency, and no extra loop turn
for a lone reply or push). Another thread may write a request itself (`request_from_thread`) while nothing
waits to be written: a caller about to block on the answer then spares the wakeup of the loop's thread. A
lock keeps the frames whole and in order.

Every connection made by `serve`/`connect` starts with an authentication handshake (mutual, once per
connection; the token itself never crosses the wire), and nothing is unpickled before it succeeds:

    server -> client   SERVER_HELLO  b"ORAY" | version (1) | flags (1) | server nonce (32)
    client -> server   CLIENT_HELLO  b"ORAY" | version (1) | flags (1) | client nonce (32) | client proof (32)
    server -> client   server proof (32)
    ... then frames both ways

flags bit 0: this side uses token authentication. proof = HMAC-SHA256(token, label | server nonce |
client nonce), the label differing per direction so one side's proof is never valid for the other. The
server checks the client's proof (constant time) on the fixed-size hello alone; a wrong or missing proof,
wrong magic or a hello that does not come within `RAY_framed_handshake_timeout_s` (30 s) aborts the
connection. The client checks the server's proof before it decodes a byte from the server, so a process
that does not hold the token cannot feed it pickles either. With authentication disabled on both sides the
proofs are zeros.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import mmap
import os
import pickle
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ray._common import auth as _auth
from ray._common.config import config
from ray._common.framing_handshake import (  # noqa: F401 - the handshake's names, as framing's (tests, callers)
    _CLIENT_WAITS_HELLO,
    _CLIENT_WAITS_PROOF,
    _OPEN,
    _SERVER_WAITS_HELLO,
    CLIENT_HELLO_LEN,
    FLAG_TOKEN,
    MAGIC,
    NONCE_LEN,
    PROOF_LEN,
    SERVER_HELLO_LEN,
    VERSION,
    ConnectionLost,
    Handshake,
    HandshakeError,
)
from ray._common.framing_replies import RawReply, ReplyCallback, Responder  # noqa: F401 - as framing's names
from ray.exceptions import AuthenticationError

logger = logging.getLogger(__name__)

REQUEST, REPLY, ERROR, NOTIFY, RAW = 0, 1, 2, 3, 4
_LEN = struct.Struct("<I")
# The receive buffer: frames up to this size are decoded from it in place; a larger frame gets a buffer of
# its own length once its header has arrived.
_RECV_BUF = 256 * 1024
# A frame's buffer above this size is anonymous memory (mmap), not a bytearray: `bytearray(n)` writes n zeros
# at once, so a frame's length header alone (up to 4 GiB, from a faulty peer) would cost that much memory and
# time; the kernel hands out a mapping's pages only as the frame's bytes arrive.
_ZEROED_BUF_MAX = 4 * 1024 * 1024
# Raw bytes nobody waits for any more (a request that timed out) are read into this much scratch space.
_SINK_BYTES = 1024 * 1024
# A raw payload is handed to the transport this much at a time, the next piece once the transport has room
# (asyncio's own transport copies what the socket does not take at once into its buffer).
_RAW_PIECE = 1024 * 1024
Handler = Callable[["Connection", str, Any], Awaitable[Any] | Any]

# ---- the handshake (see the module docstring and `framing_handshake`)
HANDSHAKE_TIMEOUT_S: float | None = None  # None: config().framed_handshake_timeout_s (RAY_framed_handshake_timeout_s)


def _handshake_timeout_s() -> float:
    return HANDSHAKE_TIMEOUT_S if HANDSHAKE_TIMEOUT_S is not None else config().framed_handshake_timeout_s


class RemoteError(Exception):
    """The peer's handler raised; carries its message."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


class Connection(Handshake, asyncio.BufferedProtocol):
    """One framed connection. `handler(conn, method, body)` answers the peer's requests and notifies."""

    def __init__(self, handler: Handler | None = None, on_close: Callable[[Connection], None] | None = None,
                 *, handshake: str | None = None, token: bytes | None = None, peer: str = "",
                 thread_writes: bool | None = None):
        """`handshake`: None (frames from the first byte: a socketpair in tests), "server" or "client";
        `token`: this process's token (None: authentication disabled); `peer`: for error messages;
        `thread_writes`: other threads may write on it (`request_from_thread`; default: a connecting side)."""
        self.handler = handler
        self.on_close_callbacks: list[Callable[[Connection], None]] = [on_close] if on_close else []
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_event_loop()
        self._rbuf = bytearray(_RECV_BUF)
        self._rview = memoryview(self._rbuf)
        self._start = 0  # the first byte of `_rbuf` not decoded yet
        self._end = 0  # the end of what was received into `_rbuf`
        self._into: dict[int, memoryview] = {}  # request id -> where its raw reply goes (`request_into`)
        # While a raw payload streams in: its request, where the rest goes, how much is left.
        self._raw_rid = 0
        self._raw_dest: memoryview | None = None
        self._raw_pos = 0
        self._raw_left = 0
        self._raw_len = 0
        self._raw_error: str | None = None  # set: the bytes go to scratch space and the request fails
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._out: list[bytes] = []
        self._flush_scheduled = False
        # Held while anything writes, or decides to: the loop's thread and `request_from_thread` callers.
        self._write_lock = threading.Lock()
        # A duplicate of a connecting side's socket for `request_from_thread` (-1: none): its own descriptor, so a
        # thread never writes to a number the loop closed and the process reused meanwhile. Closed with the
        # connection, which the peer sees end when both are closed (at `connection_lost`, right after).
        self._fd = -1
        self._thread_writes = handshake != "server" if thread_writes is None else thread_writes
        # Raw payloads being written (header, payload), in order; frames sent meanwhile wait in `_out`.
        self._raw_out: collections.deque[tuple[bytes, memoryview]] = collections.deque()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.closed = False
        self.peer_info: dict = {}  # what the peer said about itself (worker id, job id...)
        self._closed_event = asyncio.Event()
        self._token = token
        self._peer = peer
        self._hs = _OPEN if handshake is None else (_SERVER_WAITS_HELLO if handshake == "server" else _CLIENT_WAITS_HELLO)
        self._nonce = b""
        self._server_nonce = b""
        self._hs_timer: asyncio.TimerHandle | None = None
        # Resolved when frames may flow (at once without a handshake); failed with why they never will.
        self.handshake_done: asyncio.Future = self.loop.create_future()
        if self._hs == _OPEN:
            self.handshake_done.set_result(None)

    # -------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and self._thread_writes:
            self._fd = os.dup(sock.fileno())
        if self._hs == _OPEN:
            return
        self._hs_timeout_s = _handshake_timeout_s()
        self._hs_timer = self.loop.call_later(self._hs_timeout_s, self._handshake_timed_out)
        if self._hs == _SERVER_WAITS_HELLO:
            self._nonce = os.urandom(NONCE_LEN)
            flags = FLAG_TOKEN if self._token is not None else 0
            transport.write(MAGIC + bytes((VERSION, flags)) + self._nonce)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._raw_left:
            # A raw payload: the kernel copies it straight into its destination (scratch space when
            # nobody waits for it), never through the frame buffer.
            pos = self._raw_pos
            return self._raw_dest[pos:pos + self._raw_left]
        if self._end == len(self._rbuf):
            self._make_room(0)
        return self._rview[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._raw_left:
            self._raw_left -= nbytes
            if self._raw_error is None:
                self._raw_pos += nbytes
            if not self._raw_left:
                self._raw_finish()
            return
        self._end += nbytes
        if self._hs:
            if not self._handshake_step():
                return
        self._decode()

    def _decode(self) -> None:
        buf, view = self._rbuf, self._rview
        start, end = self._start, self._end
        while end - start >= 4:
            (length,) = _LEN.unpack_from(buf, start)
            if end - start - 4 < length:
                if start + 4 + length > len(buf):
                    # Received into a buffer of the frame's length from here on: no copy of it is made.
                    self._start = start
                    self._make_room(4 + length)
                    return
                break
            with view[start + 4 : start + 4 + length] as frame:
                message = pickle.loads(frame)
            start += 4 + length
            if message[0] == RAW:
                start = self._raw_begin(message, start, end)
                if self._raw_left:  # all that was buffered belonged to the payload
                    self._start = self._end = 0
                    return
                continue
            self._dispatch(message)
        if start == end:
            self._start = self._end = 0
            if len(buf) > _RECV_BUF:  # a large frame's buffer is not kept
                self._rbuf = bytearray(_RECV_BUF)
                self._rview = memoryview(self._rbuf)
        else:
            self._start = start

    def _make_room(self, need: int) -> None:
        """Move the bytes not decoded yet to the front of a fresh buffer of at least `need` bytes."""
        pending = self._end - self._start
        size = max(_RECV_BUF, need)
        rbuf: bytearray | mmap.mmap = bytearray(size) if size <= _ZEROED_BUF_MAX else mmap.mmap(-1, size)
        rbuf[:pending] = self._rview[self._start:self._end]
        self._rbuf, self._rview = rbuf, memoryview(rbuf)
        self._start, self._end = 0, pending

    def _raw_begin(self, header: tuple, start: int, end: int) -> int:
        """A RAW frame's header was decoded at `start`: its payload follows. Returns where the payload ends
        in the buffer (or the buffer's end, when the rest of it is still to come)."""
        _, rid, _, length = header
        dest = self._into.pop(rid, None)
        fut = self._pending.get(rid)
        error = None
        if fut is None or fut.done():
            error = "nobody waits for it"
        elif dest is None:
            error = "raw bytes came in reply to a request that named no buffer for them"
        elif dest.nbytes != length:
            error = f"a raw reply of {length} bytes for a buffer of {dest.nbytes}"
        here = min(end - start, length)
        if error is None and here:
            dest[:here] = self._rview[start:start + here]
        self._raw_rid, self._raw_len, self._raw_error = rid, length, error
        self._raw_left = length - here
        if not self._raw_left:
            self._raw_finish()
        elif error is None:
            self._raw_dest, self._raw_pos = dest, here
        else:
            self._raw_dest, self._raw_pos = memoryview(bytearray(min(self._raw_left, _SINK_BYTES))), 0
        return start + here

    def _raw_finish(self) -> None:
        fut = self._pending.pop(self._raw_rid, None)
        self._raw_dest = None
        if fut is not None and not fut.done():
            if self._raw_error is None:
                fut.set_result(self._raw_len)
            else:
                fut.set_exception(RemoteError(self._raw_error))

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def connection_lost(self, exc) -> None:
        with self._write_lock:  # a thread's request is in `_pending` before this, or refused after it
            self.closed = True
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        self._can_write.set()  # a raw writer waiting for room stops
        if self._hs_timer is not None:
            self._hs_timer.cancel()
            self._hs_timer = None
        if not self.handshake_done.done():
            if self._hs == _CLIENT_WAITS_PROOF:
                # The server hung up on our proof: it does not accept this process's token.
                self.handshake_done.set_exception(
                    AuthenticationError(_auth.refused_message(self._where(), self._token is not None)))
            else:
                self.handshake_done.set_exception(HandshakeError(
                    f"{self._where()} closed the connection during the handshake: {exc or 'closed by peer'}"))
            self.handshake_done.exception()  # retrieved: nobody may be awaiting it
        if self._hs:
            # Never opened: no request was sent or received on it, and nobody above knows it exists.
            self._closed_event.set()
            return
        err = ConnectionLost(f"connection lost: {exc}" if exc else "connection closed by peer")
        with self._write_lock:
            pending, self._pending = self._pending, {}  # a callback run here may send elsewhere
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._into.clear()
        self._raw_dest, self._raw_left = None, 0
        self._closed_event.set()
        for cb in self.on_close_callbacks:
            try:
                cb(self)
            except Exception:
                logger.exception("on_close callback failed")

    # -------------------------------------------------------------- sending
    def _send(self, msg: tuple) -> None:
        if self.closed or self.transport is None or self._hs:
            raise ConnectionLost("connection is closed" if self._hs == _OPEN else "the handshake is not done")
        payload = pickle.dumps(msg, protocol=5)
        with self._write_lock:
            if not self._flush_scheduled and not self._raw_out:
                # Nothing queued: write now, and queue whatever else this turn sends behind a flush.
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)
                self.transport.write(_LEN.pack(len(payload)) + payload)
                return
            self._out.append(_LEN.pack(len(payload)))
            self._out.append(payload)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        with self._write_lock:
            self._flush_scheduled = False
            if self._out and not self._raw_out and not self.closed and self.transport is not None:
                data = b"".join(self._out)
                self._out.clear()
                self.transport.write(data)

    def request_from_thread(self, method: str, body: Any, callback: Callable[..., None], *args: Any) -> bool:
        """`request_with_callback` from a thread other than the loop's, written by this thread, when nothing
        waits to be written before it; False (nothing sent) otherwise: the caller sends it on the loop's thread.
        What the socket does not take at once goes out from the loop's thread, before any later frame."""
        rid = next(self._ids)
        return self._write_from_thread(pickle.dumps((REQUEST, rid, method, body), protocol=5), rid,
                                       ReplyCallback(callback, args))

    def reply_from_thread(self, rid: int, value: Any) -> bool:
        """`reply` from a thread other than the loop's, as `request_from_thread` writes (False: not sent)."""
        return self._write_from_thread(pickle.dumps((REPLY, rid, None, value), protocol=5))

    def _write_from_thread(self, payload: bytes, rid: int = 0, waiter: ReplyCallback | None = None) -> bool:
        with self._write_lock:
            transport = self.transport
            if (self.closed or self._hs or self._fd < 0 or self._flush_scheduled or self._out or self._raw_out
                    or transport is None or transport.get_write_buffer_size()):
                return False
            if waiter is not None:
                self._pending[rid] = waiter  # type: ignore[assignment]
            frame = _LEN.pack(len(payload)) + payload
            try:
                written = os.write(self._fd, frame)
            except BlockingIOError:
                written = 0
            except OSError:  # going away: the loop's thread sees it and fails the request
                return True
            if written < len(frame):
                self._out.append(frame[written:])
                self._flush_scheduled = True
                self.loop.call_soon_threadsafe(self._flush)
        return True

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

    def request_with_callback(self, method: str, body: Any, callback: Callable[..., None], *args: Any) -> None:
        """Send a request; `callback(reply, error, *args)` runs on the io thread as the answer is decoded (error:
        a `RemoteError`, or `ConnectionLost` when the connection goes first). No future, and no loop turn between
        the answer and the callback: the hot path of task pushes."""
        rid = next(self._ids)
        waiter = ReplyCallback(callback, args)
        self._pending[rid] = waiter  # type: ignore[assignment]
        try:
            self._send((REQUEST, rid, method, body))
        except ConnectionLost as e:
            del self._pending[rid]
            self.loop.call_soon(waiter.set_exception, e)  # later, as a future's callback: not inside the caller

    def request_into(self, method: str, body: Any, into: Any) -> asyncio.Future:
        """A request whose answer the peer sends as a `RawReply`: its bytes are received straight into `into`
        (a writable buffer of exactly the reply's length). The future resolves with the number of bytes, or
        with the peer's plain reply (e.g. None) if it sent one; `into` must stay valid until then."""
        rid = next(self._ids)
        fut = self.loop.create_future()
        self._pending[rid] = fut
        self._into[rid] = memoryview(into).cast("B")
        try:
            self._send((REQUEST, rid, method, body))
        except ConnectionLost as e:
            del self._pending[rid], self._into[rid]
            fut.set_exception(e)
        return fut

    def notify(self, method: str, body: Any = None) -> None:
        self._send((NOTIFY, 0, method, body))

    def reply(self, rid: int, value: Any) -> None:
        with contextlib.suppress(ConnectionLost):
            if type(value) is RawReply:
                self._send_raw(rid, value.data)
                return
            self._send((REPLY, rid, None, value))

    def _send_raw(self, rid: int, data: Any) -> None:
        if self.closed or self.transport is None or self._hs:
            raise ConnectionLost("connection is closed")
        view = memoryview(data).cast("B")
        header = pickle.dumps((RAW, rid, None, view.nbytes), protocol=5)
        self._flush()  # frames sent before it go first
        with self._write_lock:  # no thread writes while a raw payload goes out
            self._raw_out.append((_LEN.pack(len(header)) + header, view))
        if len(self._raw_out) == 1:
            self.loop.create_task(self._write_raw())

    async def _write_raw(self) -> None:
        """Write the queued raw payloads a piece at a time, each piece when the transport has room: the
        socket takes them from the sender's buffer (a mapped file), and no copy of a whole payload waits in
        the transport. Frames sent meanwhile go out after the payload being written."""
        try:
            while self._raw_out and not self.closed:
                header, view = self._raw_out[0]
                self.transport.write(header)
                for offset in range(0, view.nbytes, _RAW_PIECE):
                    if not self._can_write.is_set():
                        await self._can_write.wait()
                        if self.closed:
                            return
                    self.transport.write(view[offset:offset + _RAW_PIECE])
                with self._write_lock:
                    self._raw_out.popleft()
                    if self._out:
                        data = b"".join(self._out)
                        self._out.clear()
                        self.transport.write(data)
        finally:
            if self.closed:
                self._raw_out.clear()

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
            if self._into:
                self._into.pop(rid, None)
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


def _sock_path(path: str) -> str:
    """`@name` is a Linux abstract socket: no file to clean up and no 108-byte path limit on the session dir."""
    return "\0" + path[1:] if path.startswith("@") else path


def abstract_socket_name(kind: str, unique: str) -> str:
    return f"@openray-{kind}-{unique}"


def _process_token() -> bytes | None:
    token = _auth.process_token()  # AuthenticationError (Ray's message) when on and there is none
    return None if token is None else token.encode()


async def serve(handler: Handler, *, unix_path: str | None = None, host: str | None = None, port: int = 0,
                on_close: Callable[[Connection], None] | None = None,
                thread_writes: bool = False) -> tuple[asyncio.AbstractServer, int]:
    """Listen on a Unix socket or TCP; returns (server, bound TCP port or 0). Every connection must pass
    the handshake (this process's token) before a frame of it is decoded. `thread_writes`: other threads may
    answer on its connections (`reply_from_thread`)."""
    loop = asyncio.get_running_loop()
    token = _process_token()

    def factory() -> Connection:
        return Connection(handler, on_close, handshake="server", token=token, thread_writes=thread_writes)

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
    """`address` is `unix:<path>` or `host:port`. Returns once the handshake is done; raises
    AuthenticationError when the peer refuses this process's token or cannot prove it holds it."""
    loop = asyncio.get_running_loop()
    token = _process_token()

    def factory() -> Connection:
        return Connection(handler, on_close, handshake="client", token=token, peer=address)

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
    try:
        await asyncio.shield(conn.handshake_done)
    except BaseException:
        conn.close()
        raise
    return conn


async def probe(host: str, port: int, timeout_s: float) -> bool | None:
    """Is a process listening on `host:port`? Connects and closes at once, sending and reading nothing (the
    peer's handshake never starts). True: the connection was accepted (the kernel accepts into the backlog
    even while the process is busy or stopped); False: refused (nothing listens there: a process that died
    closed its listening socket); None: neither within `timeout_s` (an unreachable host, a dropped SYN)."""
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await asyncio.wait_for(loop.create_connection(asyncio.Protocol, host, port), timeout_s)
    except ConnectionRefusedError:
        return False
    except (OSError, TimeoutError):
        return None
    transport.abort()
    return True


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
