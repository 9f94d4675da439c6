"""Validation of `@ray.remote(...)` / `.options(...)` keywords, with Ray's messages."""

from __future__ import annotations

from typing import Any

import cloudpickle

from ray._common.resources import GRANULARITY, task_resources

COMMON = {
    "num_cpus", "num_gpus", "resources", "memory", "accelerator_type", "runtime_env", "scheduling_strategy",
    "name", "placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks",
    "label_selector", "_metadata", "enable_task_events", "object_store_memory", "_labels",
}
TASK_ONLY = {"num_returns", "max_retries", "retry_exceptions", "max_calls"}
ACTOR_ONLY = {"max_restarts", "max_task_retries", "max_concurrency", "concurrency_groups", "namespace",
              "lifetime", "get_if_exists", "max_pending_calls"}


_RESOURCE_TYPES = (float, int, type(None))
_COUNT_TYPES = (int, type(None))
# Counting options: name -> whether -1 means infinity.
_COUNTING = {"max_retries": True, "max_restarts": True, "max_task_retries": True, "max_pending_calls": True,
             "max_calls": False, "max_concurrency": False}


def check_type(keyword: str, value: Any, types: tuple) -> None:
    if not isinstance(value, types):
        raise TypeError(f"The type of keyword '{keyword}' must be {types}, but received type {type(value)}")


def _resource_quantity_error(name: str, quantity: float) -> str | None:
    """Ray's checks of one resource quantity (ray_option_utils._validate_resource_quantity)."""
    if quantity < 0:
        return f"The quantity of resource {name} cannot be negative"
    if isinstance(quantity, float) and quantity != 0.0 and int(quantity * GRANULARITY) == 0:
        return f"The precision of the fractional quantity of resource {name} cannot go beyond 0.0001"
    return None


def _validate_values(options: dict[str, Any]) -> None:
    """The types and values Ray checks at `@ray.remote(...)` / `.options(...)`, with its messages (the public
    API checks `scheduling_strategy`'s type: ray.util.scheduling_strategies.check_option)."""
    for name in ("num_cpus", "num_gpus", "memory"):
        if name in options:
            check_type(name, options[name], _RESOURCE_TYPES)
            if options[name] is not None and (error := _resource_quantity_error(name, options[name])):
                raise ValueError(error)
    if "resources" in options:
        resources = options["resources"]
        check_type("resources", resources, (dict, type(None)))
        if resources and ("CPU" in resources or "GPU" in resources):
            raise ValueError("Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' in 'resources' "
                             "keyword")
        for name, quantity in (resources or {}).items():
            if (error := _resource_quantity_error(name, quantity)) is not None:
                raise ValueError(error)
    for name, infinite in _COUNTING.items():
        if name not in options:
            continue
        value = options[name]
        check_type(name, value, _COUNT_TYPES)
        if value is not None and value < (-1 if infinite else 0):
            raise ValueError(f"The keyword '{name}' only accepts None, 0, -1 or a positive integer, where -1 "
                             "represents infinity." if infinite else
                             f"The keyword '{name}' only accepts None, 0 or a positive integer.")
    if "accelerator_type" in options:
        check_type("accelerator_type", options["accelerator_type"], (str, type(None)))


def validate(options: dict[str, Any], for_actor: bool) -> None:
    valid = COMMON | (ACTOR_ONLY if for_actor else TASK_ONLY)
    kind = "actors" if for_actor else "remote functions"
    for key in options:
        if key not in valid:
            raise ValueError(f"Invalid option keyword {key} for {kind}. Valid ones are {sorted(valid)}.")
    _validate_values(options)
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

