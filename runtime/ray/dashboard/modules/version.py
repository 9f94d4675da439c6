"""`GET /api/version` and `GET /api/gcs_healthz`."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable

from aiohttp import web

from ray._version import version as ray_version

# The REST API version Ray 2.x dashboards report; clients check `ray_version` against their minimum.
CURRENT_VERSION = "4"


def add_routes(app: web.Application, session_dir: str, gcs_alive: Callable[[], bool]) -> None:
    async def version(req: web.Request) -> web.Response:
        body = {
            "version": CURRENT_VERSION,
            "ray_version": ray_version,
            "ray_commit": "openray",
            "session_name": os.path.basename(os.path.normpath(session_dir)),
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def gcs_healthz(req: web.Request) -> web.Response:
        try:
            alive = await asyncio.wait_for(asyncio.to_thread(gcs_alive), 10)
        except Exception as e:
            raise web.HTTPServiceUnavailable(reason=f"Health check failed: {e}") from e
        if not alive:
            raise web.HTTPServiceUnavailable(reason="Health check failed")
        return web.Response(text="success", content_type="application/text")

    app.router.add_get("/api/version", version)
    app.router.add_get("/api/gcs_healthz", gcs_healthz)
