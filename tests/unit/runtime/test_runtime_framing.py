"""The framed protocol between two real connected sockets in one process (no network)."""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct

import psutil
import pytest
from ray._common import framing


async def _pair(server_handler: framing.Handler) -> tuple[framing.Connection, framing.Connection]:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    _, server = await loop.create_unix_connection(lambda: framing.Connection(server_handler), sock=a)
    _, client = await loop.create_unix_connection(lambda: framing.Connection(), sock=b)
    return server, client


def test_responder_answers_later_and_frames_keep_their_order():
    async def main():
        loop = asyncio.get_running_loop()
        responders: list[tuple[framing.Responder, int]] = []

        def handler(conn, method, body):
            if method == "later":
                responder = framing.Responder()
                responders.append((responder, body))
                return responder
            return body * 10

        server, client = await _pair(handler)
        # A burst in one loop turn: the first frame is written at once, the rest joined behind it.
        later = [client.request("later", i) for i in range(3)]
        now = [client.request("now", i) for i in range(200)]
        assert await asyncio.gather(*now) == [i * 10 for i in range(200)]
        assert not any(f.done() for f in later)
        for responder, body in reversed(responders):  # answered out of order, each to its own request
            loop.call_soon(responder.send, f"answer {body}")
        assert await asyncio.gather(*later) == ["answer 0", "answer 1", "answer 2"]
        server.close()
        client.close()

    asyncio.run(main())


def test_responder_after_the_peer_left_is_dropped_quietly():
    async def main():
        kept: list[framing.Responder] = []

        def handler(conn, method, body):
            kept.append(framing.Responder())
            return kept[-1]

        server, client = await _pair(handler)
        client.request("later", None)
        await asyncio.sleep(0.05)
        client.close()
        await server.wait_closed()
        kept[0].send("too late")  # no error: the caller is gone

    asyncio.run(main())


def test_large_replies_and_a_close_from_a_handler_come_through_whole():
    async def main():
        blob = bytes(range(256)) * (64 * 1024)  # 16 MiB: many reads per frame

        def handler(conn, method, body):
            if method == "bye":
                conn.close()  # closing while frames behind this one are still in the buffer
                return None
            return blob[body:]

        server, client = await _pair(handler)
        replies = await asyncio.gather(*(client.request("chunk", i) for i in range(3)))
        assert [len(r) for r in replies] == [len(blob) - i for i in range(3)]
        assert all(r == blob[i:] for i, r in enumerate(replies))
        client.notify("bye", None)
        client.notify("after", 1)
        for _ in range(100):
            if server.closed:
                break
            await asyncio.sleep(0.01)
        assert server.closed
        client.close()

    asyncio.run(main())


def test_probe_tells_a_listening_port_from_a_closed_one_even_when_nobody_accepts():
    async def main():
        # A socket that listens but never calls accept() (a stopped or busy process): the kernel still
        # completes the connection into its backlog.
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        port = listening.getsockname()[1]
        assert await framing.probe("127.0.0.1", port, 1.0) is True
        listening.close()  # what the kernel does to a SIGKILLed process's socket
        assert await framing.probe("127.0.0.1", port, 1.0) is False

    asyncio.run(main())


def test_raw_replies_land_in_the_requesters_buffer_between_ordinary_frames():
    """A handler's RawReply goes out unpickled behind a small header; `request_into` receives it straight into
    the buffer it named (many reads for 24 MiB), in order with the frames around it."""
    async def main():
        blob = bytes(range(256)) * (96 * 1024)  # 24 MiB

        def handler(conn, method, body):
            if method == "raw":
                start, length = body
                return framing.RawReply(memoryview(blob)[start:start + length])
            if method == "missing":
                return None
            return body

        server, client = await _pair(handler)
        targets = [bytearray(len(blob) - i) for i in range(3)]
        before = client.request("plain", "before")
        raws = [client.request_into("raw", (i, len(blob) - i), target) for i, target in enumerate(targets)]
        small = client.request_into("raw", (5, 3), memoryview(bytearray(3)))
        after = client.request("plain", "after")
        assert await before == "before"
        assert await asyncio.gather(*raws) == [len(t) for t in targets]
        assert all(t == blob[i:] for i, t in enumerate(targets))
        assert await small == 3
        assert await after == "after"
        # A plain answer (None: the peer has no such bytes) resolves the request with it.
        assert await client.request_into("missing", None, bytearray(10)) is None
        server.close()
        client.close()

    asyncio.run(main())


def test_a_raw_reply_of_the_wrong_size_fails_its_request_and_the_connection_goes_on():
    async def main():
        blob = b"z" * (3 * 2**20)

        def handler(conn, method, body):
            return framing.RawReply(blob) if method == "raw" else body

        server, client = await _pair(handler)
        wrong = client.request_into("raw", None, bytearray(10))  # 3 MiB come: read into scratch space
        unasked = client.request("raw", None)  # raw bytes for a request that named no buffer
        after = client.request("plain", 42)
        with pytest.raises(framing.RemoteError, match="3145728 bytes for a buffer of 10"):
            await wrong
        with pytest.raises(framing.RemoteError, match="named no buffer"):
            await unasked
        assert await after == 42
        right = bytearray(len(blob))
        assert await client.request_into("raw", None, right) == len(blob) and right == blob
        server.close()
        client.close()

    asyncio.run(main())


def test_frames_larger_than_the_receive_buffer_and_split_headers_decode_whole():
    """Frames of every size around the receive buffer's, fed one byte-range at a time from a raw socket."""
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        got: list = []
        _, conn = await loop.create_unix_connection(
            lambda: framing.Connection(lambda c, m, body: got.append(body)), sock=a)
        sizes = (0, 1, framing._RECV_BUF - 60, framing._RECV_BUF, 3 * framing._RECV_BUF, 7,
                 framing._ZEROED_BUF_MAX + 1, 5)  # the last but one is received into anonymous memory
        bodies = [b"x" * n for n in sizes]
        stream = b"".join(_frame((framing.NOTIFY, 0, "m", body)) for body in bodies)
        b.setblocking(False)
        for i in range(0, len(stream), 4093):  # odd-sized pieces: headers split across reads
            await loop.sock_sendall(b, stream[i:i + 4093])
            await asyncio.sleep(0)
        for _ in range(200):
            if len(got) == len(bodies):
                break
            await asyncio.sleep(0.01)
        assert got == bodies
        conn.close()
        b.close()

    asyncio.run(main())


def test_a_frames_length_header_alone_costs_no_memory():
    """A peer that declares a 1 GiB frame and sends a few bytes of it: the receiver's memory stays put (a buffer
    of that length is reserved, not written), and the connection goes on waiting for the rest."""
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        _, conn = await loop.create_unix_connection(lambda: framing.Connection(lambda c, m, body: None), sock=a)
        rss_before = psutil.Process().memory_info().rss
        b.setblocking(False)
        await loop.sock_sendall(b, struct.pack("<I", 1 << 30) + b"\x80\x05" + b"x" * 1000)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(conn._rview) >= 1 << 30:
                break
        assert len(conn._rview) >= 1 << 30  # room made for the declared frame
        grown = psutil.Process().memory_info().rss - rss_before
        assert grown < 64 * 2**20, f"declaring a 1 GiB frame cost {grown / 2**20:.0f} MiB"
        assert not conn.closed
        conn.close()
        b.close()

    asyncio.run(main())


def _frame(message: tuple) -> bytes:
    payload = pickle.dumps(message, protocol=5)
    return struct.pack("<I", len(payload)) + payload


def test_a_callback_request_gets_its_answer_its_error_or_the_lost_connection_and_a_failing_callback_harms_nothing():
    async def main():
        loop = asyncio.get_running_loop()
        got: list[tuple] = []
        closed = loop.create_future()

        def handler(conn, method, body):
            if method == "fail":
                raise ValueError("bad body")
            if method == "later":
                return framing.Responder()  # never answered: the connection goes first
            return body + 1

        def callback(reply, error, tag):
            got.append((tag, reply, type(error).__name__ if error else None))
            if tag == "boom":
                raise RuntimeError("a bug in the caller's callback")
            if tag == "later":
                closed.set_result(None)

        server, client = await _pair(handler)
        client.request_with_callback("add", 1, callback, "add")
        client.request_with_callback("add", 2, callback, "boom")  # logged; the frames after it still decode
        client.request_with_callback("fail", None, callback, "fail")
        assert await client.request("add", 41) == 42
        assert got == [("add", 2, None), ("boom", 3, None), ("fail", None, "RemoteError")]
        client.request_with_callback("later", None, callback, "later")
        await asyncio.sleep(0.05)
        server.close()
        await asyncio.wait_for(closed, 10)
        assert got[-1] == ("later", None, "ConnectionLost")
        client.request_with_callback("add", 1, callback, "after close")  # told later, not inside this call
        assert got[-1][0] == "later"
        await asyncio.sleep(0.01)
        assert got[-1] == ("after close", None, "ConnectionLost")

    asyncio.run(main())


def test_requests_written_by_other_threads_arrive_whole_and_in_order_beside_the_loops_own():
    async def main():
        loop = asyncio.get_running_loop()
        received: list[tuple[str, int]] = []
        answered: dict[str, list[int]] = {"thread-0": [], "thread-1": [], "loop": []}
        done = loop.create_future()
        expected = 3 * 40

        def handler(conn, method, body):
            sender, n, blob = body
            assert blob == bytes([n % 251]) * len(blob)  # whole: no frame interleaved into another
            received.append((sender, n))
            return n

        def callback(reply, error, sender):
            assert error is None
            answered[sender].append(reply)
            if sum(map(len, answered.values())) == expected and not done.done():
                loop.call_soon_threadsafe(done.set_result, None)

        server, client = await _pair(handler)
        # Refused while a frame of this loop turn waits to be joined and written: it would go out before it.
        client.notify("warm-up", ("warm-up", 0, b""))
        assert client.request_from_thread("x", ("loop", -2, b""), callback, "loop") is False

        def from_thread(name: str) -> None:
            n = 0
            while n < 40:
                body = (name, n, bytes([n % 251]) * (200_000 + n))  # larger than the socket takes at once
                if client.request_from_thread("echo", body, callback, name):
                    n += 1
                else:  # refused: what the loop's thread queued goes first; the caller would hand it over
                    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result()

        threads = [loop.run_in_executor(None, from_thread, f"thread-{i}") for i in range(2)]
        for n in range(40):
            client.request_with_callback("echo", ("loop", n, bytes([n % 251]) * 50_000), callback, "loop")
            await asyncio.sleep(0.001)
        await asyncio.gather(*threads)
        await asyncio.wait_for(done, 30)
        for sender in answered:
            assert [n for s, n in received if s == sender] == list(range(40))
            assert answered[sender] == list(range(40))
        client.close()
        await client.wait_closed()
        assert client.request_from_thread("echo", ("loop", 0, b""), callback, "loop") is False
        server.close()

    asyncio.run(main())
