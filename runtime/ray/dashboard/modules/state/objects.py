"""The state API's objects: each alive node's raylet asked (framed protocol, the cluster's token) for the refs
its drivers and workers hold, and its store's usage."""

from __future__ import annotations

import asyncio
from typing import Any

from ray._common import framing
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg


class ObjectsSource:
    def __init__(self, gcs: Any):
        self._gcs = gcs
        self._dispatch = msg.Dispatcher(msg.DASHBOARD)
        self.last_store_stats: dict[str, dict] = {}

    async def _alive_raylets(self) -> list[tuple[str, str]]:
        nodes = await asyncio.to_thread(self._gcs.get_all_node_info_proto)
        return [(n.node_id.hex(), f"{n.node_manager_address}:{n.raylet_tcp_port}")
                for n in nodes if n.state == pb.GcsNodeInfo.ALIVE and n.raylet_tcp_port]

    async def node_reports(self, timeout: float) -> tuple[dict[str, dict], list[str]]:
        """{node id: the raylet's reply}, and warnings for nodes (or workers) that did not answer."""
        raylets = await self._alive_raylets()

        async def ask(address: str) -> dict:
            conn = await asyncio.wait_for(framing.connect(address, self._dispatch), timeout)
            try:
                return await asyncio.wait_for(conn.request(msg.LIST_OBJECTS, {"timeout": timeout * 0.8}), timeout)
            finally:
                conn.close()

        answers = await asyncio.gather(*(ask(address) for _, address in raylets), return_exceptions=True)
        reports, warnings = {}, []
        for (node_id, address), answer in zip(raylets, answers, strict=True):
            if isinstance(answer, BaseException):
                warnings.append(f"The raylet of node {node_id} ({address}) did not answer: {answer!r}")
                continue
            reports[node_id] = answer
            if answer.get("failed"):
                warnings.append(f"{answer['failed']} workers of node {node_id} did not report their objects.")
        return reports, warnings

    async def rows(self, timeout: float) -> tuple[list[dict], list[str]]:
        reports, warnings = await self.node_reports(timeout)
        self.last_store_stats = {node_id: r.get("store", {}) for node_id, r in reports.items()}
        return [row for r in reports.values() for row in r.get("objects", [])], warnings
