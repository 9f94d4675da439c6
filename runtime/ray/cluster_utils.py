"""`ray.cluster_utils.Cluster`: several nodes (one GCS, many raylets) on this machine, for tests;
`ray.cluster_utils.AutoscalingCluster`: a head whose autoscaler adds and removes nodes on this machine
(the `fake_multinode` provider), as Ray's."""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time

from ray._common.gcs_client import GcsClient
from ray._common.net import port_is_free
from ray._private.node import Node, NodeParams

# Ray's python/ray/autoscaler/_private/fake_multi_node/example.yaml, which AutoscalingCluster starts from.
FAKE_MULTINODE_BASE_CONFIG = {
    "cluster_name": "fake_multinode",
    "max_workers": 8,
    "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                 "disable_launch_config_check": True},
    "available_node_types": {
        "ray.head.default": {"resources": {"CPU": 8, "GPU": 0}, "node_config": {}, "max_workers": 0},
        "ray.worker.cpu": {"resources": {"CPU": 1, "object_store_memory": 1000000000}, "node_config": {},
                           "min_workers": 2, "max_workers": 4},
        "ray.worker.gpu": {"resources": {"CPU": 4, "GPU": 1, "object_store_memory": 1000000000}, "node_config": {},
                           "min_workers": 0, "max_workers": 2},
    },
    "head_node_type": "ray.head.default",
    "auth": {},
    "upscaling_speed": 1.0,
    "idle_timeout_minutes": 0.1,
    "docker": {},
    "initialization_commands": [],
    "setup_commands": [],
    "head_setup_commands": [],
    "worker_setup_commands": [],
    "head_start_ray_commands": [],
    "worker_start_ray_commands": [],
    "file_mounts": {},
    "cluster_synced_files": [],
    "file_mounts_sync_continuously": False,
    "rsync_exclude": [],
    "rsync_filter": [],
}


class AutoscalingCluster:
    """A local autoscaling cluster for testing, as Ray's: `start()`, then `ray.init("auto")`, then `shutdown()`.

    The head runs the autoscaler (every second) with the `fake_multinode` provider: worker nodes of
    `worker_node_types` are raylets started on this machine. Unlike Ray's, `start()` and `shutdown()` do not run
    `ray stop --force`: they start and stop this cluster's processes only.
    """

    def __init__(self, head_resources: dict, worker_node_types: dict, autoscaler_v2: bool = False,
                 **config_kwargs) -> None:
        self._head_resources = dict(head_resources)
        self._config = self._generate_config(head_resources, worker_node_types, autoscaler_v2, **config_kwargs)
        self._autoscaler_v2 = autoscaler_v2
        self._node: Node | None = None
        self._config_path: str | None = None

    def _generate_config(self, head_resources, worker_node_types, autoscaler_v2=False, **config_kwargs) -> dict:
        config = copy.deepcopy(FAKE_MULTINODE_BASE_CONFIG)
        config["available_node_types"] = copy.deepcopy(worker_node_types)
        config["available_node_types"]["ray.head.default"] = {"resources": head_resources, "node_config": {},
                                                              "max_workers": 0}
        if autoscaler_v2:
            from ray.autoscaler._private.constants import FAKE_HEAD_NODE_ID

            config["provider"]["launch_multiple"] = True
            config["provider"]["head_node_id"] = FAKE_HEAD_NODE_ID
        config.update(config_kwargs)
        return config

    @property
    def address(self) -> str:
        if self._node is None:
            raise RuntimeError("The cluster is not started; call start() first.")
        return self._node.gcs_address

    def start(self, _system_config: dict | None = None, override_env: dict | None = None) -> None:
        """Start the head and its autoscaler; `ray.init("auto")` connects to it afterwards."""
        fd, self._config_path = tempfile.mkstemp(prefix="autoscaling-config-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self._config))
        resources = dict(self._head_resources)
        from ray.autoscaler._private.config import head_node_env

        env = {"AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1", **head_node_env(self._config_path)}
        env.update({str(k): str(v) for k, v in (override_env or {}).items()})
        osm = resources.pop("object_store_memory", None)
        params = NodeParams(
            head=True, port=6379 if port_is_free("127.0.0.1", 6379) and port_is_free("0.0.0.0", 6379) else 0,
            node_ip_address="127.0.0.1", num_cpus=resources.pop("CPU", None), num_gpus=resources.pop("GPU", None),
            object_store_memory=int(osm) if osm else None, resources=resources,
            system_config=dict(_system_config or {}), autoscaling_config=self._config_path, env=env)
        self._node = Node(params)
        self._node.start()

    def shutdown(self) -> None:
        """Stop the autoscaler (and the nodes it started), then the head."""
        from ray._common import process_registry

        if self._node is not None:
            self._node.kill_all()
            if self._node.params.head:
                cluster_file = process_registry.current_cluster_file(self._node.temp_dir)
                try:
                    if cluster_file.read_text().strip() == self._node.gcs_address:
                        cluster_file.unlink()
                except OSError:
                    pass
            self._node = None
        if self._config_path:
            try:
                os.unlink(self._config_path)
            except OSError:
                pass
            self._config_path = None


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
