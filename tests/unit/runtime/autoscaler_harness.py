"""The autoscaler's loop against an in-process GCS (gcs_snapshot) and an in-memory provider, with a clock the
test moves: no processes. Nodes "start Ray" when the test says so (`Harness.boot`), as a raylet registering
with the instance id its launcher gave it."""

from __future__ import annotations

import copy
import itertools

from gcs_snapshot import Gcs
from ray._common.cluster_status import DEBUG_AUTOSCALING_ERROR
from ray.autoscaler._private.autoscaler import Autoscaler
from ray.autoscaler._private.providers import CloudInstance, LaunchError, NodeProvider
from ray.protocol import autoscaler_pb2 as apb
from ray.protocol import gcs_pb2 as pb

HEAD_ID = b"\x00" * 28


class FakeGcsClient:
    """What the autoscaler calls on a `GcsClient`, answered by the in-process GCS. Drains are accepted unless the
    node is in `busy` (its raylet refuses an idle-termination drain)."""

    def __init__(self, gcs: Gcs) -> None:
        self.gcs = gcs
        self.kv: dict[bytes, bytes] = {}
        self.drains: list[tuple[bytes, int]] = []
        self.busy: set[bytes] = set()
        self.reports: list[apb.AutoscalingState] = []

    def get_cluster_resource_state(self, timeout_s=None) -> apb.ClusterResourceState:
        return self.gcs.resource_state()

    def report_autoscaling_state(self, state, timeout_s=None) -> None:
        self.reports.append(state)
        self.gcs.report_autoscaling(state)

    def drain_node(self, node_id, reason, reason_message="", deadline_ms=0, timeout_s=None):
        self.drains.append((node_id, reason))
        if reason == apb.DRAIN_NODE_REASON_IDLE_TERMINATION and node_id in self.busy:
            return apb.DrainNodeReply(is_accepted=False, rejection_reason_message="The node is not idle")
        self.gcs.nodes.set_draining(node_id)
        return apb.DrainNodeReply(is_accepted=True)

    def internal_kv_put(self, key, value, overwrite=True, namespace=None):
        self.kv[key] = value

    def internal_kv_del(self, key, del_by_prefix=False, namespace=None):
        self.kv.pop(key, None)

    @property
    def error(self) -> str:
        return self.kv.get(DEBUG_AUTOSCALING_ERROR, b"").decode()


class FakeProvider(NodeProvider):
    def __init__(self, head_type: str = "head") -> None:
        self.instances: dict[str, CloudInstance] = {"head-0": CloudInstance("head-0", head_type, is_head=True)}
        self.launched: list[tuple[str, int]] = []
        self.terminated: list[str] = []
        self.fail_launch: str = ""  # raise LaunchError with this reason
        self.errors: list[LaunchError] = []
        self._ids = itertools.count(1)

    def non_terminated(self):
        return {k: copy.copy(v) for k, v in self.instances.items()}

    def launch(self, node_type, count):
        if self.fail_launch:
            raise LaunchError(node_type, count, self.fail_launch)
        self.launched.append((node_type, count))
        for _ in range(count):
            iid = f"{node_type}-{next(self._ids)}"
            self.instances[iid] = CloudInstance(iid, node_type, running=False, details="starting ray")

    def terminate(self, instance_ids):
        for iid in instance_ids:
            self.instances.pop(iid, None)
            self.terminated.append(iid)

    def poll_errors(self):
        errors, self.errors = self.errors, []
        return errors


class Harness:
    def __init__(self, config: dict, head_resources: dict | None = None) -> None:
        self.raw = copy.deepcopy(config)
        self.gcs = Gcs()
        self.client = FakeGcsClient(self.gcs)
        self.provider = FakeProvider(config["head_node_type"])
        self.now = 1000.0
        self.node_ids: dict[str, bytes] = {}  # instance id -> Ray node id
        self._ids = itertools.count(1)
        head = head_resources if head_resources is not None else {"CPU": 0.0}
        self.gcs.add_node(HEAD_ID, head, head=True, node_type=config["head_node_type"], instance_id="head-0")
        self.gcs.report(HEAD_ID, head, idle_ms=1)
        self.autoscaler = Autoscaler(self.client, lambda: copy.deepcopy(self.raw), lambda cfg: self.provider,
                                     clock=lambda: self.now)

    # ------------------------------------------------------------------ driving
    def round(self, seconds: float = 5.0):
        self.now += seconds
        return self.autoscaler.update()

    def pending(self) -> list[str]:
        return [i for i, inst in self.provider.instances.items() if not inst.is_head and i not in self.node_ids]

    def boot(self, instance_id: str | None = None) -> list[bytes]:
        """Ray starts on the launched instances (all, or one): they register and report idle."""
        ids = [instance_id] if instance_id else self.pending()
        out = []
        for iid in ids:
            inst = self.provider.instances[iid]
            node_id = next(self._ids).to_bytes(28, "big")
            total = dict(self.autoscaler.config.node_types[inst.node_type].resources)
            self.gcs.add_node(node_id, total, node_type=inst.node_type, instance_id=iid)
            self.gcs.report(node_id, total, idle_ms=1)
            inst.running = True
            self.node_ids[iid] = node_id
            out.append(node_id)
        return out

    def report(self, instance_id: str, available: dict | None = None, idle_ms: int = 0, demands=()) -> None:
        node_id = self.node_ids[instance_id] if instance_id != "head-0" else HEAD_ID
        info = self.gcs.nodes.node(node_id)
        total = dict(info.resources_total)
        self.gcs.report(node_id, total, total if available is None else available, demands=demands, idle_ms=idle_ms)

    def demand(self, shape: dict, count: int, infeasible: bool = False) -> None:
        """`count` tasks of `shape` queued at the head's raylet."""
        head = self.gcs.nodes.node(HEAD_ID)
        total = dict(head.resources_total)
        d = pb.ResourceDemand(shape=shape, **({"num_infeasible_requests_queued": count} if infeasible
                                              else {"num_ready_requests_queued": count}))
        self.gcs.report(HEAD_ID, total, demands=[d] if count else [], idle_ms=0 if count else 1)

    def workers(self, node_type: str | None = None) -> list[str]:
        return [i for i, inst in self.provider.instances.items()
                if not inst.is_head and (node_type is None or inst.node_type == node_type)]
