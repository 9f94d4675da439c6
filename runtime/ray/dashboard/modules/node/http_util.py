"""What the dashboard's UI-data modules share: Ray's response envelope and key style, and an HTTP client of
the node agents (with the cluster's token)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
from aiohttp import web

from ray._common import auth
from ray._common.runtime_env.agent_registry import AgentAddress, agent_by_node_id

# Maps whose keys are names (resources, labels), not fields: kept as they are by `to_google_style`.
_NAME_KEYED = {"total", "available", "resources_total", "resourcesTotal", "required_resources",
               "requiredResources", "labels", "usage", "node_logical_resources", "nodeLogicalResources",
               "actors", "disk", "components"}
_SNAKE = re.compile(r"_([a-z0-9])")


def camel(key: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


def to_google_style(value: Any) -> Any:
    """Ray's `convert_google_style`: snake_case keys become camelCase, recursively (the keys of maps keyed by
    names — resources, labels, actor ids, disks — stay as they are)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and k in _NAME_KEYED and isinstance(v, dict):
                out[camel(k)] = {name: to_google_style(item) for name, item in v.items()}
            else:
                out[camel(k) if isinstance(k, str) else k] = to_google_style(v)
        return out
    if isinstance(value, (list, tuple)):
        return [to_google_style(v) for v in value]
    return value


def rest_response(success: bool, message: str, status: int | None = None, convert: bool = True,
                  **data: Any) -> web.Response:
    """Ray's envelope `{"result": success, "msg": message, "data": {...}}` (200, or 500 on failure unless a
    status is given)."""
    body = {"result": success, "msg": message, "data": to_google_style(data) if convert else data}
    return web.Response(text=json.dumps(body, default=str), content_type="application/json",
                        status=status or (200 if success else 500))


class AgentClient:
    """GETs to the node agents, found in the GCS KV by node id."""

    def __init__(self, gcs: Any):
        self._gcs = gcs
        self._session: aiohttp.ClientSession | None = None
        self._agents: dict[str, AgentAddress] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=auth.http_headers(),
                                                  timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        return self._session

    async def agent(self, node_id: str) -> AgentAddress | None:
        agent = self._agents.get(node_id)
        if agent is None:
            agent = await asyncio.to_thread(agent_by_node_id, self._gcs, node_id)
            if agent is not None:
                self._agents[node_id] = agent
        return agent

    def forget(self, node_id: str) -> None:
        self._agents.pop(node_id, None)

    async def get_json(self, node_id: str, path: str, timeout_s: float = 5, **params: str) -> Any:
        agent = await self.agent(node_id)
        if agent is None:
            raise ConnectionError(f"No agent is registered for node {node_id}.")
        try:
            async with self.session().get(f"{agent.http_address}{path}", params=params,
                                          timeout=aiohttp.ClientTimeout(total=timeout_s)) as reply:
                if reply.status != 200:
                    raise ConnectionError(f"The agent of node {node_id} answered {reply.status}: "
                                          f"{(await reply.text())[:500]}")
                return await reply.json()
        except (TimeoutError, aiohttp.ClientError) as e:
            self.forget(node_id)  # it may have restarted on another port
            raise ConnectionError(f"Could not reach the agent of node {node_id}: {e!r}") from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
