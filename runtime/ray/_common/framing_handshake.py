"""The framed protocol's authentication handshake (see `ray._common.framing`'s docstring for the exchange):
its constants, proofs and the steps of a `Connection` (a mixin: the connection's receive buffer holds the
handshake's bytes until it is done). Nothing here unpickles: only fixed-size fields are compared.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from typing import Any

from ray._common import auth as _auth
from ray.exceptions import AuthenticationError

logger = logging.getLogger("ray._common.framing")

MAGIC = b"ORAY"
VERSION = 1
FLAG_TOKEN = 1
NONCE_LEN = PROOF_LEN = 32
SERVER_HELLO_LEN = len(MAGIC) + 2 + NONCE_LEN
CLIENT_HELLO_LEN = len(MAGIC) + 2 + NONCE_LEN + PROOF_LEN
_CLIENT_LABEL = b"openray-framed-v1-client"
_SERVER_LABEL = b"openray-framed-v1-server"
_ZERO_PROOF = bytes(PROOF_LEN)
# states of Connection._hs (0: open, frames flow)
_OPEN, _SERVER_WAITS_HELLO, _CLIENT_WAITS_HELLO, _CLIENT_WAITS_PROOF = 0, 1, 2, 3


_refusals = {"last_logged": 0.0, "unlogged": 0}


def _log_refusal(peer: str, why: str) -> None:
    """A warning per refused connection, at most one every 10 s (a scanner must not fill the log)."""
    now = time.monotonic()
    if now - _refusals["last_logged"] < 10:
        _refusals["unlogged"] += 1
        return
    more = f" ({_refusals['unlogged']} more refused since the last such message)" if _refusals["unlogged"] else ""
    _refusals["last_logged"], _refusals["unlogged"] = now, 0
    logger.warning("Refused a framed connection from %s: %s%s.", peer, why, more)


def _proof(token: bytes | None, label: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    if token is None:
        return _ZERO_PROOF
    return hmac.new(token, label + server_nonce + client_nonce, hashlib.sha256).digest()


class ConnectionLost(ConnectionError):
    pass


class HandshakeError(ConnectionLost):
    """The peer is not an OpenRay framed endpoint, or closed before the handshake finished."""


def client_answer(hello: bytes, token: bytes | None, where: str) -> tuple[bytes, bytes, bytes]:
    """Client side: check the server's hello; returns (server nonce, client nonce, the client's hello to send).
    Raises HandshakeError or AuthenticationError (a ConnectionLost) when the server is not one to talk to."""
    if hello[:len(MAGIC)] != MAGIC:
        raise HandshakeError(f"{where} is not an OpenRay framed endpoint")
    version, flags = hello[4], hello[5]
    if version != VERSION:
        raise HandshakeError(f"{where} speaks handshake version {version}, this process {VERSION}")
    server_uses_token = bool(flags & FLAG_TOKEN)
    if server_uses_token and token is None:
        raise AuthenticationError(_auth.refused_message(where, sent_token=False))
    if not server_uses_token and token is not None:
        raise AuthenticationError(
            f"{where} does not use token authentication (its cluster runs with RAY_AUTH_MODE=disabled), so it "
            "cannot prove it belongs to this cluster; this process exchanges no data with it. Set "
            "RAY_AUTH_MODE=disabled here too to connect to such a cluster.")
    server_nonce = bytes(hello[6:SERVER_HELLO_LEN])
    nonce = os.urandom(NONCE_LEN)
    proof = _proof(token, _CLIENT_LABEL, server_nonce, nonce)
    return server_nonce, nonce, MAGIC + bytes((VERSION, FLAG_TOKEN if token is not None else 0)) + nonce + proof


def check_server_proof(given: bytes, token: bytes | None, server_nonce: bytes, nonce: bytes, where: str) -> None:
    """Client side: the server's proof that it holds the token (AuthenticationError if not)."""
    if not hmac.compare_digest(given, _proof(token, _SERVER_LABEL, server_nonce, nonce)):
        raise AuthenticationError(f"{where} could not prove that it holds this cluster's authentication token; "
                                  "this process exchanges no data with it.")


def client_handshake_blocking(sock: Any, token: bytes | None, where: str) -> None:
    """The client's side of the handshake on a blocking socket (a thread's own connection, no event loop).
    Raises as a `framing.Connection` client's handshake fails."""
    hello = _recv_exactly(sock, SERVER_HELLO_LEN)
    if hello is None or hello[:len(MAGIC)] != MAGIC[:len(hello)]:
        raise HandshakeError(f"{where} is not an OpenRay framed endpoint")
    server_nonce, nonce, client_hello = client_answer(hello, token, where)
    sock.sendall(client_hello)
    proof = _recv_exactly(sock, PROOF_LEN)
    if proof is None:  # the server hung up on our proof
        raise AuthenticationError(_auth.refused_message(where, sent_token=token is not None))
    check_server_proof(proof, token, server_nonce, nonce, where)


def _recv_exactly(sock: Any, n: int) -> bytes | None:
    """`n` bytes, or None if the peer closed first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class Handshake:
    """The handshake's steps, mixed into `framing.Connection`, whose state they use: `_hs` (the state),
    `_rview`/`_start`/`_end` (the receive buffer), `_token`, `_nonce`, `_server_nonce`, `_peer`, `_hs_timer`,
    `_hs_timeout_s`, `transport`, `closed` and `handshake_done`."""

    _hs: int
    _rview: memoryview
    _start: int
    _end: int
    _token: bytes | None
    _nonce: bytes
    _server_nonce: bytes
    _peer: str
    _hs_timer: Any
    _hs_timeout_s: float
    transport: Any
    closed: bool
    handshake_done: Any

    def _handshake_step(self) -> bool:
        """Consume handshake bytes from the buffer; True once frames may be decoded from what is left.
        Nothing here unpickles: only fixed-size fields are compared."""
        buf = bytes(self._rview[self._start:self._end])  # a few bytes, once per connection
        if self._hs == _SERVER_WAITS_HELLO:
            if bytes(buf[:len(MAGIC)]) != MAGIC[:len(buf)]:
                return self._refuse("not an OpenRay framed client")
            if len(buf) < CLIENT_HELLO_LEN:
                return False
            version, flags = buf[4], buf[5]
            client_nonce = bytes(buf[6:6 + NONCE_LEN])
            given = bytes(buf[6 + NONCE_LEN:CLIENT_HELLO_LEN])
            if version != VERSION:
                return self._refuse(f"handshake version {version}, expected {VERSION}")
            if self._token is not None:
                expected = _proof(self._token, _CLIENT_LABEL, self._nonce, client_nonce)
                if not (flags & FLAG_TOKEN) or not hmac.compare_digest(given, expected):
                    return self._refuse("missing or wrong authentication token")
            self._start += CLIENT_HELLO_LEN
            self.transport.write(_proof(self._token, _SERVER_LABEL, self._nonce, client_nonce))
            self._open()
            return True
        if self._hs == _CLIENT_WAITS_HELLO:
            if bytes(buf[:len(MAGIC)]) != MAGIC[:len(buf)]:
                return self._fail(HandshakeError(f"{self._where()} is not an OpenRay framed endpoint"))
            if len(buf) < SERVER_HELLO_LEN:
                return False
            hello, buf = buf[:SERVER_HELLO_LEN], buf[SERVER_HELLO_LEN:]
            try:
                self._server_nonce, self._nonce, client_hello = client_answer(hello, self._token, self._where())
            except (ConnectionLost, AuthenticationError) as err:
                return self._fail(err)
            self._start += SERVER_HELLO_LEN
            self.transport.write(client_hello)
            self._hs = _CLIENT_WAITS_PROOF
        if self._hs == _CLIENT_WAITS_PROOF:
            if len(buf) < PROOF_LEN:
                return False
            try:
                check_server_proof(bytes(buf[:PROOF_LEN]), self._token, self._server_nonce, self._nonce,
                                   self._where())
            except (ConnectionLost, AuthenticationError) as err:
                return self._fail(err)
            self._start += PROOF_LEN
            self._open()
            return True
        return False

    def _where(self) -> str:
        return f"The Ray process at {self._peer}" if self._peer else "The Ray process at the other end"

    def _open(self) -> None:
        self._hs = _OPEN
        if self._hs_timer is not None:
            self._hs_timer.cancel()
            self._hs_timer = None
        if not self.handshake_done.done():
            self.handshake_done.set_result(None)

    def _refuse(self, why: str) -> bool:
        """Server side: drop a peer that did not authenticate, without a byte of it decoded."""
        _log_refusal(self._peer_name(), why)
        self._start = self._end = 0
        if self.transport is not None:
            self.transport.abort()
        return False

    def _fail(self, err: Exception) -> bool:
        """Client side: give up on a server that did not authenticate (or is not ours)."""
        self._start = self._end = 0
        if not self.handshake_done.done():
            self.handshake_done.set_exception(err)
        if self.transport is not None:
            self.transport.abort()
        return False

    def _peer_name(self) -> str:
        if self.transport is None:
            return "?"
        peer = self.transport.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "a local socket"

    def _handshake_timed_out(self) -> None:
        self._hs_timer = None
        if self._hs and not self.closed:
            if self._hs == _SERVER_WAITS_HELLO:
                self._refuse(f"no handshake within {self._hs_timeout_s:g} s")
            else:
                self._fail(HandshakeError(f"{self._where()} did not complete the handshake within "
                                          f"{self._hs_timeout_s:g} s"))
