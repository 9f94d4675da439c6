"""`ray.timeline()`: the connected cluster's task timeline as Chrome trace events, read from the GCS's task
events (the same data as `ray timeline` and `/api/v0/tasks/timeline`)."""

from __future__ import annotations

import json
from typing import Any

from ray._common.timeline import chrome_tracing_dump


def timeline(filename: str | None = None) -> list[dict[str, Any]] | None:
    """Return the Chrome trace events of the cluster's tasks, or write them to `filename` as JSON (then None).
    Open the file in chrome://tracing or https://ui.perfetto.dev."""
    from ray._private.worker import global_worker
    from ray.protocol import state_pb2 as spb

    cw = global_worker.ensure_connected()
    reply = cw.gcs.call(cw.gcs.stubs.task_info.GetTaskEvents, spb.GetTaskEventsRequest(exclude_driver=True))
    events = chrome_tracing_dump(json.loads(reply.tasks_json))
    if filename is None:
        return events
    with open(filename, "w") as f:
        json.dump(events, f)
    return None
