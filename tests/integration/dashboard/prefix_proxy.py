"""A reverse proxy that serves the dashboard under a path prefix (`http://127.0.0.1:<port>/ray/...` ->
`<dashboard>/...`), as an ingress or a proxy in front of a port-forward does. It rewrites nothing (no
Location, no cookie path), so only relative URLs work through it; a request outside the prefix gets a 404 and
is recorded in `outside`. Runs an aiohttp server on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length", "content-encoding"}


class PrefixProxy:
    def __init__(self, upstream: str, prefix: str = "/ray/"):
        self.upstream = upstream.rstrip("/")
        self.prefix = prefix
        self.outside: list[str] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not request.path.startswith(self.prefix):
            self.outside.append(f"{request.method} {request.path_qs}")
            return web.Response(status=404, text=f"outside the prefix {self.prefix}")
        target = self.upstream + "/" + request.raw_path[len(self.prefix):]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(request.method, target, headers=headers, data=body or None,
                                         allow_redirects=False, auto_decompress=False) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():  # duplicates (Set-Cookie) kept
                if k.lower() not in HOP_BY_HOP:
                    response.headers.add(k, v)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _start(self) -> str:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}{self.prefix}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def __enter__(self) -> PrefixProxy:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
