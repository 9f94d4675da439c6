"""Job table: job ids, drivers, and their finish."""

from __future__ import annotations

import time

from ray.gcs.pubsub import Publisher
from ray.gcs.storage import StoreClient
from ray.protocol import gcs_pb2 as pb
from ray.protocol import gcs_pb2_grpc

JOB_TABLE = "JOB"
JOB_CHANNEL = "JOB"


class JobManager(gcs_pb2_grpc.JobInfoGcsServiceServicer):
    def __init__(self, storage: StoreClient, publisher: Publisher):
        self._storage = storage
        self._publisher = publisher
        self._jobs: dict[bytes, pb.JobTableData] = {}
        self._next_job_id = 1
        self.on_job_finished: list = []  # callbacks(job_id: bytes)

    async def load(self) -> None:
        for value in (await self._storage.get_all(JOB_TABLE)).values():
            job = pb.JobTableData.FromString(value)
            self._jobs[job.job_id] = job
            self._next_job_id = max(self._next_job_id, int.from_bytes(job.job_id, "little") + 1)

    def job(self, job_id: bytes) -> pb.JobTableData | None:
        return self._jobs.get(job_id)

    async def GetNextJobID(self, request, context):
        job_id = self._next_job_id
        self._next_job_id += 1
        return pb.GetNextJobIDReply(job_id=job_id)

    async def AddJob(self, request, context):
        job = pb.JobTableData()
        job.CopyFrom(request.data)
        job.start_time = job.start_time or int(time.time() * 1000)
        self._jobs[job.job_id] = job
        await self._storage.put(JOB_TABLE, job.job_id, job.SerializeToString())
        self._publisher.publish(JOB_CHANNEL, job.job_id, job.SerializeToString())
        return pb.AddJobReply()

    async def MarkJobFinished(self, request, context):
        await self.mark_finished(request.job_id, request.driver_failed, request.driver_exit_detail)
        return pb.MarkJobFinishedReply()

    async def mark_finished(self, job_id: bytes, driver_failed: bool = False, detail: str = "") -> None:
        """The first report wins: a driver's own (clean or not) comes before its raylet's, which only sees the
        connection close and so reports a failure."""
        job = self._jobs.get(job_id)
        if job is None or job.is_dead:
            return
        job.is_dead = True
        job.driver_failed = driver_failed
        job.driver_exit_detail = detail
        job.end_time = int(time.time() * 1000)
        await self._storage.put(JOB_TABLE, job_id, job.SerializeToString())
        self._publisher.publish(JOB_CHANNEL, job_id, job.SerializeToString())
        for callback in self.on_job_finished:
            await callback(job_id)

    async def GetAllJobInfo(self, request, context):
        return pb.GetAllJobInfoReply(job_info_list=list(self._jobs.values()))
