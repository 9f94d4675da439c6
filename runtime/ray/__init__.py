"""OpenRay: a Ray-compatible distributed runtime in Python.

The public API loads lazily: `import ray.gcs.server` (a GCS process) runs this file too, and must not pull
in the driver. Names listed in `_LAZY` are imported on first use.
"""

from __future__ import annotations

import importlib as _importlib
import inspect as _inspect
from typing import Any as _Any

from ray._version import version as __version__  # noqa: F401  (public: `ray.__version__`)

# public name -> the module that defines it
_LAZY = {
    "ObjectRef": "ray.core_worker.object_ref",
    "NodeID": "ray._common.ids",
    **{name: "ray._private.worker" for name in (
        "available_resources", "cancel", "cluster_resources", "get", "get_gpu_ids", "init", "is_initialized",
        "nodes", "put", "shutdown", "wait")},
    "timeline": "ray._private.state_timeline",
}
# submodules reachable as attributes (`ray.exceptions.RayTaskError`, `ray.actor.exit_actor()`, `ray.util`)
_SUBMODULES = frozenset(("actor", "exceptions", "job_submission", "runtime_context", "runtime_env", "util",
                         "cluster_utils", "remote_function"))


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(module), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"ray.{name}")
    else:
        raise AttributeError(f"module 'ray' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


def remote(*args, **kwargs):
    """`@ray.remote` / `@ray.remote(**options)` for functions and classes (actors)."""
    from ray.remote_function import RemoteFunction

    def make(target, options):
        if _inspect.isclass(target):
            from ray.actor import ActorClass

            return ActorClass(target, options)
        if callable(target):
            return RemoteFunction(target, options)
        raise TypeError("The @ray.remote decorator must be applied to either a function or a class.")

    if len(args) == 1 and not kwargs and callable(args[0]):
        return make(args[0], {})
    if args:
        raise TypeError(
            "The @ray.remote decorator must be applied either with no arguments and no parentheses, for example "
            "'@ray.remote', or it must be applied using some of the arguments in the list ['num_returns', "
            "'num_cpus', 'num_gpus', 'memory', 'resources', 'max_calls', 'max_restarts', 'max_task_retries', "
            "'max_retries', 'runtime_env', 'retry_exceptions', 'scheduling_strategy'], for example "
            "'@ray.remote(num_returns=2, resources={\"CustomResource\": 1})'."
        )
    return lambda target: make(target, kwargs)


def method(*, num_returns: int | None = None, concurrency_group: str | None = None, **_):
    """`@ray.method(num_returns=...)` on actor methods."""

    def decorate(fn):
        if num_returns is not None:
            fn.__ray_num_returns__ = num_returns
        if concurrency_group is not None:
            fn.__ray_concurrency_group__ = concurrency_group
        return fn

    return decorate


def get_actor(name: str, namespace: str | None = None):
    from ray.actor import get_actor as _get_actor

    return _get_actor(name, namespace)


def kill(actor_handle, *, no_restart: bool = True) -> None:
    from ray.actor import kill as _kill

    _kill(actor_handle, no_restart=no_restart)


def get_runtime_context():
    from ray.runtime_context import get_runtime_context as _get

    return _get()


__all__ = [
    "NodeID", "ObjectRef", "available_resources", "cancel", "cluster_resources", "exceptions", "get", "get_actor",
    "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method", "nodes", "put", "remote",
    "shutdown", "timeline", "wait",
]
