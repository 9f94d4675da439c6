"""A framed connection that one thread drives itself, with blocking calls and no event loop: the same frames,
handshake and token as `framing.Connection` (the peer serves it like any other connection), for a caller that
sends a request and reads the answer on its own thread (`core_worker/actor_channels.py`). The event loop may
read it instead (`feed`), never at the same time: its owner says who reads.
"""

from __future__ import annotations

import itertools
import pickle
import socket
from typing import Any

from ray._common import auth as _auth
from ray._common.framing import _LEN, REQUEST, _sock_path
from ray._common.framing_handshake import ConnectionLost, client_handshake_blocking

_RECV = 256 * 1024
_UNKNOWN = -1.0  # the socket's mode is to be set again (an event loop watched it: uvloop makes it non-blocking)


class BlockingConnection:
    def __init__(self, sock: socket.socket, peer: str):
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self._buf = bytearray()
        self._ids = itertools.count(1)
        self._timeout: float | None = None  # the socket's current timeout (None: blocking), or _UNKNOWN

    @classmethod
    def connect(cls, address: str, timeout_s: float = 10.0) -> BlockingConnection:
        """`address` is `unix:<path>` or `host:port`, as for `framing.connect`. Returns once the handshake is
        done; raises OSError, ConnectionLost or AuthenticationError as `framing.connect` does."""
        if address.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = _sock_path(address[5:])
        else:
            host, _, port = address.rpartition(":")
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            target = (host, int(port))
        try:
            sock.settimeout(timeout_s)
            sock.connect(target)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            token = _auth.process_token()
            client_handshake_blocking(sock, None if token is None else token.encode(),
                                      f"The Ray process at {address}")
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return cls(sock, address)

    def send_request(self, method: str, body: Any) -> int:
        """Write one request (blocking until the kernel took it all); returns its request id."""
        rid = next(self._ids)
        payload = pickle.dumps((REQUEST, rid, method, body), protocol=5)
        self._set_timeout(None)
        self.sock.sendall(_LEN.pack(len(payload)) + payload)
        return rid

    def _set_timeout(self, timeout_s: float | None) -> None:
        if self._timeout != timeout_s:
            self.sock.settimeout(timeout_s)  # sets the descriptor's blocking mode too
            self._timeout = timeout_s

    def recv_frame(self, timeout_s: float | None) -> tuple | None:
        """The next frame `(kind, request id, method, body)`, waiting at most `timeout_s` (None: as long as it
        takes); None when the time ran out (what arrived of it is kept). ConnectionLost when the peer closed."""
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame
            self._set_timeout(timeout_s)
            if not self._receive():
                return None

    def feed(self) -> tuple | None:
        """The event loop's read, when the socket is readable: the next frame once it is whole, else None.
        ConnectionLost when the peer closed."""
        self._timeout = _UNKNOWN
        return self._take_frame() if self._receive(socket.MSG_DONTWAIT) else None

    def _receive(self, flags: int = 0) -> bool:
        """Add what the socket has to the buffer; False when nothing came in time (or, non-blocking, nothing is
        there yet). ConnectionLost when the peer closed."""
        try:
            data = self.sock.recv(_RECV, flags)
        except (TimeoutError, BlockingIOError):
            return False
        except OSError as e:
            raise ConnectionLost(f"connection to {self.peer} lost: {e}") from e
        if not data:
            raise ConnectionLost(f"connection to {self.peer} closed")
        self._buf += data
        return True

    def _take_frame(self) -> tuple | None:
        buf = self._buf
        if len(buf) < 4:
            return None
        (length,) = _LEN.unpack_from(buf, 0)
        if len(buf) < 4 + length:
            return None
        with memoryview(buf) as view, view[4:4 + length] as payload:
            frame = pickle.loads(payload)  # an authenticated peer (the handshake in `connect`)
        del buf[:4 + length]
        return frame

    def shutdown(self) -> None:
        """Any thread: end the connection; a thread blocked reading it gets ConnectionLost."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.shutdown()
        self.sock.close()
