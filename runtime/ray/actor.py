"""Actors: `@ray.remote` classes, handles, method calls, named lookups, kill and exit."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

from ray import exceptions
from ray._common.ids import ActorID, ObjectID, TaskID
from ray._private import options as opts
from ray.core_worker.object_ref import ObjectRef
from ray.util.scheduling_strategies import to_wire


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
        self._cls = cls
        self._options = options
        self._key: bytes | None = None
        self._exported_by = None
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self._cls.__name__}()', use "
            f"'{self._cls.__name__}.remote()'."
        )

    def options(self, **actor_options) -> _ActorClassOptions:
        opts.validate(actor_options, for_actor=True)
        return _ActorClassOptions(self, {**self._options, **actor_options})

    def remote(self, *args, **kwargs) -> ActorHandle:
        return self._remote(args, kwargs, self._options)

    def _remote(self, args: tuple, kwargs: dict, options: dict[str, Any]) -> ActorHandle:
        from ray._private.worker import global_worker
        from ray.core_worker.core_worker import encode_args
        from ray.protocol import actor_pb2 as apb

        cw = global_worker.ensure_connected()
        if self._key is None or self._exported_by is not cw:
            self._key = cw.functions.export(self._cls, "ActorClass")
            self._exported_by = cw
        name = options.get("name")
        namespace = options.get("namespace") or cw.namespace
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError("Actor name must be a non-empty string.")
        actor_id = ActorID.of(cw.job_id)
        encoded, kwargs_keys, pinned, keep = encode_args(cw, args, kwargs)
        # The actor may start (and restart) much later, from arguments the GCS keeps: values put for large
        # arguments and refs inside arguments stay alive as long as this process.
        for ref in keep:
            cw.refs.escape(ref._id)
        # The GCS forwards the arguments to the actor's worker: resolve our own refs into values now.
        for i, arg in enumerate(encoded):
            if arg[0] == "r" and arg[2].get("worker_id") == cw.address["worker_id"]:
                cw.wait_stored([(arg[1], arg[2])], 1, None)
                stored = cw.memory_store.get(arg[1])
                if stored.is_error:
                    cw.materialize(arg[1], stored)  # raises the argument's error, as Ray does
                encoded[i] = ("v", stored.data) if stored.data is not None else ("s", arg[1], stored.to_wire())
        default_cpus = 0 if not any(k in options for k in ("num_cpus", "num_gpus", "resources", "memory")) else 1
        resources = opts.resources_of(options, default_cpus=default_cpus)
        placement = dict(resources) if default_cpus else {"CPU": 1.0, **resources}
        detached = options.get("lifetime") == "detached"
        meta = _method_meta(self._cls)
        max_task_retries = options.get("max_task_retries", 0)
        spec = {
            "actor_id": actor_id.binary(), "task_id": TaskID.for_actor_task(actor_id).binary(),
            "job_id": cw.job_id.hex(), "function_key": self._key, "class_name": self._cls.__name__,
            "args": encoded, "kwargs_keys": kwargs_keys, "return_ids": [],
            "resources": resources, "placement_resources": placement,
            "runtime_env": opts.merge_runtime_env(cw.runtime_env, options.get("runtime_env")),
            "strategy": to_wire(options.get("scheduling_strategy")),
            "name": name or "", "namespace": namespace, "detached": detached,
            "max_restarts": options.get("max_restarts", 0), "max_task_retries": max_task_retries,
            "max_concurrency": options.get("max_concurrency"), "owner": cw.address,
        }
        reply = cw.gcs.call(cw.gcs.stubs.actor.RegisterActor, apb.RegisterActorRequest(
            creation_spec=pickle.dumps(spec), get_if_exists=bool(options.get("get_if_exists"))))
        del keep
        if reply.code != 0:
            raise ValueError(reply.error_message)
        data = reply.actor
        # An unnamed, non-detached actor ends when the last handle to it anywhere goes away: its handles
        # share one ref that is counted like any object ref (borrowers included).
        scope_ref = None
        if not name and not detached and data.actor_id == actor_id.binary():
            scope_ref = cw.actor_scope_ref(actor_id.binary(), spec["task_id"])
        return ActorHandle(data.actor_id, data.class_name, meta, data.max_task_retries, scope_ref)


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

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        meta = self._method_meta.get(name)
        if meta is None:
            raise AttributeError(f"'{self._class_name}' object has no attribute '{name}'")
        return ActorMethod(self, name, meta["num_returns"])

    def _call(self, method: str, args: tuple, kwargs: dict, num_returns: int):
        from ray._private.worker import global_worker
        from ray.core_worker.core_worker import encode_args

        cw = global_worker.ensure_connected()
        task_id = TaskID.for_actor_task(ActorID(self._actor_id))
        return_ids = [ObjectID.for_return(task_id, i).binary() for i in range(num_returns)]
        encoded, kwargs_keys, pinned, keep = encode_args(cw, args, kwargs)
        spec = {
            "task_id": task_id.binary(), "method": method, "name": f"{self._class_name}.{method}",
            "args": encoded, "kwargs_keys": kwargs_keys, "return_ids": return_ids,
            "namespace": cw.namespace, "owner": cw.address,
        }
        cw.refs.owned.update(return_ids)
        refs = [ObjectRef(oid, cw.address) for oid in return_ids]
        cw.pin_submitted(pinned)
        cw.loop.call_soon_threadsafe(cw.actor_submitter.submit, self._actor_id, spec, pinned, self._max_task_retries)
        del keep
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
    from ray.protocol import actor_pb2 as apb

    if not isinstance(name, str) or not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    cw = global_worker.ensure_connected()
    ns = namespace if namespace is not None else cw.task_context("namespace") or cw.namespace
    reply = cw.gcs.call(cw.gcs.stubs.actor.GetNamedActorInfo,
                        apb.GetNamedActorInfoRequest(name=name, ray_namespace=ns))
    if not reply.found:
        raise ValueError(
            f"Failed to look up actor with name '{name}'. This could because 1. You are trying to look up a "
            "named actor you didn't create. 2. The named actor died. 3. You did not use a namespace matching the "
            "namespace of the actor."
        )
    cls = cw.functions.load(reply.actor.function_key)
    return ActorHandle(reply.actor.actor_id, reply.actor.class_name, _method_meta(cls), reply.actor.max_task_retries)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    from ray._private.worker import global_worker
    from ray.protocol import actor_pb2 as apb

    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supported for actors. For tasks, try ray.cancel(). Got: {type(actor)}.")
    cw = global_worker.ensure_connected()
    cw.gcs.call(cw.gcs.stubs.actor.KillActorViaGcs,
                apb.KillActorViaGcsRequest(actor_id=actor._actor_id, force_kill=True, no_restart=no_restart))
    if no_restart:
        cw.loop.call_soon_threadsafe(cw.actor_submitter.mark_killed, actor._actor_id,
                                     "The actor was killed by `ray.kill`.")


def exit_actor() -> None:
    """End the current actor after this method returns; it will not be restarted."""
    from ray._private.worker import global_worker
    from ray.core_worker.executor import ActorExit

    cw = global_worker.core_worker
    if cw is None or global_worker.mode != "worker" or cw.executor is None or cw.executor.actor is None:
        raise TypeError("exit_actor API is called on a non-actor worker.")
    raise ActorExit()


__all__ = ["ActorClass", "ActorHandle", "exit_actor", "exceptions"]
