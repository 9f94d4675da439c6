"""The dashboard's web UI: `GET /` is the single-page app in `ray/dashboard/client/` (Preact + htm and uPlot,
vendored under `client/vendor/`: no CDN, no build step), its files under `/static/`, and Ray's
`GET /api/grafana_health` (where the Metrics view finds Grafana when `RAY_GRAFANA_HOST` is set).

Every URL in the app is relative and its routes are hash routes (`/#/actors`), so deep links survive a
reload and the UI works through `kubectl port-forward` or behind a path prefix. Token authentication is
the middleware's (the browser's cookie, set by `/login`). The index carries a Content-Security-Policy that
allows only this server's scripts and the import map's hash: even a value that slipped into the page as
HTML could not run.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from aiohttp import web

from ray.dashboard.modules.node.http_util import rest_response

CLIENT_DIR = Path(__file__).resolve().parent.parent / "client"
GRAFANA_HOST_ENV = "RAY_GRAFANA_HOST"


def _csp(index_html: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in re.findall(r"<script type=\"importmap\">(.*?)</script>", index_html, re.S))
    return ("default-src 'self'; " f"script-src 'self' {hashes}; " "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'; "
            "form-action 'self'")


def add_routes(app: web.Application, client_dir: Path = CLIENT_DIR) -> None:
    index_path = client_dir / "index.html"
    if not index_path.is_file():
        raise FileNotFoundError(f"The dashboard UI's {index_path} is missing: reinstall OpenRay "
                                "(its package data ships ray/dashboard/client/).")
    index_html = index_path.read_text()
    headers = {"Content-Security-Policy": _csp(index_html), "Cache-Control": "no-cache",
               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=index_html, content_type="text/html", headers=headers)

    @web.middleware
    async def static_headers(request: web.Request, handler):
        response = await handler(request)
        if request.path.startswith("/static/"):
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Cache-Control"] = "no-cache"  # revalidated (ETag/Last-Modified): cheap, never stale
        return response

    async def grafana_health(request: web.Request) -> web.Response:
        host = os.environ.get(GRAFANA_HOST_ENV, "").rstrip("/")
        if not host:
            return rest_response(False, f"Grafana is not configured: set {GRAFANA_HOST_ENV} on the head node "
                                 "(the Metrics view draws its own charts without it).", status=200)
        return rest_response(True, "Grafana configured.", convert=False, grafanaHost=host,
                             grafanaIframeHost=os.environ.get("RAY_GRAFANA_IFRAME_HOST", host),
                             sessionName="", dashboardUids={}, dashboardDatasource="Prometheus")

    app.router.add_get("/", index)
    app.router.add_get("/api/grafana_health", grafana_health)
    app.router.add_static("/static/", str(client_dir), show_index=False, follow_symlinks=False)
    app.middlewares.append(static_headers)
