"""GPUs of this node through NVML (nvidia-ml-py's `pynvml`): utilisation, memory and which processes use them.

No NVIDIA driver (or no package): no GPUs, and NVML is not asked again.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

_nvml: Any = None
_available: bool | None = None


def _init() -> bool:
    global _nvml, _available
    if _available is None:
        try:
            import pynvml

            pynvml.nvmlInit()
            _nvml = pynvml
            _available = True
        except Exception as e:  # no library, no driver, no device
            logger.debug("NVML is not available: %s", e)
            _available = False
    return _available


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_stats() -> list[dict[str, Any]]:
    """One dict per GPU, Ray's reporter shape: index, name, uuid, utilizationGpu (%), memoryUsed and
    memoryTotal (MiB), processesPids [{pid, gpuMemoryUsage (MiB)}]."""
    if not _init():
        return []
    out = []
    try:
        count = _nvml.nvmlDeviceGetCount()
    except Exception as e:
        logger.warning("NVML could not count GPUs: %s", e)
        return []
    for index in range(count):
        try:
            handle = _nvml.nvmlDeviceGetHandleByIndex(index)
            memory = _nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                utilization = float(_nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                utilization = None
            processes = []
            for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                try:
                    for proc in getattr(_nvml, getter)(handle):
                        used = getattr(proc, "usedGpuMemory", None)
                        processes.append({"pid": int(proc.pid),
                                          "gpuMemoryUsage": int(used) // 2**20 if used else 0})
                except Exception:
                    pass
            out.append({
                "index": index,
                "name": _text(_nvml.nvmlDeviceGetName(handle)),
                "uuid": _text(_nvml.nvmlDeviceGetUUID(handle)),
                "utilizationGpu": utilization,
                "memoryUsed": int(memory.used) // 2**20,
                "memoryTotal": int(memory.total) // 2**20,
                "processesPids": processes,
            })
        except Exception as e:
            logger.warning("NVML could not read GPU %d: %s", index, e)
    return out
