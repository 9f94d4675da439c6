"""The driver side of `log_to_driver`: prints its job's worker output as `(name pid=..., ip=...) line`."""

from __future__ import annotations

import json
import sys
import threading
import time

import grpc

LOG_CHANNEL = "RAY_LOG"


class LogPrinter:
    def __init__(self, gcs_client, job_id_hex: str, driver_ip: str):
        self._gcs = gcs_client
        self._key = job_id_hex.encode()
        self._stream = gcs_client.subscribe([LOG_CHANNEL], key=self._key)
        self._stopped = False
        self._driver_ip = driver_ip
        self._thread = threading.Thread(target=self._run, name="ray-log-printer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        gave_up_at = time.monotonic() + self._gcs.timeout_s
        while not self._stopped:
            try:
                for msg in self._stream:
                    gave_up_at = time.monotonic() + self._gcs.timeout_s
                    self.print_batch(json.loads(msg.data))
            except grpc.RpcError:
                pass  # cancelled at shutdown, or the GCS went away: a restarted one (Redis) is subscribed to again
            if self._stopped or time.monotonic() > gave_up_at:
                return
            time.sleep(0.5)
            if self._stopped or getattr(self._gcs, "_closed", False):
                return  # ray.shutdown(): its channel is gone
            try:
                self._stream = self._gcs.subscribe([LOG_CHANNEL], key=self._key)
            except ValueError:  # "Cannot invoke RPC on closed channel"
                return

    def print_batch(self, batch: dict) -> None:
        name = batch.get("actor_name") or batch.get("task_name") or ""
        where = f"pid={batch['pid']}" + ("" if batch["ip"] == self._driver_ip else f", ip={batch['ip']}")
        prefix = f"({name} {where})" if name else f"({where})"
        stream = sys.stderr if batch["is_err"] else sys.stdout
        text = "".join(f"{prefix} {line}\n" for line in batch["lines"])
        try:
            stream.write(text)
            stream.flush()
        except ValueError:
            pass  # stream closed at interpreter exit

    def stop(self) -> None:
        self._stopped = True
        self._stream.cancel()
