"""Streams worker stdout/stderr to drivers: tails this node's `worker-<id>-<job>-<pid>.out/.err` files and
publishes new lines on the GCS "RAY_LOG" channel, keyed by job id (drivers subscribe to their own job's key).

Workers announce what they run with Ray's magic tokens (`:actor_name:<name>`, `:task_name:<name>`), which
become the `(name pid=...)` prefix the driver prints. Bounded as Ray's log monitor: at most
`RAY_LOG_MONITOR_MAX_OPEN_FILES` (200) files are read per round (one open at a time, the others wait their
turn) and at most `RAY_LOG_MONITOR_NUM_LINES_TO_READ` (1000) lines of each. The raylet's own errors for a
job (a worker that died under a task) go out the same way with pid "raylet": the driver's `(raylet)` lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass

from ray.protocol import gcs_pb2 as pb

logger = logging.getLogger(__name__)

LOG_CHANNEL = "RAY_LOG"
ACTOR_TOKEN = ":actor_name:"
TASK_TOKEN = ":task_name:"
_READ_CHUNK = 64 * 1024


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


@dataclass
class _Tail:
    path: str
    worker_id: str
    pid: int
    job_id: str
    is_err: bool
    offset: int = 0
    partial: bytes = b""


class LogMonitor:
    def __init__(self, node_manager, period_s: float = 0.1):
        self.nm = node_manager
        self.period_s = period_s
        self.max_open_files = _env_int("RAY_LOG_MONITOR_MAX_OPEN_FILES", 200)
        self.max_lines = _env_int("RAY_LOG_MONITOR_NUM_LINES_TO_READ", 1000)
        self._tails: dict[str, _Tail] = {}
        self._names: dict[int, dict[str, str]] = {}  # worker pid -> current actor/task name (both streams)
        self._raylet_lines: list[tuple[str, str]] = []  # (job id, line) to publish as "(raylet)"
        self._next = 0  # where the next round starts among the tails (round robin past max_open_files)

    def names_of(self, pid: int) -> dict[str, str]:
        """The actor (class or custom repr) and task a worker last announced."""
        return dict(self._names.get(pid) or {})

    def publish_raylet_error(self, job_id: str, line: str) -> None:
        self._raylet_lines.append((job_id, line))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            try:
                await self._poll()
            except Exception:
                logger.exception("log monitor iteration failed")

    def _discover(self) -> None:
        for worker in list(self.nm.pool.workers.values()):
            if not worker.log_base:
                continue
            for is_err, ext in ((False, "out"), (True, "err")):
                path = f"{worker.log_base}.{ext}"
                if path not in self._tails:
                    self._tails[path] = _Tail(path, worker.worker_id, worker.proc.pid, worker.job_id, is_err)

    def _read_lines(self, tail: _Tail, size: int) -> list[bytes]:
        """Up to max_lines complete lines past the tail's offset; the offset moves past what was taken."""
        lines: list[bytes] = []
        with open(tail.path, "rb") as f:
            f.seek(tail.offset)
            while len(lines) < self.max_lines and tail.offset < size:
                data = f.read(min(_READ_CHUNK, size - tail.offset))
                if not data:
                    break
                buf = tail.partial + data
                parts = buf.split(b"\n")
                rest = parts.pop()
                room = self.max_lines - len(lines)
                if len(parts) > room:  # stop after `room` lines; the remainder is read next round
                    consumed = sum(len(p) + 1 for p in parts[:room]) - len(tail.partial)
                    tail.offset += consumed
                    tail.partial = b""
                    lines += parts[:room]
                    return lines
                tail.offset += len(data)
                tail.partial = rest
                lines += parts
        return lines

    def _round(self) -> list[_Tail]:
        tails = list(self._tails.values())
        if len(tails) <= self.max_open_files:
            return tails
        start = self._next % len(tails)
        self._next = start + self.max_open_files
        return (tails[start:] + tails[:start])[: self.max_open_files]

    async def _poll(self) -> None:
        self._discover()
        messages = []
        for tail in self._round():
            try:
                size = os.path.getsize(tail.path)
            except OSError:
                size = -1
            if size <= tail.offset:
                if self.nm.pool.workers.get(tail.worker_id) is None:
                    del self._tails[tail.path]  # its worker is gone and everything was read
                    if not any(t.pid == tail.pid for t in self._tails.values()):
                        self._names.pop(tail.pid, None)
                continue
            out: list[str] = []
            names = self._names.setdefault(tail.pid, {"actor_name": "", "task_name": ""})
            for raw in self._read_lines(tail, size):
                line = raw.decode("utf-8", errors="replace")
                if line.startswith(ACTOR_TOKEN):
                    names["actor_name"] = line[len(ACTOR_TOKEN):]
                    continue
                if line.startswith(TASK_TOKEN):
                    names["task_name"] = line[len(TASK_TOKEN):]
                    continue
                out.append(line)
            if out:
                body = {"ip": self.nm.node_ip, "pid": tail.pid, "job": tail.job_id, "is_err": tail.is_err,
                        "lines": out, **names}
                messages.append(pb.PubMessage(channel=LOG_CHANNEL, key=tail.job_id.encode(),
                                              data=json.dumps(body).encode()))
        raylet_lines, self._raylet_lines = self._raylet_lines, []
        for job_id, line in raylet_lines:
            body = {"ip": self.nm.node_ip, "pid": "raylet", "job": job_id, "is_err": True, "lines": [line],
                    "actor_name": "", "task_name": ""}
            messages.append(pb.PubMessage(channel=LOG_CHANNEL, key=job_id.encode(), data=json.dumps(body).encode()))
        if messages:
            await self.nm.gcs.call(self.nm.gcs.stubs.pubsub.GcsPublish, pb.GcsPublishRequest(messages=messages))
