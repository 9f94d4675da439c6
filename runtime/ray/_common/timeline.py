"""Task rows (the state API's TaskState with events) as a Chrome trace (`chrome://tracing`, Perfetto): what
`ray timeline`, `ray.timeline()` and `/api/v0/tasks/timeline` produce. One process row per node, one thread
row per worker, one complete ("X") event per task attempt that ran, from RUNNING to its end."""

from __future__ import annotations

from typing import Any

_COLORS = {"FINISHED": "rail_response", "FAILED": "terrible"}


def chrome_tracing_dump(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    pids: dict[str, int] = {}
    tids: dict[tuple[int, str], int] = {}
    for task in sorted(tasks, key=lambda t: t.get("start_time_ms") or 0):
        start = task.get("start_time_ms")
        if not start:
            continue
        end = task.get("end_time_ms") or start
        node = task.get("node_id") or "unknown"
        worker = task.get("worker_id") or "unknown"
        if node not in pids:
            pids[node] = len(pids)
            events.append({"name": "process_name", "ph": "M", "pid": pids[node],
                           "args": {"name": f"Node {node}"}})
        pid = pids[node]
        if (pid, worker) not in tids:
            tids[(pid, worker)] = len(tids)
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tids[(pid, worker)],
                           "args": {"name": f"Worker {worker}"}})
        name = task.get("name") or task.get("func_or_class_name") or "task"
        event = {
            "cat": f"task::{name}", "name": f"task::{name}", "pid": pid, "tid": tids[(pid, worker)],
            "ts": start * 1000, "dur": max(end - start, 0) * 1000, "ph": "X",
            "args": {"task_id": task.get("task_id"), "attempt_number": task.get("attempt_number"),
                     "job_id": task.get("job_id"), "actor_id": task.get("actor_id"), "state": task.get("state"),
                     "func_or_class_name": task.get("func_or_class_name"), "worker_pid": task.get("worker_pid"),
                     "error_type": task.get("error_type")},
        }
        color = _COLORS.get(task.get("state") or "")
        if color:
            event["cname"] = color
        events.append(event)
    return events
