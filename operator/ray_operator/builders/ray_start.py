"""The `ray start` command line, built from `rayStartParams` and the Ray container's resources as KubeRay does."""

from __future__ import annotations

import json
import re
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import quantity

# `"false"` drops a flag, except for these, which keep `=false` (KubeRay's list).
_KEEP_FALSE = frozenset({"log-color", "include-dashboard", "include-log-monitor"})
_MIG_GPU = re.compile(r"^nvidia\.com/mig-\d+g\.\d+gb$")


def gpu_count(limits: dict[str, Any]) -> int | None:
    """GPUs in a container's limits: the first key (sorted) ending in `gpu` or naming a MIG slice."""
    for key in sorted(limits):
        if key.endswith("gpu") or _MIG_GPU.match(key):
            count = quantity.ceil_int(limits[key])
            if count > 0:
                return count
    return None


def ray_start_params(
    group: dict[str, Any],
    container: dict[str, Any],
    node_type: str,
    gcs_address: str,
) -> dict[str, str]:
    """The final flags (without the leading `--`) for one Ray node.

    `gcs_address` is `<fqdn-of-head-svc>:<head port>` (used by workers); defaults are only filled when the
    user left a key out.
    """
    params = {str(k): _as_text(v) for k, v in (group.get("rayStartParams") or {}).items()}
    params.setdefault("metrics-export-port", str(c.DEFAULT_METRICS_PORT))
    params.setdefault("dashboard-agent-listen-port", str(c.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT))
    if node_type == c.NODE_TYPE_HEAD:
        params.setdefault("dashboard-host", "0.0.0.0")
    else:
        params.setdefault("address", gcs_address)
    params["block"] = "true"

    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    if "num-cpus" not in params:
        cpu = limits.get("cpu") if _nonzero(limits.get("cpu")) else requests.get("cpu")
        if _nonzero(cpu):
            params["num-cpus"] = str(quantity.ceil_int(cpu))
    if "memory" not in params and _nonzero(limits.get("memory")):
        params["memory"] = str(quantity.ceil_int(limits["memory"]))
    if "num-gpus" not in params:
        gpus = gpu_count(limits)
        if gpus:
            params["num-gpus"] = str(gpus)
    if "resources" not in params:
        accelerators = {}
        if _nonzero(limits.get("google.com/tpu")):
            accelerators["TPU"] = quantity.ceil_int(limits["google.com/tpu"])
        if _nonzero(limits.get("aws.amazon.com/neuroncore")):
            accelerators["neuron_cores"] = quantity.ceil_int(limits["aws.amazon.com/neuroncore"])
        if accelerators:
            params["resources"] = _quoted_json(accelerators)
    # The group's `resources` / `labels` fields override the params of the same name.
    if group.get("resources"):
        params["resources"] = _quoted_json({k: float(quantity.parse(v)) for k, v in group["resources"].items()})
    if group.get("labels"):
        params["labels"] = ",".join(f"{k}={v}" for k, v in sorted(group["labels"].items()))
    return params


def ray_start_command(params: dict[str, str], node_type: str) -> str:
    """`ray start --head  --block  --dashboard-host=0.0.0.0 ...`, byte for byte as KubeRay renders it."""
    text = "ray start "
    if node_type == c.NODE_TYPE_HEAD:
        text += "--head "
    for key in sorted(params):
        value = params[key]
        if value.lower() == "true":
            text += f" --{key} "
        elif value.lower() == "false":
            if key in _KEEP_FALSE:
                text += f" --{key}={value} "
        else:
            text += f" --{key}={value} "
    return text


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _nonzero(value: Any) -> bool:
    return value is not None and value != "" and quantity.parse(value) != 0


def _quoted_json(mapping: dict[str, Any]) -> str:
    # Single quotes keep the JSON one word for the shell that runs the command.
    return "'" + json.dumps(mapping, separators=(",", ":")) + "'"
