"""The framed protocol between two real connected sockets in one process (no network)."""

from __future__ import annotations

import asyncio
import socket

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
