"""How many worker pods each group wants, and the resources the whole cluster asks for."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import quantity


def desired_replicas(group: dict[str, Any]) -> int:
    """`replicas` clamped to [minReplicas, maxReplicas] (0 for a suspended group)."""
    if group.get("suspend"):
        return 0
    minimum = group.get("minReplicas") or 0
    maximum = group.get("maxReplicas")
    maximum = c.MAX_INT32 if maximum is None else maximum
    replicas = group.get("replicas")
    replicas = minimum if replicas is None else replicas
    return max(minimum, min(replicas, maximum))


def num_of_hosts(group: dict[str, Any]) -> int:
    return max(1, group.get("numOfHosts") or 1)


def desired_pods(group: dict[str, Any]) -> int:
    """Pods a worker group wants: clamped replicas × numOfHosts."""
    return desired_replicas(group) * num_of_hosts(group)


def worker_counts(spec: dict[str, Any]) -> dict[str, int]:
    """`desiredWorkerReplicas`, `minWorkerReplicas`, `maxWorkerReplicas` of the status."""
    desired = minimum = maximum = 0
    for group in spec.get("workerGroupSpecs") or []:
        hosts = num_of_hosts(group)
        desired += desired_pods(group)
        minimum += (group.get("minReplicas") or 0) * hosts
        group_max = group.get("maxReplicas")
        maximum += (c.MAX_INT32 if group_max is None else group_max) * hosts
    return {
        "desiredWorkerReplicas": desired,
        "minWorkerReplicas": minimum,
        "maxWorkerReplicas": min(maximum, c.MAX_INT32),
    }


def desired_resources(spec: dict[str, Any]) -> dict[str, str]:
    """`desiredCPU`, `desiredMemory`, `desiredGPU`, `desiredTPU`: head + every desired worker pod."""
    sums = {"cpu": Decimal(0), "memory": Decimal(0), "gpu": Decimal(0), "tpu": Decimal(0)}
    binary = {"cpu": False, "memory": False, "gpu": False, "tpu": False}
    pods = [(spec["headGroupSpec"], 1)] + [(g, desired_pods(g)) for g in spec.get("workerGroupSpecs") or []]
    for group, count in pods:
        pod_spec = (group.get("template") or {}).get("spec") or {}
        for container in pod_spec.get("containers") or []:
            resources = container.get("resources") or {}
            merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
            for key, value in merged.items():
                bucket = _bucket(key)
                if bucket:
                    if sums[bucket] == 0:
                        binary[bucket] = quantity.is_binary(value)
                    sums[bucket] += quantity.parse(value) * count
    return {
        "desiredCPU": quantity.format_quantity(sums["cpu"], binary["cpu"]),
        "desiredMemory": quantity.format_quantity(sums["memory"], binary["memory"]),
        "desiredGPU": quantity.format_quantity(sums["gpu"], binary["gpu"]),
        "desiredTPU": quantity.format_quantity(sums["tpu"], binary["tpu"]),
    }


def _bucket(key: str) -> str | None:
    if key == "cpu":
        return "cpu"
    if key == "memory":
        return "memory"
    if key == "google.com/tpu":
        return "tpu"
    if key.endswith("gpu") or key.startswith("nvidia.com/mig-"):
        return "gpu"
    return None
