"""A GCS restarted from its store keeps a node it restored alive while that node's raylet answers, however long
the raylet takes to report in (a raylet looking for a head pod that moved may take minutes); once the raylet
stops answering, or another raylet answers at its address (a new head pod's), the node is declared dead as usual."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from ray._common import framing
from ray._common.config import config
from ray.gcs import node_manager as nm
from ray.gcs.pubsub import Publisher
from ray.gcs.storage import InMemoryStoreClient
from ray.protocol import gcs_pb2 as pb
from ray.protocol import messages as msg

NODE = b"\x02" * 28
MOVED = b"\x03" * 28  # its address now answered by another node's raylet


def _raylet(node_id: bytes):
    return lambda conn, kind, body: {"node_id": node_id.hex()} if kind == msg.GET_NODE_STATS else None


def test_a_restored_node_stays_alive_while_its_raylet_answers_and_dies_when_it_stops(monkeypatch):
    # Reconnect timeout 1 s, a node dead after 0.3 s without news.
    fast = dataclasses.replace(config(), health_check_period_ms=100, health_check_failure_threshold=3,
                               gcs_rpc_server_reconnect_timeout_s=1)
    monkeypatch.setattr(nm, "config", lambda: fast)
    # Auth on, as everywhere, with a token of its own: not whatever ~/.ray/auth_token an earlier run left.
    monkeypatch.setenv("RAY_AUTH_TOKEN", "restored-nodes-test-token")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)

    async def scenario() -> None:
        raylet, port = await framing.serve(_raylet(NODE), host="127.0.0.1")
        other, other_port = await framing.serve(_raylet(b"\x04" * 28), host="127.0.0.1")
        store = InMemoryStoreClient()
        for node_id, at in ((NODE, port), (MOVED, other_port)):
            info = pb.GcsNodeInfo(node_id=node_id, node_manager_address="127.0.0.1", raylet_tcp_port=at,
                                  state=pb.GcsNodeInfo.ALIVE)
            await store.put(nm.NODE_TABLE, node_id, info.SerializeToString())
        nodes = nm.NodeManager(store, Publisher(), b"c" * 28, "2.60.0")
        await nodes.load()
        tasks = [asyncio.create_task(nodes.run_health_checks()), asyncio.create_task(nodes.keep_restored_nodes_alive())]
        try:
            await asyncio.sleep(2.5)  # well past the reconnect timeout: the raylet still answers
            assert nodes.node(NODE).state == pb.GcsNodeInfo.ALIVE
            assert nodes.node(MOVED).state == pb.GcsNodeInfo.DEAD
            raylet.close()
            await raylet.wait_closed()
            deadline = time.monotonic() + 5
            while nodes.node(NODE).state == pb.GcsNodeInfo.ALIVE and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert nodes.node(NODE).state == pb.GcsNodeInfo.DEAD
            assert nodes.node(NODE).death_reason == "health check failed due to missing too many heartbeats"  # Ray's words
        finally:
            for task in tasks:
                task.cancel()
            other.close()

    asyncio.run(scenario())
