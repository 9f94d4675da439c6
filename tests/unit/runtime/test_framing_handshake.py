"""The framed protocol's authentication handshake, between two real connected sockets in one process.

The property that matters: nothing a peer sends is unpickled before that peer has proven it holds the
cluster's token, on either side. A "pickle bomb" (a pickle whose loading creates a file) stands in for an
attacker's payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import pickle
import socket
import struct
from pathlib import Path

import pytest
from ray._common import framing, framing_handshake
from ray.exceptions import AuthenticationError

TOKEN = b"the-cluster-token"


class _Bomb:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))  # loading it creates a directory: proof it was unpickled


def _frame(obj) -> bytes:
    payload = pickle.dumps(obj)
    return struct.pack("<I", len(payload)) + payload


async def _connected(server_token: bytes | None, client_token: bytes | None, handler=None):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    calls: list = []

    def record(conn, method, body):
        calls.append((method, body))
        return ("ok", body)

    _, server = await loop.create_unix_connection(
        lambda: framing.Connection(handler or record, handshake="server", token=server_token), sock=a)
    _, client = await loop.create_unix_connection(
        lambda: framing.Connection(handshake="client", token=client_token, peer="the test server"), sock=b)
    return server, client, calls


def test_same_token_then_frames_flow_both_ways():
    async def main():
        server, client, calls = await _connected(TOKEN, TOKEN)
        await asyncio.wait_for(client.handshake_done, 5)
        assert await client.request("m", 1) == ("ok", 1)
        assert calls == [("m", 1)]
        server.close()

    asyncio.run(main())


def test_both_sides_disabled_still_speak():
    async def main():
        server, client, _ = await _connected(None, None)
        await asyncio.wait_for(client.handshake_done, 5)
        assert await client.request("m", 2) == ("ok", 2)
        server.close()

    asyncio.run(main())


@pytest.mark.parametrize("client_token", [b"wrong-token", None])
def test_a_client_without_the_token_is_refused_with_a_clear_error(client_token):
    async def main():
        server, client, calls = await _connected(TOKEN, client_token)
        with pytest.raises(AuthenticationError) as err:
            await asyncio.wait_for(client.handshake_done, 5)
        text = str(err.value)
        assert "RAY_AUTH_TOKEN" in text
        assert ("refused this process's authentication token" in text) == (client_token is not None)
        await asyncio.wait_for(server.wait_closed(), 5)
        assert calls == []

    asyncio.run(main())


def test_a_client_with_a_token_does_not_talk_to_a_server_without_auth():
    async def main():
        server, client, _ = await _connected(None, TOKEN)
        with pytest.raises(AuthenticationError, match="does not use token authentication"):
            await asyncio.wait_for(client.handshake_done, 5)

    asyncio.run(main())


def test_server_never_unpickles_from_a_peer_that_did_not_authenticate(tmp_path):
    """Raw bytes at a server: a bomb as the first frame, a bomb after a wrong proof, a bomb after a
    truncated hello. The server drops each connection; the bomb never goes off; no handler runs."""
    marker = tmp_path / "exploded"
    bomb = _frame((framing.REQUEST, 1, "m", _Bomb(marker)))

    async def attack(first_bytes: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        calls: list = []
        _, server = await loop.create_unix_connection(
            lambda: framing.Connection(lambda *args: calls.append(args), on_close=lambda conn: calls.append("closed"),
                                       handshake="server", token=TOKEN), sock=a)
        reader, writer = await asyncio.open_unix_connection(sock=b)
        hello = await reader.readexactly(framing.SERVER_HELLO_LEN)
        assert hello[:4] == b"ORAY" and hello[5] & framing.FLAG_TOKEN
        writer.write(first_bytes(hello) if callable(first_bytes) else first_bytes)
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF: the server hung up
        await asyncio.wait_for(server.wait_closed(), 5)
        assert calls == []  # no handler ran, and nobody was told of a connection that never opened
        writer.close()
        return rest

    def wrong_proof(hello: bytes) -> bytes:
        return b"ORAY" + bytes((framing.VERSION, framing.FLAG_TOKEN)) + os.urandom(32) + os.urandom(32) + bomb

    def no_proof_flag(hello: bytes) -> bytes:
        return b"ORAY" + bytes((framing.VERSION, 0)) + os.urandom(32) + bytes(32) + bomb

    async def main():
        assert await attack(bomb) == b""
        assert await attack(wrong_proof) == b""
        assert await attack(no_proof_flag) == b""
        assert await attack(b"ORAY\x01") == b""  # a truncated hello: dropped at the handshake timeout

    framing_timeout = framing.HANDSHAKE_TIMEOUT_S
    framing.HANDSHAKE_TIMEOUT_S = 0.5
    try:
        asyncio.run(main())
    finally:
        framing.HANDSHAKE_TIMEOUT_S = framing_timeout
    assert not marker.exists(), "a pickle from an unauthenticated peer was loaded"


def test_client_never_unpickles_from_a_server_that_cannot_prove_the_token(tmp_path):
    """A fake server (it does not hold the token) sends a well-formed hello, a made-up proof and a bomb:
    the client refuses before decoding a frame."""
    marker = tmp_path / "exploded"

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        _, client = await loop.create_unix_connection(
            lambda: framing.Connection(lambda *args: None, handshake="client", token=TOKEN, peer="fake"), sock=b)
        reader, writer = await asyncio.open_unix_connection(sock=a)
        nonce = os.urandom(32)
        writer.write(b"ORAY" + bytes((framing.VERSION, framing.FLAG_TOKEN)) + nonce)
        hello = await reader.readexactly(framing.CLIENT_HELLO_LEN)
        client_nonce, client_proof = hello[6:38], hello[38:70]
        # The client proved itself without sending the token: its proof is an HMAC, not the token.
        assert TOKEN not in hello
        expected = hmac.new(TOKEN, b"openray-framed-v1-client" + nonce + client_nonce, hashlib.sha256).digest()
        assert client_proof == expected
        writer.write(os.urandom(32) + _frame((framing.NOTIFY, 0, "m", _Bomb(marker))))
        await writer.drain()
        with pytest.raises(AuthenticationError, match="could not prove"):
            await asyncio.wait_for(client.handshake_done, 5)
        writer.close()

    asyncio.run(main())
    assert not marker.exists(), "a pickle from an unauthenticated server was loaded"


def test_a_server_proof_is_not_a_client_proof():
    """One direction's proof never passes for the other's (no reflection)."""
    s, c = os.urandom(32), os.urandom(32)
    hs = framing_handshake
    assert hs._proof(TOKEN, hs._CLIENT_LABEL, s, c) != hs._proof(TOKEN, hs._SERVER_LABEL, s, c)


def _serve_on(sock: socket.socket, server_token: bytes | None, calls: list) -> tuple[asyncio.AbstractEventLoop, object]:
    """A framed server on one end of a socket pair, on its own loop thread (the client blocks on this one)."""
    import threading

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def record(conn, method, body):
        calls.append((method, body))
        return ("ok", body)

    async def make():
        _, conn = await loop.create_unix_connection(
            lambda: framing.Connection(record, handshake="server", token=server_token), sock=sock)
        return conn

    return loop, asyncio.run_coroutine_threadsafe(make(), loop).result(5)


def test_a_thread_s_own_blocking_connection_authenticates_like_any_other():
    from ray._common.framing_blocking import BlockingConnection

    for client_token, works in ((TOKEN, True), (b"wrong-token", False), (None, False)):
        a, b = socket.socketpair()
        calls: list = []
        loop, _ = _serve_on(a, TOKEN, calls)
        b.settimeout(5)
        try:
            if works:
                framing_handshake.client_handshake_blocking(b, client_token, "the test server")
                conn = BlockingConnection(b, "the test server")
                rid = conn.send_request("m", 3)
                assert conn.recv_frame(5) == (framing.REPLY, rid, None, ("ok", 3))
                assert conn.recv_frame(0.05) is None  # nothing more: out of time, not an error
                assert calls == [("m", 3)]
            else:
                with pytest.raises(AuthenticationError) as err:
                    framing_handshake.client_handshake_blocking(b, client_token, "the test server")
                assert "RAY_AUTH_TOKEN" in str(err.value)
                assert calls == []
        finally:
            b.close()
            loop.call_soon_threadsafe(loop.stop)


def test_a_blocking_client_never_unpickles_from_a_server_that_cannot_prove_the_token(tmp_path):
    marker = tmp_path / "exploded"
    a, b = socket.socketpair()
    a.sendall(b"ORAY" + bytes((framing.VERSION, framing.FLAG_TOKEN)) + os.urandom(32))
    a.sendall(os.urandom(32) + _frame((framing.REPLY, 1, None, _Bomb(marker))))  # a made-up proof, then a bomb
    b.settimeout(5)
    with pytest.raises(AuthenticationError, match="could not prove"):
        framing_handshake.client_handshake_blocking(b, TOKEN, "fake")
    a.close()
    b.close()
    assert not marker.exists(), "a pickle from an unauthenticated server was loaded"
