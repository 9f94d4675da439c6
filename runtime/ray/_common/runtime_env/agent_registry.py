"""Where each node's agent listens, kept in the GCS internal KV (Ray's keys, namespace b"dashboard").

The agent writes its addresses at startup; the dashboard and job supervisors read them to reach the
runtime env service of a node.
"""

from __future__ import annotations

import json
from typing import NamedTuple, Protocol

AGENT_KV_NAMESPACE = b"dashboard"
NODE_ID_PREFIX = "DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX:"
IP_PREFIX = "DASHBOARD_AGENT_ADDR_IP_PREFIX:"


class AgentKV(Protocol):
    def internal_kv_get(self, key: bytes, namespace: bytes | None = None) -> bytes | None: ...

    def internal_kv_put(
        self, key: bytes, value: bytes, overwrite: bool = True, namespace: bytes | None = None
    ) -> int: ...

    def internal_kv_del(self, key: bytes, del_by_prefix: bool = False, namespace: bytes | None = None) -> int: ...


class AgentAddress(NamedTuple):
    node_id: str
    ip: str
    http_port: int
    grpc_port: int

    @property
    def grpc_address(self) -> str:
        return f"{self.ip}:{self.grpc_port}"

    @property
    def http_address(self) -> str:
        return f"http://{self.ip}:{self.http_port}"


def register_agent(kv: AgentKV, address: AgentAddress) -> None:
    kv.internal_kv_put(
        f"{NODE_ID_PREFIX}{address.node_id}".encode(),
        json.dumps([address.ip, address.http_port, address.grpc_port]).encode(),
        True,
        AGENT_KV_NAMESPACE,
    )
    kv.internal_kv_put(
        f"{IP_PREFIX}{address.ip}".encode(),
        json.dumps([address.node_id, address.http_port, address.grpc_port]).encode(),
        True,
        AGENT_KV_NAMESPACE,
    )


def unregister_agent(kv: AgentKV, address: AgentAddress) -> None:
    kv.internal_kv_del(f"{NODE_ID_PREFIX}{address.node_id}".encode(), False, AGENT_KV_NAMESPACE)
    raw = kv.internal_kv_get(f"{IP_PREFIX}{address.ip}".encode(), AGENT_KV_NAMESPACE)
    if raw is not None and json.loads(raw)[0] == address.node_id:
        kv.internal_kv_del(f"{IP_PREFIX}{address.ip}".encode(), False, AGENT_KV_NAMESPACE)


def agent_by_node_id(kv: AgentKV, node_id: str) -> AgentAddress | None:
    raw = kv.internal_kv_get(f"{NODE_ID_PREFIX}{node_id}".encode(), AGENT_KV_NAMESPACE)
    if raw is None:
        return None
    ip, http_port, grpc_port = json.loads(raw)
    return AgentAddress(node_id, ip, int(http_port), int(grpc_port))


def agent_by_ip(kv: AgentKV, ip: str) -> AgentAddress | None:
    raw = kv.internal_kv_get(f"{IP_PREFIX}{ip}".encode(), AGENT_KV_NAMESPACE)
    if raw is None:
        return None
    node_id, http_port, grpc_port = json.loads(raw)
    return AgentAddress(node_id, ip, int(http_port), int(grpc_port))
