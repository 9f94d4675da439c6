"""The driver side of `log_to_driver`: prints its job's worker output as `(name pid=..., ip=...) line`."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable

import grpc

LOG_CHANNEL = "RAY_LOG"


class LogPrinter:
    def __init__(self, gcs_client, job_id_hex: str, driver_ip: str):
        self._stream = gcs_client.subscribe([LOG_CHANNEL], key=job_id_hex.encode())
        self._driver_ip = driver_ip
        self.sink: Callable[[dict], None] | None = None  # a Ray Client session's proxy sends them on instead
        self._thread = threading.Thread(target=self._run, name="ray-log-printer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for msg in self._stream:
                self.print_batch(json.loads(msg.data))
        except grpc.RpcError:
            pass  # cancelled at shutdown or the GCS went away

    def print_batch(self, batch: dict) -> None:
        if self.sink is not None:
            self.sink(batch)
            return
        print_batch(batch, self._driver_ip)

    def stop(self) -> None:
        self._stream.cancel()


def print_batch(batch: dict, driver_ip: str) -> None:
    """One batch of a worker's lines, each with Ray's prefix `(name pid=..., ip=...)`."""
    name = batch.get("actor_name") or batch.get("task_name") or ""
    where = f"pid={batch['pid']}" + ("" if batch["ip"] == driver_ip else f", ip={batch['ip']}")
    prefix = f"({name} {where})" if name else f"({where})"
    stream = sys.stderr if batch["is_err"] else sys.stdout
    text = "".join(f"{prefix} {line}\n" for line in batch["lines"])
    try:
        stream.write(text)
        stream.flush()
    except ValueError:
        pass  # stream closed at interpreter exit
