"""Ray's state API SDK: `from ray.util.state import list_actors, get_task, summarize_tasks, ...`; logs:
`list_logs`, `get_log` (`logs.py`)."""

from ray.util.state.api import (
    StateApiClient,
    get_actor,
    get_job,
    get_node,
    get_objects,
    get_placement_group,
    get_task,
    get_worker,
    list_actors,
    list_cluster_events,
    list_jobs,
    list_nodes,
    list_objects,
    list_placement_groups,
    list_runtime_envs,
    list_tasks,
    list_workers,
    summarize_actors,
    summarize_objects,
    summarize_tasks,
)
from ray.util.state.logs import get_log, list_logs

__all__ = [
    "StateApiClient", "get_actor", "get_job", "get_node", "get_objects", "get_placement_group", "get_task",
    "get_worker", "get_log", "list_actors", "list_cluster_events", "list_jobs", "list_logs", "list_nodes", "list_objects",
    "list_placement_groups", "list_runtime_envs", "list_tasks", "list_workers", "summarize_actors",
    "summarize_objects", "summarize_tasks",
]
