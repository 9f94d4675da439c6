"""`GET /`: a plain HTML page with the cluster's nodes and jobs (no JavaScript, no build step)."""

from __future__ import annotations

import asyncio
import datetime
import html
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ray._version import version as ray_version

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    ".SUCCEEDED{color:green}.FAILED{color:#b00}.RUNNING{color:#06c}.STOPPED{color:#a60}"
)


def _time(ms: int | None) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else ""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body or '<tr><td colspan=99>none</td></tr>'}</table>"


def add_routes(app: web.Application, nodes: Callable[[], list[dict[str, Any]]],
               jobs: Callable[[], Awaitable[list[dict[str, Any]]]]) -> None:
    async def index(req: web.Request) -> web.Response:
        try:
            node_list = await asyncio.to_thread(nodes)
        except Exception as e:  # the page still shows the jobs
            node_list, node_error = [], f"<p>Could not read nodes from the GCS: {html.escape(str(e))}</p>"
        else:
            node_error = ""
        node_rows = [[html.escape(n.get("NodeID", "")[:12]), html.escape(n.get("NodeManagerAddress", "")),
                      "head" if n.get("IsHeadNode") else "worker", "ALIVE" if n.get("Alive") else "DEAD",
                      html.escape(", ".join(f"{v:g} {k}" for k, v in sorted((n.get("Resources") or {}).items())
                                            if not k.startswith("node:")))] for n in node_list]
        job_rows = []
        for job in reversed(await jobs()):
            status = html.escape(str(job.get("status")))
            job_id = job.get("submission_id") or job.get("job_id") or ""
            link = f'<a href="/api/jobs/{html.escape(job_id)}/logs">logs</a>' if job.get("submission_id") else ""
            job_rows.append([html.escape(job_id), html.escape(str(job.get("type"))), f'<span class="{status}">{status}</span>',
                             html.escape(job.get("entrypoint") or ""), html.escape(job.get("message") or "")[:500],
                             _time(job.get("start_time")), _time(job.get("end_time")), link])
        page = (
            f"<!doctype html><html><head><meta charset=utf-8><title>OpenRay dashboard</title>"
            f"<style>{_STYLE}</style></head><body><h1>OpenRay {html.escape(ray_version)}</h1>"
            f"<h2>Nodes</h2>{node_error}{_table(['node', 'address', 'role', 'state', 'resources'], node_rows)}"
            f"<h2>Jobs</h2>{_table(['id', 'type', 'status', 'entrypoint', 'message', 'start', 'end', ''], job_rows)}"
            "<p>REST API: <code>/api/jobs/</code>, <code>/api/version</code>. Submit with "
            "<code>ray job submit --address http://&lt;this host&gt;:8265 -- python script.py</code>.</p>"
            "</body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", index)
