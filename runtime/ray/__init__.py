"""OpenRay: a Ray-compatible distributed runtime in Python."""

from __future__ import annotations

__version__ = "2.60.0"

import inspect as _inspect

from ray import exceptions  # noqa: E402
from ray._private.object_ref import ObjectRef  # noqa: E402
from ray._private.worker import (  # noqa: E402
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_gpu_ids,
    init,
    is_initialized,
    nodes,
    put,
    shutdown,
    wait,
)


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
    "ObjectRef", "available_resources", "cancel", "cluster_resources", "exceptions", "get", "get_actor",
    "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method", "nodes", "put", "remote",
    "shutdown", "wait",
]

from ray import actor  # noqa: E402,F401  (so `ray.actor.exit_actor()` works without an extra import)
