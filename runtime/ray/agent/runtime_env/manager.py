"""Creates runtime envs on a node, caches them and counts their users (the node agent's core).

Each runtime env is split into resources (one pip venv, one unpacked package per working_dir or
py_module URI). A resource is created once per node, shared by every env that needs it, counted per
user, and deleted only when unused and its cache kind is over its size limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ray._common.runtime_env.context import RuntimeEnvContext
from ray._common.runtime_env.packaging import (
    PackageKV,
    directory_size,
    download_and_unpack_package,
    file_lock,
    package_name,
)
from ray._common.runtime_env.validation import is_remote_uri, setup_timeout_seconds, validate_runtime_env
from ray.agent.runtime_env import pip as pip_env
from ray.agent.runtime_env.uri_cache import URICache

logger = logging.getLogger(__name__)

_GB = 1024**3
# Per-kind cache limits (Ray's env var names; 10 GB each by default).
_CACHE_SIZE_ENV = {
    "working_dir": "RAY_RUNTIME_ENV_WORKING_DIR_CACHE_SIZE_GB",
    "py_modules": "RAY_RUNTIME_ENV_PY_MODULES_CACHE_SIZE_GB",
    "pip": "RAY_RUNTIME_ENV_PIP_CACHE_SIZE_GB",
}


_MAX_FAILED_ENVS = 100


class CreatedEnv:
    """What `ray list runtime-envs` shows of one env on this node (Ray's CreatedEnvResult)."""

    __slots__ = ("success", "error", "creation_time_ms")

    def __init__(self, success: bool, error: str | None, creation_time_ms: int):
        self.success = success
        self.error = error
        self.creation_time_ms = creation_time_ms  # how long creating it took, as Ray's


class RuntimeEnvSetupFailed(RuntimeError):
    """Creating a runtime env failed; the message is what the user sees in RuntimeEnvSetupError."""


def _cache_limit_bytes(kind: str) -> int:
    return int(float(os.environ.get(_CACHE_SIZE_ENV[kind], "10")) * _GB)


def canonical(serialized_runtime_env: str) -> str:
    """One key per distinct env, whatever the key order of its JSON."""
    return json.dumps(json.loads(serialized_runtime_env or "{}"), sort_keys=True)


def _ms_since(start: float) -> int:
    return int(round((time.perf_counter() - start) * 1000))


class RuntimeEnvManager:
    def __init__(self, resources_dir: str, kv_factory: Callable[[], PackageKV | None]):
        self.resources_dir = resources_dir
        self._kv_factory = kv_factory
        self._kv: PackageKV | None = None
        self._dirs = {
            "working_dir": os.path.join(resources_dir, "working_dir_files"),
            "py_modules": os.path.join(resources_dir, "py_modules_files"),
            "pip": os.path.join(resources_dir, "pip"),
        }
        for path in self._dirs.values():
            os.makedirs(path, exist_ok=True)
        self._caches = {kind: URICache(_cache_limit_bytes(kind), self._deleter(kind)) for kind in self._dirs}
        self._locks: dict[str, asyncio.Lock] = {}
        self._env_users: dict[str, int] = {}  # canonical env -> users
        self._env_resources: dict[str, list[tuple[str, str]]] = {}  # canonical env -> (kind, uri)
        # canonical env -> its last creation's result, for `ray list runtime-envs` (Ray's env cache): kept while
        # the env has users; a failure is kept (the newest _MAX_FAILED_ENVS) so that the user can see why.
        self._results: OrderedDict[str, CreatedEnv] = OrderedDict()
        self.setup_log_dir = os.path.join(os.path.dirname(resources_dir.rstrip("/")), "logs")

    def _deleter(self, kind: str) -> Callable[[str], int]:
        def delete(uri: str) -> int:
            path = self._resource_path(kind, uri)
            if kind == "pip":
                return pip_env.delete_pip_env(path)
            with file_lock(path + ".lock"):
                size = directory_size(path)
                shutil.rmtree(path, ignore_errors=True)
            return size

        return delete

    def _resource_path(self, kind: str, uri: str) -> str:
        if kind == "pip":
            return os.path.join(self._dirs["pip"], uri.split("://", 1)[1])
        return os.path.join(self._dirs[kind], package_name(uri))

    def _get_kv(self) -> PackageKV | None:
        if self._kv is None:
            self._kv = self._kv_factory()
        return self._kv

    def cache(self, kind: str) -> URICache:
        return self._caches[kind]

    async def _ensure_resource(self, kind: str, uri: str, create: Callable[[], None]) -> str:
        path = self._resource_path(kind, uri)
        lock = self._locks.setdefault(f"{kind}:{uri}", asyncio.Lock())
        async with lock:
            cache = self._caches[kind]
            if uri in cache and os.path.isdir(path):
                cache.mark_used(uri)
                return path
            await asyncio.to_thread(create)
            cache.add(uri, await asyncio.to_thread(directory_size, path))
        return path

    async def _create(self, runtime_env: dict[str, Any], job_id: str) -> tuple[RuntimeEnvContext, list[tuple[str, str]]]:
        context = RuntimeEnvContext(env_vars=dict(runtime_env.get("env_vars") or {}))
        used: list[tuple[str, str]] = []
        try:
            working_dir = runtime_env.get("working_dir")
            if working_dir:
                if not is_remote_uri(working_dir):
                    raise RuntimeEnvSetupFailed(
                        f"working_dir {working_dir!r} is a local path on the node; it must be uploaded "
                        "first (ray.init, `ray job submit` and JobSubmissionClient do this)."
                    )
                path = await self._ensure_resource(
                    "working_dir", working_dir,
                    lambda: download_and_unpack_package(working_dir, self._dirs["working_dir"], self._get_kv()),
                )
                used.append(("working_dir", working_dir))
                context.cwd = path
                context.pythonpath.append(path)  # Ray puts the working_dir on the import path too
            for module_uri in runtime_env.get("py_modules") or []:
                if not is_remote_uri(module_uri):
                    raise RuntimeEnvSetupFailed(f"py_modules entry {module_uri!r} must be uploaded first.")
                path = await self._ensure_resource(
                    "py_modules", module_uri,
                    lambda uri=module_uri: download_and_unpack_package(uri, self._dirs["py_modules"], self._get_kv()),
                )
                used.append(("py_modules", module_uri))
                context.pythonpath.append(path)
            pip_spec = runtime_env.get("pip") or runtime_env.get("uv")
            if pip_spec:
                uri = f"pip://{pip_env.pip_env_hash(pip_spec)}"
                env_dir = self._resource_path("pip", uri)
                log_file = os.path.join(self.setup_log_dir, f"runtime_env_setup-{job_id or 'ray'}.log")
                os.makedirs(self.setup_log_dir, exist_ok=True)
                await self._ensure_resource("pip", uri, lambda: pip_env.create_pip_env(env_dir, pip_spec, log_file))
                used.append(("pip", uri))
                context.py_executable, pip_vars = pip_env.pip_env_context(env_dir)
                context.env_vars = {**pip_vars, **context.env_vars}
        except BaseException:
            for kind, uri in used:
                self._caches[kind].mark_unused(uri)
            raise
        return context, used

    async def get_or_create(self, serialized_runtime_env: str, job_id: str = "") -> RuntimeEnvContext:
        """Creates (or reuses) the env and counts one more user; raises RuntimeEnvSetupFailed."""
        try:
            runtime_env = validate_runtime_env(json.loads(serialized_runtime_env or "{}"))
        except (TypeError, ValueError) as e:
            raise RuntimeEnvSetupFailed(str(e)) from e
        key = canonical(serialized_runtime_env)
        timeout = setup_timeout_seconds(runtime_env)
        start = time.perf_counter()
        try:
            try:
                context, used = await asyncio.wait_for(self._create(runtime_env, job_id), timeout)
            except TimeoutError as e:
                raise RuntimeEnvSetupFailed(
                    f"Failed to set up the runtime environment within {timeout} seconds "
                    "(runtime_env config setup_timeout_seconds)."
                ) from e
            except RuntimeEnvSetupFailed:
                raise
            except Exception as e:
                raise RuntimeEnvSetupFailed(str(e)) from e
        except RuntimeEnvSetupFailed as e:
            self._remember(key, CreatedEnv(False, str(e), _ms_since(start)))
            raise
        previous = self._results.get(key)
        if previous is None or not previous.success:  # a reuse keeps the first creation's time, as Ray's cache
            self._remember(key, CreatedEnv(True, None, _ms_since(start)))
        self._env_resources[key] = used
        self._env_users[key] = self._env_users.get(key, 0) + 1
        return context

    def _remember(self, key: str, result: CreatedEnv) -> None:
        self._results.pop(key, None)
        self._results[key] = result
        failed = [k for k, r in self._results.items() if not r.success and k not in self._env_users]
        for old in failed[: max(0, len(failed) - _MAX_FAILED_ENVS)]:
            del self._results[old]

    def states(self) -> list[dict[str, Any]]:
        """Ray's RuntimeEnvState of every env this node created and still uses, or failed to create: runtime_env
        (a dict), ref_cnt (its users), success, error, creation_time_ms (how long creating it took)."""
        rows = []
        for key in set(self._results) | set(self._env_users):
            result = self._results.get(key)
            rows.append({"runtime_env": json.loads(key), "ref_cnt": self._env_users.get(key, 0),
                         "success": bool(result and result.success), "error": result.error if result else None,
                         "creation_time_ms": result.creation_time_ms if result else None})
        return rows

    async def delete_if_possible(self, serialized_runtime_env: str) -> bool:
        """Drops one user of the env; its resources become deletable when nobody uses them."""
        key = canonical(serialized_runtime_env)
        users = self._env_users.get(key, 0)
        if users <= 0:
            return False
        if users == 1:
            self._env_users.pop(key)
            self._results.pop(key, None)  # unused: gone from the list, as Ray drops it from its env cache
            resources = self._env_resources.pop(key, [])
        else:
            self._env_users[key] = users - 1
            resources = self._env_resources.get(key, [])
        for kind, uri in resources:
            self._caches[kind].mark_unused(uri)
        return True

