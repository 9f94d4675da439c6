"""Check and normalise a runtime_env dict, and merge a child runtime_env over its parent.

Every public entry point (ray.init, .options, job submission, the agent) passes through
`validate_runtime_env`, so a typo such as `{"env_var": ...}` fails where the user wrote it, with the
list of fields that do exist.
"""

from __future__ import annotations

import os
from typing import Any

# Fields OpenRay installs itself.
SUPPORTED_FIELDS = ("working_dir", "py_modules", "excludes", "env_vars", "pip", "uv", "config")
# Fields Ray knows that OpenRay accepts and carries, but that need no work on the node.
PASSTHROUGH_FIELDS = ("worker_process_setup_hook", "_ray_release", "_ray_commit", "_inject_current_ray")
# Fields Ray knows that need machinery OpenRay does not have; rejected with a clear reason.
UNSUPPORTED_FIELDS = ("conda", "container", "image_uri", "java_jars", "nsight", "mpi", "py_executable")
KNOWN_FIELDS = SUPPORTED_FIELDS + PASSTHROUGH_FIELDS + UNSUPPORTED_FIELDS

REMOTE_URI_SCHEMES = ("gcs://", "https://", "http://", "s3://", "gs://", "file://")
CONFIG_FIELDS = {"setup_timeout_seconds", "eager_install", "log_files"}
DEFAULT_SETUP_TIMEOUT_SECONDS = 600


def is_remote_uri(value: str) -> bool:
    return value.startswith(REMOTE_URI_SCHEMES)


def _check_str_list(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"runtime_env['{field}'] must be a list of strings, got {value!r}.")
    return list(value)


def _validate_working_dir(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"runtime_env['working_dir'] must be a local directory, a .zip file or a remote URI "
            f"(e.g. gcs://, https://), got {value!r}."
        )
    if is_remote_uri(value) and not value.endswith(".zip"):
        raise ValueError(f"runtime_env['working_dir'] URI must point to a .zip file, got {value!r}.")
    return value


def _validate_py_modules(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TypeError(f"runtime_env['py_modules'] must be a list, got {type(value).__name__}.")
    modules: list[str] = []
    for item in value:
        if isinstance(item, str):
            modules.append(item)
        elif hasattr(item, "__file__") and item.__file__:
            # An imported module: ship the package directory it came from, as Ray does.
            modules.append(os.path.dirname(item.__file__))
        else:
            raise TypeError(
                f"Each entry of runtime_env['py_modules'] must be a path, a URI or an imported module, got {item!r}."
            )
    return modules


def _validate_env_vars(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError(
            f"runtime_env['env_vars'] must be a dict of strings to strings, got {value!r}. "
            "Convert values with str() first."
        )
    return dict(value)


def _read_requirements_file(path: str) -> list[str]:
    try:
        with open(path) as f:
            lines = [line.strip() for line in f]
    except OSError as e:
        raise ValueError(f"runtime_env pip requirements file {path!r} could not be read: {e}") from e
    return [line for line in lines if line and not line.startswith("#")]


def _validate_pip(field: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        packages = _read_requirements_file(value)
        return {"packages": packages, "pip_check": False}
    if isinstance(value, list):
        return {"packages": _check_str_list(field, value), "pip_check": False}
    if isinstance(value, dict):
        unknown = set(value) - {"packages", "pip_check", "pip_version", "uv_version", "uv_check",
                                "uv_pip_install_options", "pip_install_options"}
        if unknown:
            raise ValueError(f"runtime_env['{field}'] has unknown keys {sorted(unknown)}.")
        if "packages" not in value:
            raise ValueError(f"runtime_env['{field}'] dict must have a 'packages' key, got {value!r}.")
        packages = value["packages"]
        if isinstance(packages, str):
            packages = _read_requirements_file(packages)
        normalised = dict(value)
        normalised["packages"] = _check_str_list(f"{field}']['packages", packages)
        normalised.setdefault("pip_check", False)
        return normalised
    raise TypeError(
        f"runtime_env['{field}'] must be a list of requirements, a path to a requirements file "
        f"or a dict with 'packages', got {type(value).__name__}."
    )


def _validate_config(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"runtime_env['config'] must be a dict, got {type(value).__name__}.")
    unknown = set(value) - CONFIG_FIELDS
    if unknown:
        raise ValueError(
            f"Unknown runtime_env config field(s) {sorted(unknown)}; known: {sorted(CONFIG_FIELDS)}."
        )
    timeout = value.get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or (timeout <= 0 and timeout != -1):
        raise ValueError(f"setup_timeout_seconds must be a positive integer or -1 (no timeout), got {timeout!r}.")
    return dict(value)


def validate_runtime_env(runtime_env: dict[str, Any] | None) -> dict[str, Any]:
    """Returns a normalised copy of `runtime_env`; raises TypeError/ValueError saying what is wrong."""
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, dict):
        raise TypeError(f"runtime_env must be a dict, got {type(runtime_env).__name__}.")
    result: dict[str, Any] = {}
    for field, value in runtime_env.items():
        if field not in KNOWN_FIELDS:
            raise ValueError(
                f"Unknown runtime_env field {field!r}. Valid fields are: {', '.join(sorted(SUPPORTED_FIELDS + PASSTHROUGH_FIELDS))}."
            )
        if field in UNSUPPORTED_FIELDS:
            raise ValueError(
                f"runtime_env field {field!r} is not supported by OpenRay; use 'pip', 'working_dir' "
                "and 'py_modules' instead."
            )
        if value is None:
            continue
        if field == "working_dir":
            result[field] = _validate_working_dir(value)
        elif field == "py_modules":
            result[field] = _validate_py_modules(value)
        elif field == "excludes":
            result[field] = _check_str_list(field, value)
        elif field == "env_vars":
            result[field] = _validate_env_vars(value)
        elif field in ("pip", "uv"):
            result[field] = _validate_pip(field, value)
        elif field == "config":
            result[field] = _validate_config(value)
        else:
            result[field] = value
    if "pip" in result and "uv" in result:
        raise ValueError("runtime_env can specify only one of 'pip' and 'uv', got both.")
    return result


def merge_runtime_envs(parent: dict[str, Any] | None, child: dict[str, Any] | None) -> dict[str, Any]:
    """Ray's inheritance rule (a task's or actor's env over its job's): the child's fields replace the
    parent's, except `env_vars`, which merge; fields left empty are dropped."""
    merged = dict(parent or {})
    for field, value in (child or {}).items():
        if field == "env_vars" and isinstance(value, dict):
            merged["env_vars"] = {**(merged.get("env_vars") or {}), **value}
        else:
            merged[field] = value
    return {k: v for k, v in merged.items() if v not in (None, {}, [])}


def setup_timeout_seconds(runtime_env: dict[str, Any]) -> float | None:
    timeout = (runtime_env.get("config") or {}).get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_SECONDS)
    return None if timeout == -1 else float(timeout)
