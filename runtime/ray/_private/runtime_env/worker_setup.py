"""What the raylet's worker pool calls before starting a worker for a runtime env.

    context = await prepare_worker_env(agent_address, runtime_env, job_id)   # may raise RuntimeEnvSetupError
    ... start the worker with context.py_executable or sys.executable, context.apply_to_environ(env),
        cwd=context.cwd ...
    await release_worker_env(agent_address, runtime_env)                     # when that worker is gone

Envs that need nothing from the node (no working_dir, py_modules or pip) are answered locally, so
plain tasks never wait for a round trip to the agent.
"""

from __future__ import annotations

import json
from typing import Any

from ray._private.runtime_env.agent_client import RuntimeEnvAgentClient
from ray._private.runtime_env.context import RuntimeEnvContext
from ray.exceptions import RuntimeEnvSetupError

_NODE_FIELDS = ("working_dir", "py_modules", "pip", "uv")
_clients: dict[str, RuntimeEnvAgentClient] = {}


def needs_agent(runtime_env: dict[str, Any] | None) -> bool:
    return any((runtime_env or {}).get(field) for field in _NODE_FIELDS)


def _client(agent_address: str) -> RuntimeEnvAgentClient:
    if agent_address not in _clients:
        _clients[agent_address] = RuntimeEnvAgentClient(agent_address)
    return _clients[agent_address]


async def prepare_worker_env(agent_address: str | None, runtime_env: dict[str, Any] | None,
                             job_id: str) -> RuntimeEnvContext:
    if not needs_agent(runtime_env):
        env_vars = {str(k): str(v) for k, v in ((runtime_env or {}).get("env_vars") or {}).items()}
        return RuntimeEnvContext(env_vars=env_vars)
    if not agent_address:
        raise RuntimeEnvSetupError(
            "This node has no runtime env agent, so it cannot set up "
            f"{sorted(f for f in _NODE_FIELDS if (runtime_env or {}).get(f))}."
        )
    return await _client(agent_address).get_or_create_runtime_env(json.dumps(runtime_env, sort_keys=True), job_id)


async def release_worker_env(agent_address: str | None, runtime_env: dict[str, Any] | None) -> None:
    if agent_address and needs_agent(runtime_env):
        await _client(agent_address).delete_runtime_env_if_possible(json.dumps(runtime_env, sort_keys=True))
