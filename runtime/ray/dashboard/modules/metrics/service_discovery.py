"""Prometheus file service discovery, written by the head's dashboard (Ray's PrometheusServiceDiscoveryWriter):
`<temp dir>/prom_metrics_service_discovery.json` lists every alive node's `<ip>:<MetricsExportPort>`,
rewritten atomically every `RAY_DASHBOARD_SD_INTERVAL_S` (5 s) when it changes. Point Prometheus at it with

    scrape_configs:
    - job_name: ray
      file_sd_configs: [{files: ['/tmp/ray/prom_metrics_service_discovery.json']}]
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

PROMETHEUS_SERVICE_DISCOVERY_FILE = "prom_metrics_service_discovery.json"


def targets(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    addresses = sorted(f"{n['NodeManagerAddress']}:{n['MetricsExportPort']}"
                       for n in nodes if n["Alive"] and n.get("MetricsExportPort"))
    return [{"labels": {"job": "ray"}, "targets": addresses}]


class ServiceDiscoveryWriter:
    def __init__(self, gcs: Any, temp_dir: str, interval_s: float | None = None):
        self._gcs = gcs
        self.path = os.path.join(temp_dir, PROMETHEUS_SERVICE_DISCOVERY_FILE)
        self.interval_s = interval_s or float(os.environ.get("RAY_DASHBOARD_SD_INTERVAL_S", 5))
        self._last = ""
        self._task: asyncio.Task | None = None

    def write_once(self) -> None:
        content = json.dumps(targets(self._gcs.get_all_node_info()))
        if content == self._last and os.path.exists(self.path):
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(content)
        os.replace(tmp, self.path)
        self._last = content

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.write_once)
            except Exception as e:
                logger.warning("Could not write %s: %s", self.path, e)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
