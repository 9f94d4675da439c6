"""`@ray.remote` functions: `.remote()`, `.options()`. Turns options into a `TaskOptions` and hands each call
to the core worker's front door."""

from __future__ import annotations

import functools
from typing import Any

from ray._common.config import config
from ray._common.runtime_env.validation import merge_runtime_envs
from ray._private import options as opts
from ray.core_worker.object_ref import ObjectRef
from ray.protocol.messages import TaskOptions
from ray.util.placement_group import capture_key, resolve_scheduling
from ray.util.scheduling_strategies import check_option


class RemoteFunction:
    def __init__(self, function, options: dict[str, Any]):
        opts.validate(options, for_actor=False)
        check_option(options)
        self._function = function
        self._options = options
        self._key: bytes | None = None
        self._exported_by = None
        self._task_options_cache: dict[tuple, tuple[dict, TaskOptions]] = {}
        functools.update_wrapper(self, function)

    def __getstate__(self) -> dict[str, Any]:
        # A task or actor that calls this function pickles it by value; what this process cached about its
        # export (and the core worker it was exported through) means nothing in another process.
        state = self.__dict__.copy()
        state.update(_key=None, _exported_by=None, _task_options_cache={})
        return state

    def __call__(self, *args, **kwargs):
        name = f"{self._function.__module__}.{self._function.__qualname__}"
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running '{name}()', try '{name}.remote()'."
        )

    def options(self, **task_options) -> _OptionsWrapper:
        opts.validate(task_options, for_actor=False)
        check_option(task_options)
        return _OptionsWrapper(self, {**self._options, **task_options})

    def remote(self, *args, **kwargs):
        return self._remote(args, kwargs, self._options)

    def _remote(self, args: tuple, kwargs: dict, options: dict[str, Any]) -> ObjectRef | list[ObjectRef]:
        from ray._private.worker import global_worker

        cw = global_worker.ensure_connected()
        refs = cw.submit_task(self._task_options(cw, options), args, kwargs)
        return refs[0] if len(refs) == 1 else refs

    def _task_options(self, cw, options: dict[str, Any]) -> TaskOptions:
        """The options as the core worker takes them; computed once per options dict (and connection), so
        that a loop of `.remote()` calls reuses one object."""
        cache_key = (id(cw), id(options), capture_key(cw))
        cached = self._task_options_cache.get(cache_key)
        if cached is not None and cached[0] is options:
            return cached[1]
        if self._key is None or self._exported_by is not cw:
            self._key = cw.functions.export(self._function)
            self._exported_by = cw
        max_retries = options.get("max_retries")
        strategy, resources, _ = resolve_scheduling(options, opts.resources_of(options, default_cpus=1), None,
                                                    self._function.__name__)
        task_options = TaskOptions(
            name=options.get("name") or self._function.__name__,
            function_key=self._key,
            num_returns=options.get("num_returns", 1),
            resources=resources,
            runtime_env=merge_runtime_envs(cw.runtime_env, options.get("runtime_env")),
            strategy=strategy,
            max_retries=config().task_max_retries if max_retries is None else max_retries,
            retry_exceptions=opts.retry_exceptions_wire(options.get("retry_exceptions")),
        )
        if len(self._task_options_cache) > 64:
            self._task_options_cache.clear()
        self._task_options_cache[cache_key] = (options, task_options)
        return task_options


class _OptionsWrapper:
    def __init__(self, remote_function: RemoteFunction, options: dict[str, Any]):
        self._rf = remote_function
        self._options = options

    def remote(self, *args, **kwargs):
        return self._rf._remote(args, kwargs, self._options)
