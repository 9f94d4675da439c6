"""Ray's `fake_multinode` provider: each worker "node" is a raylet (and its node agent) started on this machine
by the autoscaler, as Ray's own testing provider does; `ray.cluster_utils.AutoscalingCluster` uses it.

A node starts in a thread (the autoscaler's loop does not wait for it) with the node type's resources (`CPU`,
`GPU`, `memory`, `object_store_memory` and custom ones) and labels, and `RAY_CLOUD_INSTANCE_ID` /
`RAY_NODE_TYPE_NAME` so the GCS knows which instance and type it is. Instance ids are Ray's
(`fff…f00001`, counting up; the head is `fff…f00000`). `node_config.env` adds environment variables to a
type's nodes. A node whose start-up fails is reported as a failed launch (`poll_errors`). Terminating stops a
node's processes gracefully (its raylet unregisters). Every process is recorded as `ray start`'s are, so
`ray stop` removes them too.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from ray._private.node import Node, NodeParams
from ray.autoscaler._private.constants import FAKE_HEAD_NODE_ID, FAKE_HEAD_NODE_TYPE  # noqa: F401 (Ray's names)
from ray.autoscaler._private.providers import CloudInstance, LaunchError, NodeProvider

logger = logging.getLogger(__name__)
_ID_BASE = "fffffffffffffffffffffffffffffffffffffffffffffffffff"


@dataclass
class _FakeNode:
    instance_id: str
    node_type: str
    node: object | None = None  # ray._private.node.Node once started
    started: bool = False
    terminating: bool = False
    thread: threading.Thread | None = None
    params: dict = field(default_factory=dict)


class FakeMultiNodeProvider(NodeProvider):
    def __init__(self, config, gcs_address: str, log_dir: str = "", temp_dir: str | None = None) -> None:
        provider = config.provider
        self.config = config
        self._gcs_address = provider.get("gcs_address") or gcs_address
        self._head_id = provider.get("head_node_id", FAKE_HEAD_NODE_ID)
        self._temp_dir = temp_dir
        self._lock = threading.RLock()
        self._nodes: dict[str, _FakeNode] = {}
        self._errors: list[LaunchError] = []
        self._next = 0
        self._closed = False

    def set_config(self, config) -> None:
        self.config = config

    def _next_id(self) -> str:
        self._next += 1
        return _ID_BASE + str(self._next).zfill(5)

    # ------------------------------------------------------------------ NodeProvider
    def non_terminated(self) -> dict[str, CloudInstance]:
        head_type = self.config.head_node_type
        out = {self._head_id: CloudInstance(self._head_id, head_type, is_head=True, ip=self._ip())}
        with self._lock:
            for n in self._nodes.values():
                out[n.instance_id] = CloudInstance(n.instance_id, n.node_type, running=n.started, ip=self._ip(),
                                                   details="" if n.started else "starting ray")
        return out

    def launch(self, node_type: str, count: int) -> None:
        type_config = self.config.node_types.get(node_type)
        if type_config is None:
            raise LaunchError(node_type, count, f"unknown node type {node_type!r}")
        for _ in range(count):
            with self._lock:
                node = _FakeNode(self._next_id(), node_type)
                self._nodes[node.instance_id] = node
            node.thread = threading.Thread(target=self._start, args=(node, type_config), daemon=True,
                                           name=f"fake-node-{node.instance_id[-5:]}")
            node.thread.start()

    def terminate(self, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            with self._lock:
                node = self._nodes.pop(instance_id, None)
                if node is None:
                    continue
                node.terminating = True
                started = node.started
            if started:
                threading.Thread(target=self._stop, args=(node,), daemon=True,
                                 name=f"stop-fake-node-{instance_id[-5:]}").start()
            # A node still starting is stopped by its start-up thread once it is up.

    def poll_errors(self) -> list[LaunchError]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def close(self) -> None:
        # As Ray's: the nodes stay (they belong to the cluster; `ray stop` removes them).
        self._closed = True

    # ------------------------------------------------------------------ nodes
    def _ip(self) -> str:
        return self._gcs_address.rsplit(":", 1)[0]

    def _start(self, fake: _FakeNode, type_config) -> None:
        resources = dict(type_config.resources)
        num_cpus = resources.pop("CPU", 0)
        num_gpus = resources.pop("GPU", 0)
        osm = resources.pop("object_store_memory", None)
        memory = resources.pop("memory", None)
        env = {str(k): str(v) for k, v in (type_config.node_config.get("env") or {}).items()}
        env.update({"RAY_CLOUD_INSTANCE_ID": fake.instance_id, "RAY_NODE_TYPE_NAME": fake.node_type})
        params = NodeParams(
            head=False, gcs_address=self._gcs_address, node_ip_address=self._ip(), num_cpus=num_cpus,
            num_gpus=num_gpus, memory=int(memory) if memory else None, object_store_memory=int(osm) if osm else None,
            resources=resources, labels=dict(type_config.labels), temp_dir=self._temp_dir, include_dashboard=False,
            env=env)
        node = Node(params)
        try:
            node.start()
        except Exception as e:  # noqa: BLE001 - any start-up failure is a failed launch
            reason = str(e).strip() or type(e).__name__
            logger.warning("Fake node %s (%s) failed to start: %s", fake.instance_id, fake.node_type, reason)
            with self._lock:
                if self._nodes.pop(fake.instance_id, None) is not None:
                    self._errors.append(LaunchError(fake.node_type, 1, reason, [fake.instance_id]))
            return
        with self._lock:
            fake.node = node
            fake.started = True
            stop_now = fake.terminating
        logger.info("Fake node %s (%s) started: node id %s, session %s.", fake.instance_id, fake.node_type,
                    node.node_id, node.session_dir)
        if stop_now:
            self._stop(fake)

    def _stop(self, fake: _FakeNode) -> None:
        node = fake.node
        if node is None:
            return
        try:
            node.kill_all()
        except Exception as e:  # noqa: BLE001 - logged; `ray stop` still finds what is left
            logger.warning("Stopping fake node %s failed: %s", fake.instance_id, e)
        else:
            logger.info("Fake node %s (%s) stopped.", fake.instance_id, fake.node_type)
