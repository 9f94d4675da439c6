"""The dashboard UI's server side (issue 11): the app's files ship in the package, `/` serves the app with a
Content-Security-Policy that admits its import map, `/static/` serves the files and nothing outside them,
Grafana is linked only when configured, and logical resources count a fully taken resource as used."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import tomllib
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ray.dashboard.modules import ui
from ray.dashboard.modules.node.node_head import logical_resources

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "runtime/ray/dashboard"


def test_package_data_ships_every_ui_file_and_the_licences():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = data["ray.dashboard"]
    shipped = {p for g in globs for p in DASHBOARD.glob(g) if p.is_file()}
    files = {p for p in (DASHBOARD / "client").rglob("*") if p.is_file()}
    assert files - shipped == {DASHBOARD / "client/update-vendor"}  # the re-fetch script stays in the repo
    for lib in ("preact", "htm", "uplot"):
        assert (DASHBOARD / f"client/vendor/{lib}/LICENSE.txt").stat().st_size > 500
    # The vendored copies are the versions the re-fetch script pins.
    script = (DASHBOARD / "client/update-vendor").read_text()
    versions = (DASHBOARD / "client/vendor/VERSIONS.txt").read_text()
    for name, var in (("preact", "PREACT_VERSION"), ("htm", "HTM_VERSION"), ("uplot", "UPLOT_VERSION")):
        pinned = re.search(rf"^{var}=(\S+)", script, re.M).group(1)
        assert f"{name} {pinned} " in versions


def test_the_app_uses_relative_urls_only():
    for path in [DASHBOARD / "client/index.html", *(DASHBOARD / "client/app").rglob("*.js")]:
        text = path.read_text()
        # No absolute host, and no root-relative URL (it would break behind a path prefix).
        assert not re.search(r"https?://", text), path
        assert not re.search(r"""(fetch\(|request\(|href=|src=)\s*[`"']/""", text), path


async def _client() -> TestClient:
    app = web.Application()
    ui.add_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def test_index_static_files_and_csp():
    async def go():
        client = await _client()
        try:
            index = await client.get("/")
            body = await index.text()
            assert index.status == 200 and index.content_type == "text/html"
            assert 'src="static/app/main.js"' in body
            importmap = re.search(r'<script type="importmap">(.*?)</script>', body, re.S).group(1)
            digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
            csp = index.headers["Content-Security-Policy"]
            assert f"script-src 'self' 'sha256-{digest}'" in csp and "unsafe-eval" not in csp
            script = await client.get("/static/app/main.js")
            assert script.status == 200 and "javascript" in script.content_type
            assert script.headers["X-Content-Type-Options"] == "nosniff"
            vendor = await client.get("/static/vendor/preact/preact.module.js")
            assert vendor.status == 200
            for bad in ("/static/../modules/ui.py", "/static/%2e%2e/modules/ui.py", "/static/app/nope.js"):
                assert (await client.get(bad)).status in (403, 404), bad
        finally:
            await client.close()

    asyncio.run(go())


def test_grafana_link_only_when_configured(monkeypatch):
    async def health() -> dict:
        client = await _client()
        try:
            return await (await client.get("/api/grafana_health")).json()
        finally:
            await client.close()

    monkeypatch.delenv("RAY_GRAFANA_HOST", raising=False)
    off = asyncio.run(health())
    assert off["result"] is False and "RAY_GRAFANA_HOST" in off["msg"]
    monkeypatch.setenv("RAY_GRAFANA_HOST", "http://grafana.example:3000/")
    on = asyncio.run(health())
    assert on["result"] is True and on["data"]["grafanaHost"] == "http://grafana.example:3000"


def test_logical_resources_count_a_fully_taken_resource_as_used():
    # The raylet leaves a resource with nothing left out of `available`.
    total = {"CPU": 4.0, "GPU": 2.0, "memory": 2.0 * 2**30, "node:127.0.0.1": 1.0}
    text = logical_resources(total, {"CPU": 3.0, "memory": 2.0 * 2**30, "node:127.0.0.1": 1.0})
    assert text.splitlines() == ["1.0/4.0 CPU", "2.0/2.0 GPU", "0.00/2.000 GiB memory"]
    # No report yet: nothing is counted as used.
    assert logical_resources(total, {}).splitlines()[:2] == ["0.0/4.0 CPU", "0.0/2.0 GPU"]
