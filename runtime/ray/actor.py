"""Actors: `@ray.remote` classes, handles, method calls, named lookups, kill and exit."""

from __future__ import annotations

import inspect
from typing import Any

from ray import exceptions
from ray._common.ids import ActorID
from ray._common.runtime_env.validation import merge_runtime_envs
from ray._private import options as opts
from ray.core_worker.object_ref import ObjectRef
from ray.protocol.messages import ActorMethodOptions, ActorOptions
from ray.util.placement_group import resolve_scheduling
from ray.util.scheduling_strategies import check_option


def _method_meta(cls: type) -> dict[str, dict]:
    meta = {}
    for name, member in inspect.getmembers(cls, predicate=lambda m: inspect.isfunction(m) or inspect.ismethod(m)):
        if name.startswith("__") and name != "__call__":
            continue
        meta[name] = {"num_returns": getattr(member, "__ray_num_returns__", 1)}
    return meta


class ActorClass:
    def __init__(self, cls: type, options: dict[str, Any]):
        opts.validate(options, for_actor=True)
        check_option(options)
        self._cls = cls
        self._options = options
        self._key: bytes | None = None
        self._exported_by = None
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __getstate__(self) -> dict[str, Any]:
        # Pickled by value into tasks and actors that create this actor: the export cache stays here.
        state = self.__dict__.copy()
        state.update(_key=None, _exported_by=None)
        return state

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self._cls.__name__}()', use "
            f"'{self._cls.__name__}.remote()'."
        )

    def options(self, **actor_options) -> _ActorClassOptions:
        opts.validate(actor_options, for_actor=True)
        check_option(actor_options)
        return _ActorClassOptions(self, {**self._options, **actor_options})

    def remote(self, *args, **kwargs) -> ActorHandle:
        return self._remote(args, kwargs, self._options)

    def _remote(self, args: tuple, kwargs: dict, options: dict[str, Any]) -> ActorHandle:
        from ray._private.worker import global_worker

        cw = global_worker.ensure_connected()
        if self._key is None or self._exported_by is not cw:
            self._key = cw.functions.export(self._cls, "ActorClass")
            self._exported_by = cw
        name = options.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError("Actor name must be a non-empty string.")
        default_cpus = 0 if not any(k in options for k in ("num_cpus", "num_gpus", "resources", "memory")) else 1
        resources = opts.resources_of(options, default_cpus=default_cpus)
        strategy, resources, placement_resources = resolve_scheduling(
            options, resources, dict(resources) if default_cpus else {"CPU": 1.0, **resources}, self._cls.__name__)
        actor = cw.create_actor(ActorOptions(
            function_key=self._key, class_name=self._cls.__name__, resources=resources,
            placement_resources=placement_resources,
            runtime_env=merge_runtime_envs(cw.runtime_env, options.get("runtime_env")),
            strategy=strategy, name=name or "",
            namespace=options.get("namespace") or cw.namespace, detached=options.get("lifetime") == "detached",
            max_restarts=options.get("max_restarts", 0), max_task_retries=options.get("max_task_retries", 0),
            max_concurrency=options.get("max_concurrency") or 0, get_if_exists=bool(options.get("get_if_exists")),
        ), args, kwargs)
        return ActorHandle(actor.actor_id, actor.class_name, _method_meta(self._cls), actor.max_task_retries,
                           actor.scope_ref)


class _ActorClassOptions:
    def __init__(self, actor_class: ActorClass, options: dict[str, Any]):
        self._actor_class = actor_class
        self._options = options

    def remote(self, *args, **kwargs) -> ActorHandle:
        return self._actor_class._remote(args, kwargs, self._options)


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, num_returns: int):
        self._handle = handle
        self._name = name
        self._num_returns = num_returns

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actor methods cannot be called directly. Instead of running 'object.{self._name}()', "
                        f"try 'object.{self._name}.remote()'.")

    def options(self, **options) -> ActorMethod:
        return ActorMethod(self._handle, self._name, options.get("num_returns", self._num_returns))

    def remote(self, *args, **kwargs):
        return self._handle._call(self._name, args, kwargs, self._num_returns)


class ActorHandle:
    def __init__(self, actor_id: bytes, class_name: str, method_meta: dict, max_task_retries: int = 0,
                 scope_ref: ObjectRef | None = None):
        self._actor_id = actor_id
        self._class_name = class_name
        self._method_meta = method_meta
        self._max_task_retries = max_task_retries
        self._scope_ref = scope_ref  # None: the actor's life does not depend on handles (named, detached)
        self._method_options: dict[tuple[str, int], ActorMethodOptions] = {}

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        meta = self._method_meta.get(name)
        if meta is None:
            raise AttributeError(f"'{self._class_name}' object has no attribute '{name}'")
        return ActorMethod(self, name, meta["num_returns"])

    def _call(self, method: str, args: tuple, kwargs: dict, num_returns: int):
        from ray._private.worker import global_worker

        cw = global_worker.ensure_connected()
        options = self._method_options.get((method, num_returns))
        if options is None:
            options = self._method_options[(method, num_returns)] = ActorMethodOptions(
                method, f"{self._class_name}.{method}", num_returns)
        refs = cw.submit_actor_task(self._actor_id, options, args, kwargs, self._max_task_retries)
        if num_returns == 1:
            return refs[0]
        return refs if num_returns else None

    @property
    def _ray_actor_id(self) -> ActorID:
        return ActorID(self._actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __reduce__(self):
        # The scope ref travels with the handle, so whoever holds a copy keeps the actor alive.
        return ActorHandle, (self._actor_id, self._class_name, self._method_meta, self._max_task_retries,
                             self._scope_ref)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    from ray._private.worker import global_worker

    if not isinstance(name, str) or not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    cw = global_worker.ensure_connected()
    ns = namespace if namespace is not None else cw.task_context("namespace") or cw.namespace
    actor = cw.named_actor(name, ns)
    if actor is None:
        raise ValueError(
            f"Failed to look up actor with name '{name}'. This could because 1. You are trying to look up a "
            "named actor you didn't create. 2. The named actor died. 3. You did not use a namespace matching the "
            "namespace of the actor."
        )
    cls = cw.functions.load(actor.function_key)
    return ActorHandle(actor.actor_id, actor.class_name, _method_meta(cls), actor.max_task_retries)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    from ray._private.worker import global_worker

    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supported for actors. For tasks, try ray.cancel(). Got: {type(actor)}.")
    global_worker.ensure_connected().kill_actor(actor._actor_id, no_restart)


def exit_actor() -> None:
    """End the current actor after this method returns; it will not be restarted."""
    from ray._private.worker import global_worker
    from ray.core_worker.executor import ActorExit

    cw = global_worker.core_worker
    if cw is None or global_worker.mode != "worker" or cw.executor is None or cw.executor.actor is None:
        raise TypeError("exit_actor API is called on a non-actor worker.")
    raise ActorExit()


__all__ = ["ActorClass", "ActorHandle", "exit_actor", "exceptions"]
