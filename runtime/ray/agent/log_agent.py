"""This node's log files for the dashboard (token required, as every agent route):

    GET /api/v0/logs/list_local?glob=*                  {"files": [names relative to <session>/logs]}
    GET /api/v0/logs/file_local?filename=F&lines=1000   the last lines (lines=-1: the whole file); with
                                                        start_offset/end_offset, of that byte range only
    GET /api/v0/logs/stream_local?filename=F&lines=1000&interval=0.5   ... then new bytes as they come

A bad name (absolute, `..`, outside the log directory) is a 400, a missing file a 404 (`_common/log_files`).
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from ray._common import log_files

_MAX_INTERVAL_S = 60.0


def _lines(request: web.Request) -> int:
    try:
        return int(request.query.get("lines", 1000))
    except ValueError:
        raise web.HTTPBadRequest(text=f"lines must be an integer, got {request.query.get('lines')!r}.") from None


def _offset(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer, got {raw!r}.") from None
    if value < 0:
        raise web.HTTPBadRequest(text=f"{name} must not be negative, got {value}.")
    return value


def _interval(request: web.Request) -> float:
    try:
        value = float(request.query.get("interval", 0.5))
    except ValueError:
        raise web.HTTPBadRequest(text=f"interval must be a number, got {request.query.get('interval')!r}.") from None
    return min(max(value, 0.05), _MAX_INTERVAL_S)


class LogAgent:
    def __init__(self, session_dir: str):
        self.logs_dir = os.path.join(session_dir, "logs")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v0/logs/list_local", self._list)
        app.router.add_get("/api/v0/logs/file_local", self._file)
        app.router.add_get("/api/v0/logs/stream_local", self._stream)

    def _resolve(self, request: web.Request) -> str:
        try:
            return log_files.resolve(self.logs_dir, request.query.get("filename", ""))
        except log_files.BadLogFileName as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        except log_files.LogFileNotFound as e:
            raise web.HTTPNotFound(text=str(e)) from None

    async def _list(self, request: web.Request) -> web.Response:
        files = await asyncio.to_thread(log_files.list_files, self.logs_dir, request.query.get("glob", "*"))
        return web.json_response({"files": files})

    async def _file(self, request: web.Request) -> web.Response:
        path = self._resolve(request)
        start, end = _offset(request, "start_offset") or 0, _offset(request, "end_offset")
        data, _ = await asyncio.to_thread(log_files.tail, path, _lines(request), start, end)
        return web.Response(body=data, content_type="text/plain")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        path = self._resolve(request)
        lines, interval = _lines(request), _interval(request)
        start, end = _offset(request, "start_offset") or 0, _offset(request, "end_offset")
        data, offset = await asyncio.to_thread(log_files.tail, path, lines, start, end)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        if data:
            await response.write(data)
        while end is None:  # until the client goes away (the write fails) or the file is removed
            await asyncio.sleep(interval)
            try:
                size = os.path.getsize(path)
            except OSError:
                break
            if size < offset:
                offset = 0  # truncated or rotated: start over
            if size > offset:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read(min(size - offset, 4 * 2**20))
                offset += len(chunk)
                try:
                    await response.write(chunk)
                except (ConnectionResetError, RuntimeError):
                    break
        return response
