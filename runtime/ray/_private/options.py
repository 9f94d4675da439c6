"""Validation of `@ray.remote(...)` / `.options(...)` keywords, with Ray's messages."""

from __future__ import annotations

from typing import Any

import cloudpickle

from ray._common.resources import task_resources

COMMON = {
    "num_cpus", "num_gpus", "resources", "memory", "accelerator_type", "runtime_env", "scheduling_strategy",
    "name", "placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks",
    "label_selector", "_metadata", "enable_task_events", "object_store_memory", "_labels",
}
TASK_ONLY = {"num_returns", "max_retries", "retry_exceptions", "max_calls"}
ACTOR_ONLY = {"max_restarts", "max_task_retries", "max_concurrency", "concurrency_groups", "namespace",
              "lifetime", "get_if_exists", "max_pending_calls"}


def validate(options: dict[str, Any], for_actor: bool) -> None:
    valid = COMMON | (ACTOR_ONLY if for_actor else TASK_ONLY)
    kind = "actors" if for_actor else "remote functions"
    for key in options:
        if key not in valid:
            raise ValueError(f"Invalid option keyword {key} for {kind}. Valid ones are {sorted(valid)}.")
    if "num_returns" in options:
        n = options["num_returns"]
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"The keyword 'num_returns' only accepts 0, a positive integer, got {n!r}.")
    if for_actor and options.get("lifetime") not in (None, "detached", "non_detached"):
        raise ValueError("actor `lifetime` argument must be one of 'detached', 'non_detached' and 'None'.")
    if options.get("get_if_exists") and not options.get("name"):
        raise ValueError("The actor name must be specified to use `get_if_exists`.")


def resources_of(options: dict[str, Any], default_cpus: float) -> dict[str, float]:
    req = task_resources(options.get("num_cpus"), options.get("num_gpus"), options.get("memory"),
                         options.get("resources"), default_cpus=default_cpus)
    if options.get("accelerator_type"):
        req[f"accelerator_type:{options['accelerator_type']}"] = 0.001
    return req


def retry_exceptions_wire(value: Any) -> bool | bytes:
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, list | tuple) and all(isinstance(v, type) and issubclass(v, BaseException) for v in value):
        return cloudpickle.dumps(tuple(value))
    raise TypeError("retry_exceptions must be either a boolean or a list of exceptions")

