"""Streams worker stdout/stderr to drivers: tails this node's `worker-*.out/.err` files and publishes new
lines on the GCS "RAY_LOG" channel, keyed by job id (drivers subscribe to their own job's key).

Workers announce what they run with Ray's magic tokens (`:actor_name:<name>`, `:task_name:<name>`), which
become the `(name pid=...)` prefix the driver prints.
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
MAX_LINES_PER_BATCH = 1000


@dataclass
class _Tail:
    path: str
    pid: int
    job_id: str
    is_err: bool
    offset: int = 0
    partial: bytes = b""


class LogMonitor:
    def __init__(self, node_manager, period_s: float = 0.1):
        self.nm = node_manager
        self.period_s = period_s
        self._tails: dict[str, _Tail] = {}
        self._names: dict[int, dict[str, str]] = {}  # worker pid -> current actor/task name (both streams)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            try:
                await self._poll()
            except Exception:
                logger.exception("log monitor iteration failed")

    def _discover(self) -> None:
        logs = self.nm.pool.logs_dir
        for worker in list(self.nm.pool.workers.values()):
            for is_err, ext in ((False, "out"), (True, "err")):
                path = os.path.join(logs, f"worker-{worker.worker_id}-{worker.job_id}.{ext}")
                if path not in self._tails:
                    self._tails[path] = _Tail(path, worker.proc.pid, worker.job_id, is_err)

    async def _poll(self) -> None:
        self._discover()
        messages = []
        for tail in list(self._tails.values()):
            try:
                size = os.path.getsize(tail.path)
            except OSError:
                continue
            if size <= tail.offset:
                if self.nm.pool.workers.get(_worker_id_of(tail.path)) is None:
                    del self._tails[tail.path]  # its worker is gone and everything was read
                    if not any(t.pid == tail.pid for t in self._tails.values()):
                        self._names.pop(tail.pid, None)
                continue
            with open(tail.path, "rb") as f:
                f.seek(tail.offset)
                data = f.read(size - tail.offset)
            tail.offset = size
            lines = (tail.partial + data).split(b"\n")
            tail.partial = lines.pop()
            out: list[str] = []
            names = self._names.setdefault(tail.pid, {"actor_name": "", "task_name": ""})
            for raw in lines:
                line = raw.decode("utf-8", errors="replace")
                if line.startswith(ACTOR_TOKEN):
                    names["actor_name"] = line[len(ACTOR_TOKEN):]
                    continue
                if line.startswith(TASK_TOKEN):
                    names["task_name"] = line[len(TASK_TOKEN):]
                    continue
                out.append(line)
            for i in range(0, len(out), MAX_LINES_PER_BATCH):
                body = {"ip": self.nm.node_ip, "pid": tail.pid, "job": tail.job_id, "is_err": tail.is_err,
                        "lines": out[i:i + MAX_LINES_PER_BATCH], **names}
                messages.append(pb.PubMessage(channel=LOG_CHANNEL, key=tail.job_id.encode(),
                                              data=json.dumps(body).encode()))
        if messages:
            await self.nm.gcs.call(self.nm.gcs.stubs.pubsub.GcsPublish, pb.GcsPublishRequest(messages=messages))


def _worker_id_of(path: str) -> str:
    return os.path.basename(path).split("-")[1]
