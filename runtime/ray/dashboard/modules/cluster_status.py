"""`GET /api/cluster_status`, as Ray's dashboard serves it (reporter_head): what `ray status` prints, from the
GCS's autoscaler state service, and the autoscaler's error. With `?format=1` the text alone
(`data.clusterStatus`); without, also the raw state (`data.clusterStatus` as JSON) and the text as
`data.autoscalingStatus`."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from google.protobuf.json_format import MessageToDict

from ray._common.cluster_status import DEBUG_AUTOSCALING_ERROR, format_cluster_status


def add_routes(app: web.Application, gcs) -> None:
    def read() -> tuple[str, dict, str | None]:
        started = time.time()
        reply = gcs.get_cluster_status()
        text = format_cluster_status(reply, False, started, time.time() - started)
        error = gcs.internal_kv_get(DEBUG_AUTOSCALING_ERROR)
        return text, MessageToDict(reply), error.decode("utf-8", "replace") if error else None

    async def cluster_status(req: web.Request) -> web.Response:
        try:
            text, raw, error = await asyncio.wait_for(asyncio.to_thread(read), 30)
        except Exception as e:  # noqa: BLE001 - the GCS is unreachable: Ray answers with result false
            body = {"result": False, "msg": f"Failed to get cluster status: {e}", "data": {}}
            return web.Response(text=json.dumps(body), content_type="application/json", status=500)
        if req.query.get("format", "0") == "1":
            full = text + ("\n" + error if error else "")
            body = {"result": True, "msg": "Got formatted cluster status.", "data": {"clusterStatus": full}}
        else:
            body = {"result": True, "msg": "Got cluster status.",
                    "data": {"autoscalingStatus": text, "autoscalingError": error, "clusterStatus": raw}}
        return web.Response(text=json.dumps(body), content_type="application/json")

    app.router.add_get("/api/cluster_status", cluster_status)
