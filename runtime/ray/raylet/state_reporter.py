"""What the raylet tells the GCS for the state API: its core workers' task events (forwarded unparsed) and
the workers and drivers that start and end on this node (Ray's worker table, `ray list workers`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ray.protocol import state_pb2 as spb

logger = logging.getLogger(__name__)

REPORT_PERIOD_S = 0.5


class StateReporter:
    def __init__(self, node_id: str, node_ip: str):
        self.node_id = node_id
        self.node_ip = node_ip
        self.gcs = None  # the node manager's AsyncGcsClient, set once it has one
        self._workers: dict[str, spb.WorkerTableData] = {}  # alive workers and drivers of this node
        self._pending: list[spb.WorkerTableData] = []
        self._task: asyncio.Task | None = None
        self._sends: set[asyncio.Task] = set()

    def start(self, gcs) -> None:
        self.gcs = gcs
        self._task = asyncio.get_running_loop().create_task(self._loop())

    # ------------------------------------------------------------------ task events
    def forward_task_events(self, batch: bytes) -> None:
        if self.gcs is None:
            return
        task = asyncio.get_running_loop().create_task(self._send_events(batch))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_events(self, batch: bytes) -> None:
        try:
            await self.gcs.call(self.gcs.stubs.task_info.AddTaskEventData,
                                spb.AddTaskEventDataRequest(batch=batch), timeout_s=10)
        except (ConnectionError, ValueError) as e:
            logger.debug("Dropped a batch of task events: %s", e)

    # ------------------------------------------------------------------ workers
    def started(self, worker_id: str, worker_type: str, pid: int, job_id: str, launch_time_ms: int = 0) -> None:
        now = int(time.time() * 1000)
        data = spb.WorkerTableData(worker_id=worker_id, node_id=self.node_id, ip=self.node_ip, pid=pid,
                                   worker_type=worker_type, is_alive=True, job_id=job_id,
                                   worker_launch_time_ms=launch_time_ms or now, worker_launched_time_ms=now,
                                   start_time_ms=now)
        self._workers[worker_id] = data
        self._pending.append(data)

    def ended(self, worker_id: str, exit_type: str, exit_detail: str) -> None:
        data = self._workers.pop(worker_id, None)
        if data is None:
            return
        ended = spb.WorkerTableData()
        ended.CopyFrom(data)
        ended.is_alive = False
        ended.exit_type = exit_type
        ended.exit_detail = exit_detail
        ended.end_time_ms = int(time.time() * 1000)
        self._pending.append(ended)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_PERIOD_S)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending or self.gcs is None:
            return
        batch, self._pending = self._pending, []
        with contextlib.suppress(ConnectionError, ValueError):
            await self.gcs.call(self.gcs.stubs.worker_info.ReportWorkerInfo,
                                spb.ReportWorkerInfoRequest(workers=batch), timeout_s=5)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
