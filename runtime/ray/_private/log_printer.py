"""The driver side of `log_to_driver`: prints its job's worker output as `(name pid=..., ip=...) line`,
deduplicated as Ray does (`ray._private.log_dedup`, on unless `RAY_DEDUP_LOGS=0`); the raylet's errors for
the job print as `(raylet) ...`."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable

import grpc

from ray._private.log_dedup import LogDeduplicator, dedup_enabled

LOG_CHANNEL = "RAY_LOG"
_FLUSH_PERIOD_S = 1.0


def line_prefix(batch: dict, driver_ip: str) -> str:
    """Ray's prefix: `(name pid=N)` on the driver's node, `(name pid=N, ip=IP)` elsewhere; `(raylet)`."""
    other_node = batch.get("ip") != driver_ip
    if batch.get("pid") == "raylet":
        return f"(raylet, ip={batch['ip']})" if other_node else "(raylet)"
    name = batch.get("actor_name") or batch.get("task_name") or ""
    where = f"pid={batch['pid']}" + (f", ip={batch['ip']}" if other_node else "")
    return f"({name} {where})" if name else f"({where})"


class LogPrinter:
    def __init__(self, gcs_client, job_id_hex: str, driver_ip: str):
        self._gcs = gcs_client
        self._key = job_id_hex.encode()
        self._stream = gcs_client.subscribe([LOG_CHANNEL], key=self._key)
        self._driver_ip = driver_ip
        self._lock = threading.Lock()
        self._dedup = LogDeduplicator() if dedup_enabled() else None
        self._stopped = threading.Event()
        self.sink: Callable[[dict], None] | None = None  # a Ray Client session's proxy sends them on instead
        self._thread = threading.Thread(target=self._run, name="ray-log-printer", daemon=True)
        self._thread.start()
        if self._dedup is not None:
            threading.Thread(target=self._flush_loop, name="ray-log-dedup", daemon=True).start()

    def _run(self) -> None:
        gave_up_at = time.monotonic() + self._gcs.timeout_s
        while not self._stopped.is_set():
            try:
                for msg in self._stream:
                    gave_up_at = time.monotonic() + self._gcs.timeout_s
                    self.print_batch(json.loads(msg.data))
            except grpc.RpcError:
                pass  # cancelled at shutdown, or the GCS went away: a restarted one (Redis) is subscribed to again
            if self._stopped.is_set() or time.monotonic() > gave_up_at:
                return
            if self._stopped.wait(0.5) or getattr(self._gcs, "_closed", False):
                return  # ray.shutdown(): its channel is gone
            try:
                self._stream = self._gcs.subscribe([LOG_CHANNEL], key=self._key)
            except ValueError:  # "Cannot invoke RPC on closed channel"
                return

    def _flush_loop(self) -> None:
        while not self._stopped.wait(_FLUSH_PERIOD_S):
            self.flush()

    def flush(self, force: bool = False) -> None:
        if self._dedup is None:
            return
        with self._lock:
            batches = self._dedup.flush(force)
        for batch in batches:
            self._write(batch)

    def print_batch(self, batch: dict) -> None:
        if self.sink is not None:
            self.sink(batch)
            return
        if self._dedup is None:
            self._write(batch)
            return
        with self._lock:
            batches = self._dedup.deduplicate(batch)
        for out in batches:
            self._write(out)

    def _write(self, batch: dict) -> None:
        print_batch(batch, self._driver_ip)

    def stop(self) -> None:
        self._stopped.set()
        self._stream.cancel()
        self.flush(force=True)  # the repeats still in their window, as Ray prints them at exit


def print_batch(batch: dict, driver_ip: str) -> None:
    """One batch of a worker's lines, each with Ray's prefix (also a Ray Client's printer)."""
    prefix = line_prefix(batch, driver_ip)
    stream = sys.stderr if batch["is_err"] else sys.stdout
    text = "".join(f"{prefix} {line}\n" for line in batch["lines"])
    try:
        stream.write(text)
        stream.flush()
    except ValueError:
        pass  # stream closed at interpreter exit
