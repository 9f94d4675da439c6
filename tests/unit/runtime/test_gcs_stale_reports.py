"""A raylet's resource report made before it handled a bundle message the GCS sent it does not overwrite
the GCS's view (which counts the change already); a message that never arrives does not freeze it."""

from __future__ import annotations

import asyncio

from ray.gcs import node_manager as nm
from ray.gcs.pubsub import Publisher
from ray.gcs.storage import InMemoryStoreClient
from ray.protocol import gcs_pb2 as pb

NODE = b"\x01" * 28


def _report(cpus: float, handled: int) -> pb.ReportResourceUsageRequest:
    return pb.ReportResourceUsageRequest(node_id=NODE, resources_available={"CPU": cpus},
                                         resources_total={"CPU": 4.0}, bundle_messages_handled=handled)


def test_reports_older_than_a_bundle_message_keep_the_view_until_the_raylet_catches_up(monkeypatch):
    async def scenario() -> None:
        nodes = nm.NodeManager(InMemoryStoreClient(), Publisher(), b"c" * 28, "2.60.0")
        info = pb.GcsNodeInfo(node_id=NODE, node_manager_address="127.0.0.1", resources_total={"CPU": 4.0})
        await nodes.RegisterNode(pb.RegisterNodeRequest(node_info=info), None)
        await nodes.ReportResourceUsage(_report(1.0, 0), None)  # a group holds 3 CPUs

        nodes.bundle_message_sent(NODE)  # the group is removed: the GCS counts the CPUs free at once
        nodes.usage()[NODE].resources_available["CPU"] = 4.0
        await nodes.ReportResourceUsage(_report(1.0, 0), None)  # made before the raylet got the cancel
        assert nodes.usage()[NODE].resources_available["CPU"] == 4.0
        await nodes.ReportResourceUsage(_report(4.0, 1), None)  # made after
        assert nodes.usage()[NODE].resources_available["CPU"] == 4.0
        await nodes.ReportResourceUsage(_report(2.0, 1), None)  # the raylet's word again
        assert nodes.usage()[NODE].resources_available["CPU"] == 2.0

        # A message lost on the way: after the grace period the reports are taken as they are.
        monkeypatch.setattr(nm, "STALE_REPORTS_TRUSTED_AFTER_S", 0.0)
        nodes.bundle_message_sent(NODE)
        await nodes.ReportResourceUsage(_report(3.0, 1), None)
        assert nodes.usage()[NODE].resources_available["CPU"] == 3.0

    asyncio.run(scenario())
