"""The GCS's worker table (Ray's GcsWorkerManager): every worker and driver raylets report, alive or ended.

Ended ones are kept up to `maximum_gcs_dead_worker_cached_count`, the oldest forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict

from ray._common.config import config
from ray.protocol import state_pb2 as spb
from ray.protocol import state_pb2_grpc


class GcsWorkerManager(state_pb2_grpc.WorkerInfoGcsServiceServicer):
    def __init__(self, max_dead: int | None = None):
        self.max_dead = config().maximum_gcs_dead_worker_cached_count if max_dead is None else max_dead
        self._alive: dict[str, spb.WorkerTableData] = {}
        self._dead: OrderedDict[str, spb.WorkerTableData] = OrderedDict()

    async def ReportWorkerInfo(self, request, context):
        for data in request.workers:
            self.report(data)
        return spb.ReportWorkerInfoReply()

    def report(self, data: spb.WorkerTableData) -> None:
        if data.is_alive:
            if data.worker_id not in self._dead:
                self._alive[data.worker_id] = data
            return
        self._alive.pop(data.worker_id, None)
        self._dead[data.worker_id] = data
        while len(self._dead) > self.max_dead:
            self._dead.popitem(last=False)

    def on_node_dead(self, node_hex: str) -> None:
        """Workers of a dead node are dead too."""
        for data in list(self._alive.values()):
            if data.node_id == node_hex:
                ended = spb.WorkerTableData()
                ended.CopyFrom(data)
                ended.is_alive = False
                ended.exit_type = "SYSTEM_ERROR"
                ended.exit_detail = "The node running the worker died."
                self.report(ended)

    async def GetAllWorkerInfo(self, request, context):
        workers = [*self._alive.values(), *self._dead.values()]
        total = len(workers)
        if request.limit > 0:
            workers = workers[: request.limit]
        return spb.GetAllWorkerInfoReply(worker_table_data=workers, total=total)


def add_worker_info_service(gcs_server, grpc_server) -> GcsWorkerManager:
    manager = GcsWorkerManager()
    state_pb2_grpc.add_WorkerInfoGcsServiceServicer_to_server(manager, grpc_server)

    async def on_node_dead(node_id: bytes) -> None:
        manager.on_node_dead(node_id.hex())

    gcs_server.nodes.on_node_dead.append(on_node_dead)
    return manager
