"""Ray's autoscaler constants (python/ray/autoscaler/_private/constants.py), each overridable by the same
environment variable as in Ray (read when the autoscaler starts)."""

from __future__ import annotations

import os


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw == "inf":
        return float("inf")
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"Environment variable {name}={raw!r} is not a number.") from e


def _env_int(name: str, default: int) -> int:
    value = _env_number(name, default)
    return value if value == float("inf") else int(value)


# How often the autoscaler reads the cluster and acts (seconds; Ray's default 5; AutoscalingCluster uses 1).
AUTOSCALER_UPDATE_INTERVAL_S = _env_number("AUTOSCALER_UPDATE_INTERVAL_S", 5)
# A launched node whose Ray has not registered with the GCS after this long has failed to start.
AUTOSCALER_NODE_START_WAIT_S = _env_number("AUTOSCALER_NODE_START_WAIT_S", 900)
# A launch the provider accepted but that shows no instance after this long has failed (KubeRay: the operator
# could not create the pod, e.g. a ResourceQuota).
AUTOSCALER_REQUESTED_INSTANCE_TIMEOUT_S = _env_number("AUTOSCALER_REQUESTED_INSTANCE_TIMEOUT_S", 600)
# Consecutive failed rounds (the GCS or the provider unreachable) the process survives before it exits with an
# error (a KubeRay sidecar is then restarted by Kubernetes).
AUTOSCALER_MAX_NUM_FAILURES = _env_int("AUTOSCALER_MAX_NUM_FAILURES", 5)
AUTOSCALER_MAX_LAUNCH_BATCH = _env_int("AUTOSCALER_MAX_LAUNCH_BATCH", 5)
# Ray's UPSCALING_INITIAL_NUM_NODES: a node type may always have this many launches for demand in flight.
UPSCALING_INITIAL_NUM_NODES = 5
# At most this many launches in flight at once (launched, not yet running Ray).
AUTOSCALER_MAX_CONCURRENT_LAUNCHES = _env_int("AUTOSCALER_MAX_CONCURRENT_LAUNCHES", 10)
# Ray's code default (its example YAMLs say 1.0): a node type has at most max(5, speed * running) launches in flight.
DEFAULT_UPSCALING_SPEED = 0.0
DEFAULT_MAX_WORKERS = 2
DEFAULT_IDLE_TIMEOUT_MINUTES = 5
# Keep GPU node types for GPU work: a CPU-only demand goes to a node type without GPUs when one fits.
AUTOSCALER_CONSERVE_GPU_NODES = _env_int("AUTOSCALER_CONSERVE_GPU_NODES", 1)
AUTOSCALER_MAX_FAILURES_DISPLAYED = 20
AUTOSCALER_MAX_RESOURCE_DEMAND_VECTOR_SIZE = _env_int("AUTOSCALER_MAX_RESOURCE_DEMAND_VECTOR_SIZE", 1000)
AUTOSCALER_METRIC_PORT = _env_int("AUTOSCALER_METRIC_PORT", 44217)
# A node type whose launch failed is not launched again for this long, doubling per consecutive failure up to
# the cap (seconds).
AUTOSCALER_LAUNCH_BACKOFF_S = _env_number("AUTOSCALER_LAUNCH_BACKOFF_S", 5)
AUTOSCALER_LAUNCH_BACKOFF_MAX_S = _env_number("AUTOSCALER_LAUNCH_BACKOFF_MAX_S", 300)
# Failed launches are shown (`ray status` "Recent failures") for this long.
AUTOSCALER_FAILURE_DISPLAY_S = _env_number("AUTOSCALER_FAILURE_DISPLAY_S", 1800)

MONITOR_LOG_FILE_NAME = "monitor.log"

# The fake_multinode provider's ids: the head's instance id, and the node type AutoscalingCluster gives it.
FAKE_HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"
FAKE_HEAD_NODE_TYPE = "ray.head.default"
