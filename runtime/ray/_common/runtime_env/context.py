"""RuntimeEnvContext: how to start a worker (or a job's entrypoint) inside a created runtime env."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any


@dataclasses.dataclass
class RuntimeEnvContext:
    """The agent's answer to GetOrCreateRuntimeEnv (JSON form fixed in contracts.md)."""

    env_vars: dict[str, str] = dataclasses.field(default_factory=dict)
    py_executable: str | None = None
    cwd: str | None = None
    pythonpath: list[str] = dataclasses.field(default_factory=list)

    def serialize(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def deserialize(cls, serialized: str) -> RuntimeEnvContext:
        data: dict[str, Any] = json.loads(serialized) if serialized else {}
        return cls(
            env_vars=dict(data.get("env_vars") or {}),
            py_executable=data.get("py_executable"),
            cwd=data.get("cwd"),
            pythonpath=list(data.get("pythonpath") or []),
        )

    def apply_to_environ(self, base_env: dict[str, str]) -> dict[str, str]:
        """The environment a process in this runtime env gets, built over `base_env`."""
        env = dict(base_env)
        env.update(self.env_vars)
        if self.pythonpath:
            parts = list(self.pythonpath)
            if env.get("PYTHONPATH"):
                parts.append(env["PYTHONPATH"])
            env["PYTHONPATH"] = os.pathsep.join(parts)
        return env


def needs_agent(runtime_env: dict[str, Any] | None) -> bool:
    """Whether a runtime env needs the node agent: anything beyond `env_vars` (working_dir, pip, ...).

    Unknown fields count too: the agent validates them and says what is wrong."""
    return any(key != "env_vars" and value for key, value in (runtime_env or {}).items())
