"""The scheduler's view of the cluster's resources: this node's as they are now, the others' as the GCS last reported.

The node manager's report loop keeps it current: every resource report's reply carries each node's totals
and availability. A node new to the view has no raylet address yet (the report does not carry it); it is
read from the GCS node table (`fill_addresses`), and until then nothing is spilled back to that node.
"""

from __future__ import annotations

from ray._common.resources import ResourceSet
from ray.raylet.scheduling.local_resources import LocalResourceManager
from ray.raylet.scheduling.policy import NodeView


class ClusterResourceView:
    def __init__(self, local_node_id: str, local: LocalResourceManager) -> None:
        self.local_node_id = local_node_id
        self.local_address = ""  # this raylet's framed TCP address, once it listens
        self._local = local
        self._nodes: dict[str, NodeView] = {local_node_id: self._local_view()}

    def nodes(self) -> list[NodeView]:
        """Every node known, this one with its resources as they are at this moment."""
        self._nodes[self.local_node_id] = self._local_view()
        return list(self._nodes.values())

    def node(self, node_id: str) -> NodeView:
        return self._nodes[node_id]

    def update(self, reported) -> bool:
        """Takes the other nodes' resources from a GCS report (`NodeResources` messages); nodes missing from
        it are gone. True when some node's raylet address is still unknown (call `fill_addresses`)."""
        view: dict[str, NodeView] = {}
        for n in reported:
            node_id = n.node_id.hex()
            if node_id == self.local_node_id:
                continue
            known = self._nodes.get(node_id)
            view[node_id] = NodeView(node_id, ResourceSet(dict(n.resources_total)),
                                     ResourceSet(dict(n.resources_available)), known.address if known else "")
        missing = any(not v.address for v in view.values())
        view[self.local_node_id] = self._local_view()
        self._nodes = view
        return missing

    def fill_addresses(self, node_infos) -> None:
        """Raylet addresses of the nodes that lack one, from the GCS node table (`GcsNodeInfo` messages)."""
        for info in node_infos:
            v = self._nodes.get(info.node_id.hex())
            if v is not None and not v.address:
                v.address = f"{info.node_manager_address}:{info.raylet_tcp_port}"

    def _local_view(self) -> NodeView:
        return NodeView(self.local_node_id, self._local.total, self._local.available, self.local_address)
