"""The scheduler's view of the cluster's resources: this node's as they are now, the others' as the GCS last reported.

The node manager's report loop keeps it current: every resource report's reply carries each alive node's
totals and availability; a node missing from it has died. A node new to the view has no raylet address yet
(the report does not carry it); it is read from the GCS node table (`fill_addresses`), and until then nothing
is spilled back to that node. The node table also says which nodes the GCS knows and which of them are dead,
so that hard node affinity to a node this raylet has not heard of waits for one look at the table before the
request is cancelled (a node that has just joined is not in the last report yet). Draining nodes (this one
included) stay in the view but count as not alive: no policy places new work on them.
"""

from __future__ import annotations

import time

from ray._common.resources import ResourceSet
from ray.protocol import gcs_pb2 as pb
from ray.raylet.scheduling.local_resources import LocalResourceManager
from ray.raylet.scheduling.policy import NodeView

ALIVE, DEAD = "ALIVE", "DEAD"


class ClusterResourceView:
    def __init__(self, local_node_id: str, local: LocalResourceManager) -> None:
        self.local_node_id = local_node_id
        self.local_address = ""  # this raylet's framed TCP address, once it listens
        self._local = local
        self.local_draining = False  # this node accepted a drain: the policies skip it, as a draining other
        self._nodes: dict[str, NodeView] = {local_node_id: self._local_view()}
        self._node_states: dict[str, str] = {local_node_id: ALIVE}  # node id -> ALIVE/DEAD, as last learned
        self.table_read_at = -1.0  # when (time.monotonic()) the newest node table read applied here began

    def nodes(self) -> list[NodeView]:
        """Every node known, this one with its resources as they are at this moment."""
        self._nodes[self.local_node_id] = self._local_view()
        return list(self._nodes.values())

    def node(self, node_id: str) -> NodeView:
        return self._nodes[node_id]

    def has_node(self, node_id: str) -> bool:
        return node_id in self._nodes

    def node_state(self, node_id: str) -> str | None:
        """ALIVE or DEAD as last learned from the reports and the GCS node table; None: never heard of."""
        return self._node_states.get(node_id)

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
                                     ResourceSet(dict(n.resources_available)), known.address if known else "",
                                     alive=not n.is_draining)
            self._node_states[node_id] = ALIVE
        for gone in self._nodes.keys() - view.keys() - {self.local_node_id}:
            self._node_states[gone] = DEAD
        missing = any(not v.address for v in view.values())
        view[self.local_node_id] = self._local_view()
        self._nodes = view
        return missing

    def fill_addresses(self, node_infos, read_started: float | None = None) -> None:
        """Raylet addresses of the nodes that lack one, and every node's state, from the GCS node table
        (`GcsNodeInfo` messages) as read from `read_started` on (time.monotonic(); default: now)."""
        for info in node_infos:
            node_id = info.node_id.hex()
            if node_id != self.local_node_id:
                self._node_states[node_id] = ALIVE if info.state == pb.GcsNodeInfo.ALIVE else DEAD
            v = self._nodes.get(node_id)
            if v is not None and not v.address:
                v.address = f"{info.node_manager_address}:{info.raylet_tcp_port}"
        self.table_read_at = max(self.table_read_at, time.monotonic() if read_started is None else read_started)

    def _local_view(self) -> NodeView:
        return NodeView(self.local_node_id, self._local.total, self._local.view_available(), self.local_address,
                        alive=not self.local_draining)
