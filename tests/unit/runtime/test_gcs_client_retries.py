"""Both GCS clients ride over a GCS that stops: a stopping grpc server answers the calls that reach it with
CANCELLED (seen in CI: a worker node's raylet exited 0.2 s after its head got SIGTERM, and the job on that node
failed with LocalRayletDiedError), and such a call is retried like an unreachable GCS's, not given up on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from ray._common.gcs_client import AsyncGcsClient, GcsClient
from ray.protocol import gcs_pb2 as pb
from ray.protocol import gcs_pb2_grpc


class _StoppingThenBack(gcs_pb2_grpc.NodeInfoGcsServiceServicer):
    """Answers its first `refusals` calls as a stopping grpc server does, then as a GCS that is back."""

    def __init__(self, refusals: int, code: grpc.StatusCode = grpc.StatusCode.CANCELLED):
        self.refusals, self.code, self.calls = refusals, code, 0
        self._lock = threading.Lock()

    def CheckAlive(self, request, context):
        with self._lock:
            self.calls += 1
            refuse = self.calls <= self.refusals
        if refuse:
            context.abort(self.code, self.code.name)
        return pb.CheckAliveReply(ray_version="2.60.0")


@pytest.fixture
def gcs() -> Iterator[tuple[str, _StoppingThenBack]]:
    servicer = _StoppingThenBack(refusals=2)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    gcs_pb2_grpc.add_NodeInfoGcsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None)


def test_the_sync_client_retries_a_call_the_stopping_gcs_cancelled(gcs) -> None:
    address, servicer = gcs
    client = GcsClient(address, timeout_s=10)
    try:
        assert client.check_alive().ray_version == "2.60.0"
    finally:
        client.close()
    assert servicer.calls == 3


def test_the_raylets_async_client_retries_a_call_the_stopping_gcs_cancelled(gcs) -> None:
    address, servicer = gcs

    async def check() -> str:
        client = AsyncGcsClient(address, timeout_s=10)
        try:
            reply = await client.call(client.stubs.node.CheckAlive, pb.CheckAliveRequest())
            return reply.ray_version
        finally:
            await client.close()

    assert asyncio.run(check()) == "2.60.0"
    assert servicer.calls == 3


def test_a_gcs_that_never_comes_back_is_still_reported_lost(gcs) -> None:
    address, servicer = gcs
    servicer.refusals = 10**6
    client = GcsClient(address, timeout_s=1)
    try:
        with pytest.raises(ConnectionError, match=f"Could not reach the GCS at {address} \\(CANCELLED"):
            client.check_alive()
    finally:
        client.close()


def test_a_call_the_gcs_rejects_for_another_reason_fails_at_once(gcs) -> None:
    address, servicer = gcs
    servicer.code = grpc.StatusCode.INVALID_ARGUMENT
    client = GcsClient(address, timeout_s=10)
    try:
        with pytest.raises(ConnectionError, match="INVALID_ARGUMENT"):
            client.check_alive()
    finally:
        client.close()
    assert servicer.calls == 1
