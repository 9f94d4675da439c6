"""Ray's `readonly` provider: the autoscaler watches and reports (`ray status`) but never adds or removes a
node (a cluster whose nodes someone else manages)."""

from __future__ import annotations

from ray.autoscaler._private.providers import CloudInstance, LaunchError, NodeProvider


class ReadOnlyNodeProvider(NodeProvider):
    launches = False

    def non_terminated(self) -> dict[str, CloudInstance]:
        return {}

    def launch(self, node_type: str, count: int) -> None:
        raise LaunchError(node_type, count, "the readonly provider does not launch nodes")

    def terminate(self, instance_ids: list[str]) -> None:
        pass
