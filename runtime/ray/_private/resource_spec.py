"""What a node offers: detected CPUs/GPUs/memory, overridden by `ray start`/`ray.init` arguments."""

from __future__ import annotations

import json
import os
import re

import psutil

DEFAULT_OBJECT_STORE_MEMORY_PROPORTION = 0.3
DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES = 200 * 10**9
OBJECT_STORE_MINIMUM_MEMORY_BYTES = 75 * 1024 * 1024
HEAD_NODE_RESOURCE_NAME = "node:__internal_head__"


def detect_num_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return psutil.cpu_count() or 1


def detect_gpus() -> tuple[int, str | None]:
    """(count, accelerator type) from CUDA_VISIBLE_DEVICES or NVML, as Ray's NVIDIA manager does."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [] if visible in ("", "NoDevFiles") else visible.split(",")
        count: int | None = len(ids)
    else:
        count = None
    gpu_type = None
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            if count is None:
                count = pynvml.nvmlDeviceGetCount()
            if count:
                name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
                name = name.decode() if isinstance(name, bytes) else name
                match = re.search(r"\w+\s+([A-Z0-9]+)", name)
                gpu_type = match.group(1) if match else None
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver / no library: no GPUs, like Ray
        pass
    return count or 0, gpu_type


def shm_capacity() -> int | None:
    try:
        st = os.statvfs("/dev/shm")
        return st.f_bsize * st.f_bavail
    except OSError:
        return None


def default_object_store_memory() -> int:
    avail = psutil.virtual_memory().available
    size = min(int(avail * DEFAULT_OBJECT_STORE_MEMORY_PROPORTION), DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES)
    shm = shm_capacity()
    if shm:
        size = min(size, int(shm * 0.95))
    return max(size, OBJECT_STORE_MINIMUM_MEMORY_BYTES)


def parse_resources_json(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"--resources must be a JSON object such as '{{\"bob\": 5}}', got {text!r} ({e.msg})."
        ) from e
    if not isinstance(value, dict) or not all(isinstance(v, int | float) for v in value.values()):
        raise ValueError(f"--resources must map resource names to numbers, got {text!r}.")
    for reserved in ("CPU", "GPU"):
        if reserved in value:
            raise ValueError(f"Use --num-{reserved.lower()}s instead of putting {reserved!r} in --resources.")
    return {k: float(v) for k, v in value.items()}


def node_resources(
    node_ip: str,
    is_head: bool,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    object_store_memory: int | None = None,
    resources: dict[str, float] | None = None,
) -> dict[str, float]:
    """The node's total resources with Ray's names (CPU, GPU, memory, object_store_memory, node:<ip>...)."""
    override = os.environ.get("RAY_OVERRIDE_RESOURCES")
    total: dict[str, float] = {}
    total["CPU"] = float(detect_num_cpus() if num_cpus is None else num_cpus)
    gpu_count, gpu_type = detect_gpus()
    gpus = gpu_count if num_gpus is None else num_gpus
    if gpus:
        total["GPU"] = float(gpus)
        if gpu_type:
            total[f"accelerator_type:{gpu_type}"] = 1.0
    osm = object_store_memory or default_object_store_memory()
    total["memory"] = float(memory if memory is not None else max(psutil.virtual_memory().available - osm, 0))
    total["object_store_memory"] = float(osm)
    total[f"node:{node_ip}"] = 1.0
    if is_head:
        total[HEAD_NODE_RESOURCE_NAME] = 1.0
    total.update(resources or {})
    if override:
        total.update(json.loads(override))
    return {k: v for k, v in total.items() if v}
