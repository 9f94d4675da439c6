"""Worker start-up contexts for runtime envs, and the node agent references behind them.

An env that only sets `env_vars` is answered here. Anything else (working_dir, py_modules, pip, ...) is
created by the node agent. The raylet takes one agent reference per env key for as long as any worker of
that key lives (or is being started), and gives it back when the last one is gone, so the agent can evict
envs nobody uses once its cache is over its size limit. An `env_vars`-only env is referenced at the agent too,
in the background (its workers never wait for the agent), so that the agent lists every runtime env its node's
workers run in (`ray list runtime-envs`), as Ray's raylet asks its agent for every env that is not empty.
"""

from __future__ import annotations

import asyncio
import json
import logging

from ray._common.runtime_env.context import needs_agent
from ray.exceptions import RuntimeEnvSetupError

logger = logging.getLogger(__name__)


def local_runtime_env_context(runtime_env: dict | None) -> dict:
    """The RuntimeEnvContext (contracts.md) of a runtime env that only sets env_vars: no agent needed."""
    env_vars = {str(k): str(v) for k, v in ((runtime_env or {}).get("env_vars") or {}).items()}
    return {"env_vars": env_vars, "py_executable": None, "cwd": None, "pythonpath": []}


class RuntimeEnvProvider:
    def __init__(self, agent_address: str) -> None:
        self.agent_address = agent_address
        self._client = None
        self._contexts: dict[str, dict] = {}  # env key -> context, while the agent reference is held
        self._users: dict[str, int] = {}  # env key -> workers alive or starting with it
        self._creating: dict[str, asyncio.Task] = {}
        self._runtime_envs: dict[str, dict] = {}
        self._listing: dict[str, asyncio.Task] = {}  # env_vars-only key -> its reference being taken at the agent

    async def acquire(self, key: str, runtime_env: dict, job_id: str) -> dict:
        """The context to start one worker of `key` with; pair every successful call with `release(key)`."""
        if not needs_agent(runtime_env):
            if self.agent_address and any((runtime_env or {}).values()):
                self._hold_listed(key, runtime_env, job_id)
            return local_runtime_env_context(runtime_env)
        if key not in self._contexts:
            # Concurrent first users of one env share a single agent call (and so a single reference).
            task = self._creating.get(key)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._create(runtime_env, job_id))
                self._creating[key] = task
                task.add_done_callback(lambda _t, k=key: self._creating.pop(k, None))
            context = await asyncio.shield(task)
            self._contexts.setdefault(key, context)
            self._runtime_envs[key] = runtime_env
        self._users[key] = self._users.get(key, 0) + 1
        return self._contexts[key]

    def _hold_listed(self, key: str, runtime_env: dict, job_id: str) -> None:
        """An env_vars-only env: counted like the others, its agent reference taken in the background."""
        self._users[key] = self._users.get(key, 0) + 1
        if self._users[key] == 1:
            self._runtime_envs[key] = runtime_env
            self._listing[key] = asyncio.get_running_loop().create_task(self._list_at_agent(runtime_env, job_id))

    async def _list_at_agent(self, runtime_env: dict, job_id: str) -> None:
        try:
            await self._create(runtime_env, job_id)
        except Exception as e:  # its workers run without it; only `ray list runtime-envs` misses it
            logger.info("The node agent did not record runtime env %s: %s", runtime_env, e)

    def release(self, key: str) -> None:
        """One worker of `key` is gone (or was never started); the last one gives the agent reference back."""
        if key not in self._users:
            return  # the empty env: nothing held
        self._users[key] -= 1
        if self._users[key] > 0:
            return
        del self._users[key]
        self._contexts.pop(key, None)
        runtime_env = self._runtime_envs.pop(key)
        asyncio.get_running_loop().create_task(self._delete(runtime_env, self._listing.pop(key, None)))

    async def _create(self, runtime_env: dict, job_id: str) -> dict:
        if not self.agent_address:
            raise RuntimeEnvSetupError(
                f"The runtime env {json.dumps(runtime_env)} needs the node agent (pip, working_dir, ...), "
                "but this node runs without one.")
        client = await self._agent_client()
        for attempt in range(4):
            try:
                ctx = await client.get_or_create_runtime_env(json.dumps(runtime_env, sort_keys=True), job_id)
                break
            except RuntimeEnvSetupError as e:
                # A transport hiccup (agent still starting, loaded machine) is retried; setup errors are not.
                if "could not be reached" not in str(e) or attempt == 3:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        return {"env_vars": dict(ctx.env_vars), "py_executable": ctx.py_executable, "cwd": ctx.cwd,
                "pythonpath": list(ctx.pythonpath)}

    async def _delete(self, runtime_env: dict, taken: asyncio.Task | None = None) -> None:
        if taken is not None:  # an env_vars-only env's reference: given back after it was taken
            await asyncio.wait([taken])
        try:
            client = await self._agent_client()
            await client.delete_runtime_env_if_possible(json.dumps(runtime_env, sort_keys=True))
        except Exception as e:  # the agent may be going away with the node; the env is then moot
            logger.info("Could not release runtime env %s at the agent: %s", runtime_env, e)

    async def _agent_client(self):
        if self._client is None:
            from ray._common.runtime_env.agent_client import RuntimeEnvAgentClient

            await self._wait_for_agent()
            self._client = RuntimeEnvAgentClient(self.agent_address)
        return self._client

    async def _wait_for_agent(self, timeout_s: float = 60) -> None:
        """The agent starts beside the raylet; the first runtime env may be asked for before it listens."""
        host, _, port = self.agent_address.rpartition(":")
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                _, writer = await asyncio.open_connection(host, int(port))
                writer.close()
                return
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeEnvSetupError(
                        f"The node agent at {self.agent_address} did not start listening in "
                        f"{timeout_s:.0f} s; see agent.log / agent.err in the session's logs.") from None
                await asyncio.sleep(0.1)
