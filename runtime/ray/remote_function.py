"""`@ray.remote` functions: `.remote()`, `.options()`."""

from __future__ import annotations

import functools
from typing import Any

from ray._common.ids import ObjectID, TaskID
from ray._private import options as opts
from ray.core_worker.object_ref import ObjectRef
from ray.util.scheduling_strategies import to_wire


class RemoteFunction:
    def __init__(self, function, options: dict[str, Any]):
        opts.validate(options, for_actor=False)
        self._function = function
        self._options = options
        self._key: bytes | None = None
        self._exported_by = None
        self._static_cache: dict = {}
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        name = f"{self._function.__module__}.{self._function.__qualname__}"
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running '{name}()', try '{name}.remote()'."
        )

    def options(self, **task_options) -> _OptionsWrapper:
        opts.validate(task_options, for_actor=False)
        return _OptionsWrapper(self, {**self._options, **task_options})

    def remote(self, *args, **kwargs):
        return self._remote(args, kwargs, self._options)

    def _remote(self, args: tuple, kwargs: dict, options: dict[str, Any]):
        from ray._private.worker import global_worker

        cw = global_worker.ensure_connected()
        if self._key is None or self._exported_by is not cw:
            self._key = cw.functions.export(self._function)
            self._exported_by = cw
        num_returns = options.get("num_returns", 1)
        task_id = TaskID.for_task(cw.job_id)
        return_ids = [ObjectID.for_return(task_id, i).binary() for i in range(num_returns)]
        encoded, kwargs_keys, pinned, keep = cw_encode(cw, args, kwargs)
        spec = dict(self._static_spec(cw, options))
        spec.update(task_id=task_id.binary(), args=encoded, kwargs_keys=kwargs_keys, return_ids=return_ids)
        if cw.executor is not None:  # submitted by a task: `ray.cancel(recursive=True)` of it reaches this one
            spec["parent_task_id"] = cw.current_task_id.binary()
        cw.refs.owned.update(return_ids)
        refs = [ObjectRef(oid, cw.address) for oid in return_ids]
        cw.pin_submitted(pinned)
        cw.submitter.submit_threadsafe(spec, pinned)
        del keep  # the pins hold large arguments from here on
        if num_returns == 1:
            return refs[0]
        return refs


    def _static_spec(self, cw, options: dict[str, Any]) -> dict:
        """The parts of the task spec that depend only on the options (computed once per options)."""
        cache_key = (id(cw), id(options))
        cached = self._static_cache.get(cache_key)
        if cached is not None and cached[0] is options:
            return cached[1]
        max_retries = options.get("max_retries")
        static = {
            "name": options.get("name") or self._function.__name__,
            "function_key": self._key,
            "resources": opts.resources_of(options, default_cpus=1),
            "runtime_env": opts.merge_runtime_env(cw.runtime_env, options.get("runtime_env")),
            "strategy": to_wire(options.get("scheduling_strategy")),
            "max_retries": cw_config().task_max_retries if max_retries is None else max_retries,
            "retry_exceptions": opts.retry_exceptions_wire(options.get("retry_exceptions")),
            "namespace": cw.namespace,
            "owner": cw.address,
        }
        static["scheduling_key"] = scheduling_key(static["resources"], static["runtime_env"], static["strategy"])
        if len(self._static_cache) > 64:
            self._static_cache.clear()
        self._static_cache[cache_key] = (options, static)
        return static


def cw_encode(cw, args, kwargs):
    from ray.core_worker.core_worker import encode_args

    return encode_args(cw, args, kwargs)


def scheduling_key(resources: dict, runtime_env: dict, strategy) -> tuple:
    from ray.core_worker.task_submitter import scheduling_key

    return scheduling_key(resources, runtime_env, strategy)


def cw_config():
    from ray._common.config import config

    return config()


class _OptionsWrapper:
    def __init__(self, remote_function: RemoteFunction, options: dict[str, Any]):
        self._rf = remote_function
        self._options = options

    def remote(self, *args, **kwargs):
        return self._rf._remote(args, kwargs, self._options)
