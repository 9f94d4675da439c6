"""Where a job's entrypoint runs: the head unless entrypoint resources or labels ask for another node.

Ray schedules the job supervisor with `entrypoint_num_cpus/gpus/memory/resources` and
`entrypoint_label_selector`; without them it runs on the head. The same choice here uses the node
table in the GCS (`ray.nodes()` dicts).
"""

from __future__ import annotations

from typing import Any

from ray.dashboard.modules.job.common import JobInfo


def required_resources(info: JobInfo) -> dict[str, float]:
    required: dict[str, float] = {}
    if info.entrypoint_num_cpus:
        required["CPU"] = float(info.entrypoint_num_cpus)
    if info.entrypoint_num_gpus:
        required["GPU"] = float(info.entrypoint_num_gpus)
    if info.entrypoint_memory:
        required["memory"] = float(info.entrypoint_memory)
    for name, amount in (info.entrypoint_resources or {}).items():
        if amount:
            required[name] = float(amount)
    return required


def needs_placement(info: JobInfo) -> bool:
    return bool(required_resources(info) or info.entrypoint_label_selector)


def _label_matches(labels: dict[str, str], key: str, expression: str) -> bool:
    """Ray's label selector values: 'v', '!v', 'in(a,b)', '!in(a,b)'."""
    negate = expression.startswith("!")
    expression = expression[1:] if negate else expression
    if expression.startswith("in(") and expression.endswith(")"):
        allowed = {v.strip() for v in expression[3:-1].split(",")}
        matched = labels.get(key) in allowed
    else:
        matched = labels.get(key) == expression
    return matched != negate


def node_fits(node: dict[str, Any], required: dict[str, float], label_selector: dict[str, str] | None,
              used: dict[str, float] | None = None) -> bool:
    if not node.get("Alive"):
        return False
    total = node.get("Resources") or {}
    used = used or {}
    if any(total.get(name, 0.0) - used.get(name, 0.0) < amount for name, amount in required.items()):
        return False
    labels = node.get("Labels") or {}
    return all(_label_matches(labels, key, expr) for key, expr in (label_selector or {}).items())


def used_by_jobs(jobs: dict[str, JobInfo]) -> dict[str, dict[str, float]]:
    """Entrypoint resources held by the unfinished jobs placed on each node (node id -> resources)."""
    used: dict[str, dict[str, float]] = {}
    for info in jobs.values():
        if info.status.is_terminal() or info.driver_node_id is None:
            continue
        node_used = used.setdefault(info.driver_node_id, {})
        for name, amount in required_resources(info).items():
            node_used[name] = node_used.get(name, 0.0) + amount
    return used


def choose_node(nodes: list[dict[str, Any]], info: JobInfo,
                used: dict[str, dict[str, float]] | None = None) -> dict[str, Any] | None:
    """The head if it fits, else the first other node that fits; None if no node can run it (yet).

    Entrypoint resources are held for the job's lifetime, as Ray holds them for its supervisor
    actor, so a node runs only as many such jobs at once as its resources allow."""
    required = required_resources(info)
    used = used or {}
    fitting = [node for node in nodes
               if node_fits(node, required, info.entrypoint_label_selector, used.get(node.get("NodeID", "")))]
    fitting.sort(key=lambda node: not node.get("IsHeadNode"))
    return fitting[0] if fitting else None


def describe_requirements(info: JobInfo) -> str:
    parts = [f"{amount:g} {name}" for name, amount in required_resources(info).items()]
    if info.entrypoint_label_selector:
        parts.append(f"labels {info.entrypoint_label_selector}")
    return ", ".join(parts)


def assign_gpu_ids(info: JobInfo, node: dict[str, Any], jobs: dict[str, JobInfo]) -> list[int] | None:
    """The lowest GPU indices of `node` not held by another unfinished job there (whole GPUs only)."""
    wanted = info.entrypoint_num_gpus or 0
    if wanted <= 0:
        return None
    total = int((node.get("Resources") or {}).get("GPU", 0))
    held = {gpu for job in jobs.values()
            if not job.status.is_terminal() and job.driver_node_id == node.get("NodeID")
            for gpu in (job.entrypoint_gpu_ids or [])}
    free = [gpu for gpu in range(total) if gpu not in held]
    return free[: max(1, int(wanted))]  # a fraction of a GPU still sees one device
