"""Physical stats of this node and its Ray processes, sampled with psutil (and NVML for GPUs), plus the
raylet's view of its workers and logical resources (`GET_NODE_STATS` over the framed protocol).

One sample serves every reader that comes within `min_interval_s` (the dashboard's poll, Prometheus'
scrape, the head's history), so an agent scraped every few seconds samples at most that often.
Key names follow Ray's reporter agent (the dashboard's `/nodes` views show them camelCased).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from typing import Any

import psutil

from ray._common import framing
from ray.agent.metrics.gpu import gpu_stats
from ray.protocol import messages as msg

logger = logging.getLogger(__name__)

# Ray's REPORTER_UPDATE_INTERVAL_MS is 2500: samples younger than this are reused.
DEFAULT_MIN_INTERVAL_S = 2.5
_PROC_ATTRS = ("pid", "create_time", "cmdline", "memory_info")


def raylet_socket(node_id: str) -> str:
    """The raylet's Unix socket on this node (the name the raylet derives from its node id)."""
    return "unix:" + framing.abstract_socket_name("raylet", node_id[:24])


class NodeStatsCollector:
    def __init__(self, node_id: str, node_ip: str, session_dir: str, min_interval_s: float = DEFAULT_MIN_INTERVAL_S):
        self.node_id = node_id
        self.node_ip = node_ip
        self.session_dir = session_dir
        self.min_interval_s = min_interval_s
        self._procs: dict[int, psutil.Process] = {}  # kept so cpu_percent measures since the last sample
        self._last: dict[str, Any] | None = None
        self._last_at = 0.0
        self._lock = asyncio.Lock()
        self._raylet: framing.Connection | None = None
        self._net_prev: tuple[float, int, int] | None = None
        self._disk_prev: tuple[float, int, int, int, int] | None = None
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement

    async def sample(self) -> dict[str, Any]:
        """The newest sample, taking a new one when the last is older than min_interval_s."""
        async with self._lock:
            if self._last is None or time.monotonic() - self._last_at >= self.min_interval_s:
                raylet = await self._raylet_stats()
                self._last = await asyncio.to_thread(self._physical, raylet)
                self._last_at = time.monotonic()
            return self._last

    async def _raylet_stats(self) -> dict[str, Any]:
        try:
            if self._raylet is None or self._raylet.closed:
                self._raylet = await asyncio.wait_for(framing.connect(raylet_socket(self.node_id)), 5)
            return await asyncio.wait_for(self._raylet.request(msg.GET_NODE_STATS), 5)
        except Exception as e:
            logger.debug("The raylet did not answer GET_NODE_STATS: %s", e)
            if self._raylet is not None:
                self._raylet.close()
            self._raylet = None
            return {}

    def _component_pids(self) -> dict[str, int]:
        """This node's Ray daemons (the node launcher writes their pids beside the session)."""
        pids = {"agent": os.getpid()}
        path = os.path.join(self.session_dir, f"node_{self.node_id[:8]}.json")
        with contextlib.suppress(OSError, ValueError):
            with open(path) as f:
                for name, pid in json.load(f).get("pids", {}).items():
                    if int(pid) not in pids.values():  # the head's dashboard may host the agent
                        pids.setdefault(name, int(pid))
        return pids

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)
            except psutil.Error:
                return None
            self._procs[pid] = proc
        return proc

    def _proc_stats(self, pid: int) -> dict[str, Any] | None:
        proc = self._proc(pid)
        if proc is None:
            return None
        try:
            with proc.oneshot():
                info = proc.as_dict(attrs=list(_PROC_ATTRS))
                info["cpu_percent"] = proc.cpu_percent(None)
                try:
                    info["memory_full_info"] = {"uss": proc.memory_full_info().uss}
                except psutil.Error:
                    info["memory_full_info"] = None
        except psutil.Error:
            self._procs.pop(pid, None)
            return None
        mem = info.pop("memory_info")
        info["memory_info"] = {"rss": mem.rss, "vms": mem.vms} if mem else {}
        return info

    def _physical(self, raylet: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        vm = psutil.virtual_memory()
        gpus = gpu_stats()
        gpu_by_pid: dict[int, list[dict]] = {}
        for gpu in gpus:
            for proc in gpu["processesPids"]:
                gpu_by_pid.setdefault(proc["pid"], []).append(
                    {"index": gpu["index"], "name": gpu["name"], "uuid": gpu["uuid"],
                     "gpuMemoryUsage": proc["gpuMemoryUsage"]})
        workers = []
        live = set()
        for row in raylet.get("workers", []):
            stats = self._proc_stats(row["pid"])
            if stats is None:
                continue
            live.add(row["pid"])
            workers.append({**stats, **row, "gpus": gpu_by_pid.get(row["pid"], [])})
        components = {}
        for name, pid in self._component_pids().items():
            stats = self._proc_stats(pid)
            if stats is not None:
                live.add(pid)
                components[name] = stats
        for pid in list(self._procs):
            if pid not in live:
                del self._procs[pid]
        return {
            "now": now,
            "hostname": socket.gethostname(),
            "ip": self.node_ip,
            "node_id": self.node_id,
            "cpu": psutil.cpu_percent(interval=None),
            "cpus": (psutil.cpu_count(), psutil.cpu_count(logical=False)),
            "mem": (vm.total, vm.available, vm.percent, vm.total - vm.available),
            "shm": getattr(vm, "shared", None),
            "load_avg": _load_avg(),
            "boot_time": psutil.boot_time(),
            "disk": self._disk(),
            "disk_io": self._disk_io(now),
            "network": self._network(now),
            "gpus": gpus,
            "workers": workers,
            "components": components,
            "raylet": {k: raylet[k] for k in ("total", "available", "num_workers", "pending_leases",
                                              "infeasible_leases") if k in raylet},
            "object_store": {k: raylet[k] for k in ("object_store_used_bytes", "num_objects", "num_spilled",
                                                    "spilled_bytes_total", "capacity") if k in raylet},
        }

    def _disk(self) -> dict[str, dict[str, float]]:
        out = {}
        for path in dict.fromkeys(["/", self.session_dir]):
            with contextlib.suppress(OSError):
                usage = psutil.disk_usage(path)
                out[path] = {"total": usage.total, "used": usage.used, "free": usage.free, "percent": usage.percent}
        return out

    def _disk_io(self, now: float) -> dict[str, float]:
        io = psutil.disk_io_counters()
        if io is None:
            return {}
        current = (now, io.read_bytes, io.write_bytes, io.read_count, io.write_count)
        prev, self._disk_prev = self._disk_prev, current
        if prev is None or now <= prev[0]:
            return {"read_bytes": io.read_bytes, "write_bytes": io.write_bytes, "read_speed": 0.0,
                    "write_speed": 0.0, "read_iops": 0.0, "write_iops": 0.0}
        dt = now - prev[0]
        return {"read_bytes": io.read_bytes, "write_bytes": io.write_bytes,
                "read_speed": (current[1] - prev[1]) / dt, "write_speed": (current[2] - prev[2]) / dt,
                "read_iops": (current[3] - prev[3]) / dt, "write_iops": (current[4] - prev[4]) / dt}

    def _network(self, now: float) -> dict[str, float]:
        io = psutil.net_io_counters()
        prev, self._net_prev = self._net_prev, (now, io.bytes_sent, io.bytes_recv)
        send_speed = recv_speed = 0.0
        if prev is not None and now > prev[0]:
            send_speed = (io.bytes_sent - prev[1]) / (now - prev[0])
            recv_speed = (io.bytes_recv - prev[2]) / (now - prev[0])
        return {"sent": io.bytes_sent, "received": io.bytes_recv, "send_speed": send_speed,
                "receive_speed": recv_speed}


def _load_avg() -> tuple[tuple[float, ...], tuple[float, ...]]:
    load = os.getloadavg()
    cpus = psutil.cpu_count() or 1
    return load, tuple(x / cpus for x in load)
