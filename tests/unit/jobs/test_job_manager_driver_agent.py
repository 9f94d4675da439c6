"""The job manager reaches a remote job's supervisor through its node's agent. Right after a new head took the
cluster over, that agent registers again within seconds: a live node's agent is waited for, a dead node's is not
(a job's logs read then answered 500, "... is not registered", in a CI run of the head-takeover test)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from ray.dashboard.modules.job.job_manager import ClusterView, JobManager


def _manager(alive: bool, registers_after: int | None) -> tuple[JobManager, list[str]]:
    lookups: list[str] = []

    def agent_for_node(node_id: str):
        lookups.append(node_id)
        return "the agent" if registers_after is not None and len(lookups) > registers_after else None

    view = ClusterView(nodes=lambda: [{"NodeID": "node-1", "Alive": alive}], agent_for_node=agent_for_node,
                       local_agent=lambda: None)
    return JobManager(None, None, view), lookups  # type: ignore[arg-type]


def test_a_live_nodes_agent_that_registers_late_is_waited_for():
    manager, lookups = _manager(alive=True, registers_after=2)
    assert asyncio.run(manager._driver_agent(SimpleNamespace(driver_node_id="node-1"))) == "the agent"
    assert lookups == ["node-1"] * 3


def test_a_dead_nodes_missing_agent_fails_at_once():
    manager, lookups = _manager(alive=False, registers_after=None)
    with pytest.raises(RuntimeError, match="The agent of node node-1, which runs this job, is not registered"):
        asyncio.run(manager._driver_agent(SimpleNamespace(driver_node_id="node-1")))
    assert lookups == ["node-1"]
