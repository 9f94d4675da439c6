"""`/api/v0/{tasks,actors,objects}/summarize`: Ray's summary shapes (TaskSummaries, ActorSummaries,
ObjectSummaries), built from the same rows the lists return."""

from __future__ import annotations

from typing import Any


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _totals(tasks: list[dict]) -> dict[str, int]:
    kinds = {"NORMAL_TASK": "total_tasks", "ACTOR_TASK": "total_actor_tasks",
             "ACTOR_CREATION_TASK": "total_actor_scheduled"}
    totals = dict.fromkeys(kinds.values(), 0)
    for task in tasks:
        kind = kinds.get(task.get("type") or "")
        if kind:
            totals[kind] += 1
    return totals


def tasks_by_func_name(tasks: list[dict]) -> dict[str, Any]:
    summary: dict[str, dict] = {}
    for task in tasks:
        key = task.get("name") or task.get("func_or_class_name")
        entry = summary.setdefault(key, {"func_or_class_name": key, "type": task["type"], "state_counts": {}})
        _count(entry["state_counts"], task["state"])
    return {"summary": summary, **_totals(tasks), "summary_by": "func_name"}


def tasks_by_lineage(tasks: list[dict]) -> dict[str, Any]:
    """Tasks grouped under the task that submitted them, siblings of one name merged (Ray's NestedTaskSummary)."""
    by_id = {t["task_id"]: t for t in tasks}
    children: dict[str, list[dict]] = {}
    roots: list[dict] = []
    for task in tasks:
        parent = task.get("parent_task_id") or ""
        if parent in by_id:
            children.setdefault(parent, []).append(task)
        else:
            roots.append(task)

    def group(members: list[dict], prefix: str) -> list[dict]:
        groups: dict[str, dict] = {}
        for task in members:
            name = task.get("name") or task.get("func_or_class_name") or ""
            g = groups.get(name)
            if g is None:
                g = groups[name] = {"name": name, "key": f"{prefix}{name}", "type": task["type"],
                                    "timestamp": task.get("creation_time_ms"), "state_counts": {}, "children": [],
                                    "link": None, "_members": []}
            g["_members"].append(task)
            _count(g["state_counts"], task["state"])
            ts = task.get("creation_time_ms")
            if ts and (g["timestamp"] is None or ts < g["timestamp"]):
                g["timestamp"] = ts
        out = []
        for g in groups.values():
            members_of = g.pop("_members")
            if len(members_of) == 1:
                g["link"] = {"type": "task", "id": members_of[0]["task_id"]}
            nested = [c for m in members_of for c in children.get(m["task_id"], [])]
            g["children"] = group(nested, g["key"] + "/")
            for child in g["children"]:
                for state, n in child["state_counts"].items():
                    g["state_counts"][state] = g["state_counts"].get(state, 0) + n
            out.append(g)
        out.sort(key=lambda g: g["timestamp"] or 0)
        return out

    return {"summary": group(roots, ""), **_totals(tasks), "summary_by": "lineage"}


def actors_by_class(actors: list[dict]) -> dict[str, Any]:
    summary: dict[str, dict] = {}
    for actor in actors:
        entry = summary.setdefault(actor["class_name"], {"class_name": actor["class_name"], "state_counts": {}})
        _count(entry["state_counts"], actor["state"])
    return {"summary": summary, "total_actors": len(actors), "summary_by": "class"}


def objects_by_callsite(objects: list[dict]) -> dict[str, Any]:
    summary: dict[str, dict] = {}
    workers: dict[str, set] = {}
    nodes: dict[str, set] = {}
    total_mb = 0.0
    enabled = True
    for obj in objects:
        key = obj.get("call_site") or "disabled"
        if key == "disabled":
            enabled = False
        entry = summary.setdefault(key, {"total_objects": 0, "total_size_mb": 0.0, "total_num_workers": 0,
                                         "total_num_nodes": 0, "task_state_counts": {},
                                         "task_attempt_number_counts": {}, "ref_type_counts": {}})
        _count(entry["task_state_counts"], obj.get("task_status") or "NIL")
        _count(entry["task_attempt_number_counts"], str(obj.get("attempt_number") or 0))
        _count(entry["ref_type_counts"], obj.get("reference_type") or "UNKNOWN_STATUS")
        entry["total_objects"] += 1
        size = obj.get("object_size")
        if size is not None and size != -1:
            entry["total_size_mb"] += size / 1024**2
            total_mb += size / 1024**2
        workers.setdefault(key, set()).add(obj.get("pid"))
        nodes.setdefault(key, set()).add(obj.get("ip"))
    for key, entry in summary.items():
        entry["total_num_workers"] = len(workers[key])
        entry["total_num_nodes"] = len(nodes[key])
    return {"summary": summary, "total_objects": len(objects), "total_size_mb": total_mb,
            "callsite_enabled": enabled, "summary_by": "callsite"}
