"""Node providers: how the autoscaler launches and terminates nodes. One interface (`NodeProvider`), three
kinds: `fake_multinode` (raylet processes on this machine), `kuberay` (a RayCluster's worker groups) and
`local` (a fixed list of hosts)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CloudInstance:
    """A machine, pod or process the provider runs (Ray may not have started on it yet)."""

    instance_id: str
    node_type: str
    is_head: bool = False
    running: bool = True  # the instance itself is up (a pod Running, a process alive)
    ip: str = ""
    details: str = ""  # what it is waiting for, shown in `ray status` while Ray has not started
    # Set when the instance can never run Ray (a pod whose image cannot be pulled): the autoscaler reports it
    # as a failed launch and terminates it.
    failed: str = ""
    # Set while the instance cannot even be placed (a pod Unschedulable): it counts against max_workers, but no
    # demand is planned onto it (another node type may take that demand meanwhile).
    stuck: bool = False


class LaunchError(Exception):
    """Launching `count` nodes of `node_type` failed; `reason` says why (shown in `ray status -v`)."""

    def __init__(self, node_type: str, count: int, reason: str, instance_ids: list[str] = ()) -> None:
        super().__init__(f"Failed to launch {count} node(s) of type {node_type}: {reason}")
        self.node_type = node_type
        self.count = count
        self.reason = reason
        self.instance_ids = list(instance_ids)  # the instances that failed, when the provider had named them


class NodeProvider:
    # Ray nodes are matched to instances by the instance id they registered with (RAY_CLOUD_INSTANCE_ID);
    # providers whose nodes cannot say it (hosts started by hand) match by IP instead.
    match_by_ip = False
    launches = True  # False: the provider never adds nodes (readonly)

    def non_terminated(self) -> dict[str, CloudInstance]:
        """Every instance that exists and is not being terminated, the head's included."""
        raise NotImplementedError

    def launch(self, node_type: str, count: int) -> None:
        """Start `count` nodes of `node_type` (they show up in `non_terminated` now or later); LaunchError."""
        raise NotImplementedError

    def terminate(self, instance_ids: list[str]) -> None:
        """Remove these instances (already drained)."""
        raise NotImplementedError

    def cancel_launches(self, node_type: str, count: int) -> None:
        """Launches that never showed up (given up on): take them back, if the provider still holds them."""

    def poll_errors(self) -> list[LaunchError]:
        """Launches that failed after `launch` returned (a node's start-up that died)."""
        return []

    def pending_launches(self) -> dict[str, int] | None:
        """Launches accepted but not visible as instances yet, by node type, when the provider itself knows
        them (KubeRay: `replicas` above the group's pods); None: the autoscaler counts its own requests."""
        return None

    def set_config(self, config) -> None:
        """The config read this round (node types may have changed)."""

    def observe_ray_nodes(self, nodes: list[tuple[str, str]]) -> None:
        """The live worker nodes' (IP, node type) this round, before `non_terminated`: a provider whose machines
        someone else may start Ray on (`ray up` with the local provider) adopts them instead of launching there."""

    def close(self) -> None:
        pass


def make_provider(config, gcs_address: str, temp_dir: str | None = None) -> NodeProvider:
    kind = config.provider["type"]
    if kind == "fake_multinode":
        from ray.autoscaler._private.providers.fake_multinode import FakeMultiNodeProvider

        return FakeMultiNodeProvider(config, gcs_address, temp_dir=temp_dir)
    if kind == "local":
        from ray.autoscaler._private.providers.local import LocalNodeProvider

        return LocalNodeProvider(config, gcs_address)
    if kind == "kuberay":
        from ray.autoscaler._private.providers.kuberay import KubeRayNodeProvider

        return KubeRayNodeProvider(config.provider["namespace"], config.cluster_name)
    if kind == "readonly":
        from ray.autoscaler._private.providers.readonly import ReadOnlyNodeProvider

        return ReadOnlyNodeProvider()
    raise ValueError(f"unknown provider type {kind!r}")
