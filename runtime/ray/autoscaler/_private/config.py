"""The autoscaling config (Ray's cluster YAML: `available_node_types`, `head_node_type`, `max_workers`,
`upscaling_speed`, `idle_timeout_minutes`, `provider`), read, given Ray's defaults, and checked.

A config that cannot be used raises `ConfigError` with a message that names the field and says what to do;
the autoscaler reports it (its log, `ray status`) and keeps reading the config until it is fixed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.autoscaler._private import constants

PROVIDER_TYPES = ("fake_multinode", "local", "kuberay", "readonly")


class ConfigError(ValueError):
    """The autoscaling config cannot be used as it is."""


@dataclass
class NodeTypeConfig:
    name: str
    resources: dict[str, float]
    min_workers: int = 0
    max_workers: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    node_config: dict[str, Any] = field(default_factory=dict)
    idle_timeout_s: float | None = None  # overrides the cluster's (KubeRay's per-group idleTimeoutSeconds)


@dataclass
class AutoscalingConfig:
    cluster_name: str
    provider: dict[str, Any]
    head_node_type: str
    node_types: dict[str, NodeTypeConfig]
    max_workers: int
    upscaling_speed: float
    idle_timeout_s: float
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def provider_type(self) -> str:
        return self.provider["type"]

    @property
    def worker_types(self) -> dict[str, NodeTypeConfig]:
        return {n: t for n, t in self.node_types.items() if n != self.head_node_type}


def load_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file as a dict (ConfigError when it cannot be read or parsed)."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"Cannot read the autoscaling config {path}: {e.strerror or e}.") from e
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"The autoscaling config {path} is not valid YAML/JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"The autoscaling config {path} must be a mapping, got {type(data).__name__}.")
    return data


def _number(value: Any, where: str, integer: bool = False, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not float(value).is_integer()):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where} must be {kind}, got {value!r}.")
    if value < minimum or math.isnan(value):
        raise ConfigError(f"{where} must be at least {minimum}, got {value!r}.")
    return int(value) if integer else float(value)


def parse(raw: dict[str, Any]) -> AutoscalingConfig:
    """Ray's defaults filled in, then every check; raises ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"The autoscaling config must be a mapping, got {type(raw).__name__}.")
    provider = raw.get("provider")
    if not isinstance(provider, dict) or "type" not in provider:
        raise ConfigError("`provider` must be a mapping with a `type` (one of: " + ", ".join(PROVIDER_TYPES) + ").")
    if provider["type"] not in PROVIDER_TYPES:
        raise ConfigError(f"Unknown provider type {provider['type']!r}; OpenRay's autoscaler supports "
                          + ", ".join(PROVIDER_TYPES) + ".")
    types_raw = raw.get("available_node_types")
    if not isinstance(types_raw, dict) or not types_raw:
        raise ConfigError("`available_node_types` must map node type names to their configs "
                          "(resources, min_workers, max_workers).")
    head_type = raw.get("head_node_type")
    if head_type is None:
        raise ConfigError("You must specify `head_node_type` if `available_node_types is set.")
    if head_type not in types_raw:
        raise ConfigError(f"`head_node_type` must be one of `available_node_types`: {head_type!r} is not one of "
                          f"{sorted(types_raw)}.")
    max_workers = _number(raw.get("max_workers", constants.DEFAULT_MAX_WORKERS), "`max_workers`", integer=True)
    node_types: dict[str, NodeTypeConfig] = {}
    for name, spec in types_raw.items():
        at = f"available_node_types.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"`{at}` must be a mapping, got {type(spec).__name__}.")
        resources = spec.get("resources", {}) or {}
        if not isinstance(resources, dict):
            raise ConfigError(f"`{at}.resources` must map resource names to amounts, got {resources!r}.")
        resources = {str(k): _number(v, f"`{at}.resources.{k}`") for k, v in resources.items()}
        is_head = name == head_type
        min_workers = _number(spec.get("min_workers", 0), f"`{at}.min_workers`", integer=True)
        default_max = 0 if is_head else max_workers
        max_w = _number(spec.get("max_workers", default_max), f"`{at}.max_workers`", integer=True)
        if min_workers > max_w:
            raise ConfigError(f"`{at}`: min_workers ({min_workers}) is greater than max_workers ({max_w}); "
                              "lower min_workers or raise max_workers.")
        if not is_head and not any(v > 0 for v in resources.values()) and provider["type"] not in (
                "local", "readonly"):
            raise ConfigError(f"`{at}` has no resources: give it `resources` (for example {{CPU: 2}}) so the "
                              "autoscaler knows what a node of this type can run.")
        idle = spec.get("idle_timeout_s")
        node_types[name] = NodeTypeConfig(
            name=name, resources=resources, min_workers=min_workers, max_workers=max_w,
            labels={str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
            node_config=dict(spec.get("node_config") or {}),
            idle_timeout_s=None if idle is None else _number(idle, f"`{at}.idle_timeout_s`"))
    sum_min = sum(t.min_workers for n, t in node_types.items() if n != head_type)
    if sum_min > max_workers:
        raise ConfigError("The specified global `max_workers` is smaller than the sum of `min_workers` of all the "
                          f"available node types ({max_workers} < {sum_min}).")
    speed = raw.get("upscaling_speed", constants.DEFAULT_UPSCALING_SPEED)
    idle_minutes = raw.get("idle_timeout_minutes", constants.DEFAULT_IDLE_TIMEOUT_MINUTES)
    return AutoscalingConfig(
        cluster_name=str(raw.get("cluster_name", "default")), provider=dict(provider), head_node_type=head_type,
        node_types=node_types, max_workers=max_workers,
        upscaling_speed=_number(speed, "`upscaling_speed`"),
        idle_timeout_s=_number(idle_minutes, "`idle_timeout_minutes`") * 60, raw=raw)


def head_node_env(path: str) -> dict[str, str]:
    """What the head's processes need in their environment so the autoscaler and `ray status` know the head: its
    node type (RAY_NODE_TYPE_NAME) and, with the fake_multinode provider, its instance id. A config that cannot be
    read gives nothing: the head starts all the same and the autoscaler reports what is wrong."""
    try:
        raw = load_file(path)
    except ConfigError:
        return {}
    env: dict[str, str] = {}
    head_type = raw.get("head_node_type")
    if isinstance(head_type, str):
        env["RAY_NODE_TYPE_NAME"] = head_type
    provider = raw.get("provider") if isinstance(raw.get("provider"), dict) else {}
    if provider.get("type") == "fake_multinode":
        env["RAY_CLOUD_INSTANCE_ID"] = str(provider.get("head_node_id", constants.FAKE_HEAD_NODE_ID))
    return env
