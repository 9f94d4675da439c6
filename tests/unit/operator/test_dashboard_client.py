"""The dashboard client against an aiohttp server speaking Ray's job API shapes (a stand-in until the
runtime's dashboard is merged; it serves only what the client calls)."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from aiohttp import web
from ray_operator.dashboard_client import DashboardClient, DashboardError


@pytest.fixture
def dashboard():
    jobs: dict[str, dict] = {}

    async def submit(request):
        body = await request.json()
        jobs[body["submission_id"]] = {"status": "PENDING", "entrypoint": body["entrypoint"], "message": "queued"}
        return web.json_response({"submission_id": body["submission_id"], "job_id": None})

    async def get(request):
        job = jobs.get(request.match_info["id"])
        if job is None:
            return web.Response(status=404, text="Job does not exist")
        return web.json_response(job)

    async def stop(request):
        job = jobs.get(request.match_info["id"])
        if job is None:
            return web.Response(status=404)
        job["status"] = "STOPPED"
        return web.json_response({"stopped": True})

    app = web.Application()
    app.add_routes([web.post("/api/jobs/", submit), web.get("/api/jobs/{id}", get),
                    web.post("/api/jobs/{id}/stop", stop)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.SockSite(runner, sock).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_submit_get_stop(dashboard):
    client = DashboardClient(dashboard)
    assert client.get_job_info_sync("j1") is None
    assert client.submit_job_sync({"entrypoint": "python x.py", "submission_id": "j1"}) == "j1"
    assert client.get_job_info_sync("j1")["status"] == "PENDING"
    assert client.stop_job_sync("j1") is True
    assert client.get_job_info_sync("j1")["status"] == "STOPPED"


def test_unreachable_dashboard_is_a_dashboard_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DashboardError, match="failed"):
        DashboardClient(f"http://127.0.0.1:{port}", timeout_s=2).get_job_info_sync("x")
