"""RuntimeEnv and RuntimeEnvConfig: dicts with Ray's constructor keywords, validated on creation."""

from __future__ import annotations

import json
from typing import Any

from ray._common.runtime_env.validation import DEFAULT_SETUP_TIMEOUT_SECONDS, validate_runtime_env


class RuntimeEnvConfig(dict):
    """Options of the runtime env itself (Ray's names and defaults)."""

    def __init__(
        self,
        setup_timeout_seconds: int = DEFAULT_SETUP_TIMEOUT_SECONDS,
        eager_install: bool = True,
        log_files: list[str] | None = None,
    ):
        super().__init__(setup_timeout_seconds=setup_timeout_seconds, eager_install=eager_install)
        if log_files is not None:
            self["log_files"] = log_files
        validate_runtime_env({"config": dict(self)})


class RuntimeEnv(dict):
    """A runtime environment, e.g. `RuntimeEnv(pip=["emoji"], env_vars={"A": "1"})`.

    Being a dict, it can be passed anywhere a runtime_env dict is accepted.
    """

    def __init__(
        self,
        *,
        py_modules: list[Any] | None = None,
        working_dir: str | None = None,
        pip: list[str] | str | dict[str, Any] | None = None,
        uv: list[str] | str | dict[str, Any] | None = None,
        env_vars: dict[str, str] | None = None,
        worker_process_setup_hook: str | None = None,
        config: dict[str, Any] | RuntimeEnvConfig | None = None,
        _validate: bool = True,
        **kwargs: Any,
    ):
        fields = {
            "py_modules": py_modules,
            "working_dir": working_dir,
            "pip": pip,
            "uv": uv,
            "env_vars": env_vars,
            "worker_process_setup_hook": worker_process_setup_hook,
            "config": dict(config) if config is not None else None,
            **kwargs,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        super().__init__(validate_runtime_env(fields) if _validate else fields)

    def serialize(self) -> str:
        return json.dumps(self, sort_keys=True)

    @classmethod
    def deserialize(cls, serialized: str) -> RuntimeEnv:
        return cls(_validate=False, **json.loads(serialized))

    def to_dict(self) -> dict[str, Any]:
        return dict(self)

    def env_vars(self) -> dict[str, str]:
        return dict(self.get("env_vars") or {})

    def working_dir(self) -> str:
        return self.get("working_dir", "")

    def py_modules(self) -> list[str]:
        return list(self.get("py_modules") or [])
