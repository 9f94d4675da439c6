"""`ray.cluster_utils.Cluster`: several nodes (one GCS, many raylets) on this machine, for tests."""

from __future__ import annotations

import time

from ray._common.gcs_client import GcsClient
from ray._private.node import Node, NodeParams


class Cluster:
    def __init__(self, initialize_head: bool = False, connect: bool = False, head_node_args: dict | None = None,
                 shutdown_at_exit: bool = True):
        self.head_node: Node | None = None
        self.worker_nodes: set[Node] = set()
        self._system_config: dict = {}
        self._temp_dir: str | None = None
        self.connected = False
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()
        elif connect:
            raise RuntimeError("Cannot connect to a cluster without a head node; pass initialize_head=True.")

    @property
    def address(self) -> str:
        if self.head_node is None:
            raise RuntimeError("The cluster has no head node yet; call add_node() first.")
        return self.head_node.gcs_address

    @property
    def gcs_address(self) -> str:
        return self.address

    def add_node(self, wait: bool = True, **node_args) -> Node:
        """Start a node: the first one is the head (GCS + raylet), later ones are raylets joining it."""
        head = self.head_node is None
        if head:
            self._system_config = node_args.pop("_system_config", None) or {}
            self._temp_dir = node_args.pop("_temp_dir", None)
        else:
            node_args.pop("_system_config", None)
            node_args.pop("_temp_dir", None)
        redis = {k: node_args.pop(k, "") or "" for k in ("redis_address", "redis_password")} if head else {}
        params = NodeParams(
            **redis, head=head, gcs_address=None if head else self.address, port=0,
            node_ip_address=node_args.pop("node_ip_address", "127.0.0.1"),
            num_cpus=node_args.pop("num_cpus", 1), num_gpus=node_args.pop("num_gpus", None),
            memory=node_args.pop("memory", None), object_store_memory=node_args.pop("object_store_memory", None),
            resources=node_args.pop("resources", None) or {}, labels=node_args.pop("labels", None) or {},
            temp_dir=self._temp_dir, include_dashboard=node_args.pop("include_dashboard", False),
            system_config=self._system_config, owned_by_driver=True,
            metrics_export_port=node_args.pop("metrics_export_port", None),
        )
        node = Node(params)
        node.start()
        if head:
            self.head_node = node
        else:
            self.worker_nodes.add(node)
        if wait:
            self._wait_for_node(node)
        return node

    def _alive_node_ids(self) -> set[str]:
        client = GcsClient(self.address)
        try:
            return {n["NodeID"] for n in client.get_all_node_info() if n["Alive"]}
        finally:
            client.close()

    def _wait_for_node(self, node: Node, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.node_id in self._alive_node_ids():
                return
            time.sleep(0.05)
        raise TimeoutError(f"Node {node.node_id} did not register with the GCS in {timeout} s.")

    def remove_node(self, node: Node, allow_graceful: bool = True) -> None:
        """Stop a node's processes: gracefully (it unregisters) or by SIGKILL (health checks notice)."""
        node.kill_all(force=not allow_graceful)
        if node is self.head_node:
            self.head_node = None
        self.worker_nodes.discard(node)

    def list_all_nodes(self) -> list[Node]:
        return ([self.head_node] if self.head_node else []) + list(self.worker_nodes)

    def wait_for_nodes(self, timeout: float = 30) -> None:
        expected = {n.node_id for n in self.list_all_nodes()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = self._alive_node_ids()
            if alive == expected:
                return
            time.sleep(0.1)
        raise TimeoutError(f"Timed out waiting for nodes: expected {len(expected)} alive, got {len(alive)}.")

    def connect(self, namespace: str | None = None, **init_args):
        import ray

        ctx = ray.init(address=self.address, namespace=namespace, **init_args)
        self.connected = True
        return ctx

    def shutdown(self) -> None:
        import ray

        if self.connected:
            ray.shutdown()
            self.connected = False
        for node in list(self.worker_nodes):
            self.remove_node(node)
        if self.head_node is not None:
            self.remove_node(self.head_node)
