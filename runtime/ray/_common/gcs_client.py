"""Clients of the GCS: `GcsClient` (synchronous, thread-safe) and `AsyncGcsClient` (grpc.aio).

Both retry while the GCS is unreachable (or stopping) for up to `timeout_s` (by default Ray's
`gcs_rpc_server_reconnect_timeout_s`, 60 s), so a client survives a GCS restart, then raise `ConnectionError` naming the address. A call the GCS refuses for its token raises
`AuthenticationError` at once, naming the token sources (never "Could not reach the GCS").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc

from ray._common.config import config
from ray._common.grpc_util import new_aio_channel, new_channel, too_large, unauthenticated
from ray.protocol import (
    actor_pb2_grpc,
    autoscaler_pb2_grpc,
    gcs_pb2_grpc,
    placement_group_pb2_grpc,
    state_pb2_grpc,
)
from ray.protocol import autoscaler_pb2 as apb
from ray.protocol import gcs_pb2 as pb

# CANCELLED too: a GCS that is stopping (SIGTERM: a head pod deleted, `ray stop`) answers the calls that reach
# it meanwhile with CANCELLED, not UNAVAILABLE (4 calls in each of 10 stops, 8 callers); its successor answers them.
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def node_info_to_dict(info: pb.GcsNodeInfo) -> dict[str, Any]:
    """A node as `ray.nodes()` shows it (Ray's keys)."""
    alive = info.state == pb.GcsNodeInfo.ALIVE
    return {
        "NodeID": info.node_id.hex(),
        "Alive": alive,
        "NodeManagerAddress": info.node_manager_address,
        "NodeManagerHostname": info.node_manager_hostname,
        "NodeManagerPort": info.node_manager_port,
        "ObjectManagerPort": info.object_manager_port,
        "ObjectStoreSocketName": info.object_store_socket_name,
        "RayletSocketName": info.raylet_socket_name,
        "MetricsExportPort": info.metrics_export_port,
        "NodeName": info.node_name or info.node_manager_address,
        "RuntimeEnvAgentPort": 0,
        "DeathReason": 0 if alive else (info.death_reason_code or 1),  # Ray's NodeDeathInfo.Reason
        "DeathReasonMessage": info.death_reason,
        "alive": alive,
        "Resources": dict(info.resources_total) if alive else {},
        "Labels": dict(info.labels),
        "IsHeadNode": info.is_head_node,
        "StartTimeMs": info.start_time_ms,
        "EndTimeMs": info.end_time_ms,
        "SessionDir": info.session_dir,
        "RayletTcpPort": info.raylet_tcp_port,
    }


def _ns(namespace: bytes | str | None) -> bytes:
    if namespace is None:
        return b""
    return namespace.encode() if isinstance(namespace, str) else namespace


class _Stubs:
    def __init__(self, channel):
        self.kv = gcs_pb2_grpc.InternalKVGcsServiceStub(channel)
        self.node = gcs_pb2_grpc.NodeInfoGcsServiceStub(channel)
        self.job = gcs_pb2_grpc.JobInfoGcsServiceStub(channel)
        self.pubsub = gcs_pb2_grpc.InternalPubSubGcsServiceStub(channel)
        self.actor = actor_pb2_grpc.ActorInfoGcsServiceStub(channel)
        self.placement_group = placement_group_pb2_grpc.PlacementGroupInfoGcsServiceStub(channel)
        self.autoscaler = autoscaler_pb2_grpc.AutoscalerStateServiceStub(channel)
        self.task_info = state_pb2_grpc.TaskInfoGcsServiceStub(channel)
        self.worker_info = state_pb2_grpc.WorkerInfoGcsServiceStub(channel)


class GcsClient:
    """Synchronous GCS client; one gRPC channel shared by all threads."""

    def __init__(self, address: str, timeout_s: float | None = None):
        if not isinstance(address, str) or ":" not in address:
            raise ValueError(f"GCS address must be 'host:port', got {address!r}.")
        self.address = address
        self.timeout_s = config().gcs_rpc_server_reconnect_timeout_s if timeout_s is None else timeout_s
        self._channel = new_channel(address)
        self._closed = False
        self.stubs = _Stubs(self._channel)

    def call(self, method: Callable, request, timeout_s: float | None = None):
        """Call a stub method, retrying while the GCS is unavailable."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        delay = 0.05
        while True:
            if self._closed:  # gRPC must not start a call on a channel another thread closed (it can crash)
                raise ConnectionError(f"The client of the GCS at {self.address} was closed (ray.shutdown()).")
            remaining = deadline - time.monotonic()
            try:
                return method(request, timeout=max(remaining, 0.1), wait_for_ready=True)
            except grpc.RpcError as e:
                if (reason := too_large(e)) is not None:
                    raise ValueError(reason) from e
                if (refused := unauthenticated(e, f"The GCS at {self.address}")) is not None:
                    raise refused from e
                if e.code() not in _RETRYABLE or time.monotonic() + delay >= deadline:
                    raise ConnectionError(
                        f"Could not reach the GCS at {self.address} ({e.code().name}: {e.details()}). "
                        "Is the Ray cluster running? Start one with 'ray start --head'."
                    ) from e
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def check_alive(self, timeout_s: float | None = None) -> pb.CheckAliveReply:
        return self.call(self.stubs.node.CheckAlive, pb.CheckAliveRequest(), timeout_s)

    def internal_kv_get(self, key: bytes, namespace: bytes | None = None) -> bytes | None:
        reply = self.call(self.stubs.kv.InternalKVGet, pb.InternalKVGetRequest(key=key, namespace=_ns(namespace)))
        return reply.value if reply.found else None

    def internal_kv_put(
        self, key: bytes, value: bytes, overwrite: bool = True, namespace: bytes | None = None
    ) -> int:
        req = pb.InternalKVPutRequest(key=key, value=value, overwrite=overwrite, namespace=_ns(namespace))
        return self.call(self.stubs.kv.InternalKVPut, req).added_num

    def internal_kv_del(self, key: bytes, del_by_prefix: bool = False, namespace: bytes | None = None) -> int:
        req = pb.InternalKVDelRequest(key=key, del_by_prefix=del_by_prefix, namespace=_ns(namespace))
        return self.call(self.stubs.kv.InternalKVDel, req).deleted_num

    def internal_kv_keys(self, prefix: bytes, namespace: bytes | None = None) -> list[bytes]:
        req = pb.InternalKVKeysRequest(prefix=prefix, namespace=_ns(namespace))
        return list(self.call(self.stubs.kv.InternalKVKeys, req).results)

    def internal_kv_exists(self, key: bytes, namespace: bytes | None = None) -> bool:
        req = pb.InternalKVExistsRequest(key=key, namespace=_ns(namespace))
        return self.call(self.stubs.kv.InternalKVExists, req).exists

    def get_all_node_info(self) -> list[dict]:
        reply = self.call(self.stubs.node.GetAllNodeInfo, pb.GetAllNodeInfoRequest())
        return [node_info_to_dict(n) for n in reply.node_info_list]

    def get_all_node_info_proto(self) -> list[pb.GcsNodeInfo]:
        return list(self.call(self.stubs.node.GetAllNodeInfo, pb.GetAllNodeInfoRequest()).node_info_list)

    def get_all_resource_usage(self) -> list[pb.NodeResources]:
        return list(self.call(self.stubs.node.GetAllResourceUsage, pb.GetAllResourceUsageRequest()).nodes)

    def get_placement_group_load(self) -> list[pb.PlacementGroupDemand]:
        """Placement groups waiting for their bundles (the demand snapshot's placement group part)."""
        return list(self.call(self.stubs.node.GetAllResourceUsage, pb.GetAllResourceUsageRequest()).placement_group_load)

    # autoscaler state service
    def get_cluster_resource_state(self, timeout_s: float | None = None) -> apb.ClusterResourceState:
        return self.call(self.stubs.autoscaler.GetClusterResourceState, apb.GetClusterResourceStateRequest(),
                         timeout_s).cluster_resource_state

    def get_cluster_status(self, timeout_s: float | None = None) -> apb.GetClusterStatusReply:
        return self.call(self.stubs.autoscaler.GetClusterStatus, apb.GetClusterStatusRequest(), timeout_s)

    def report_autoscaling_state(self, state: apb.AutoscalingState, timeout_s: float | None = None) -> None:
        self.call(self.stubs.autoscaler.ReportAutoscalingState,
                  apb.ReportAutoscalingStateRequest(autoscaling_state=state), timeout_s)

    def request_cluster_resource_constraint(self, bundles: list[dict[str, float]]) -> None:
        """`request_resources()`: the cluster should fit these bundles; [] clears the standing request."""
        counts: dict[tuple, int] = {}
        for bundle in bundles:
            key = tuple(sorted(bundle.items()))
            counts[key] = counts.get(key, 0) + 1
        constraint = apb.ClusterResourceConstraint(resource_requests=[
            apb.ResourceRequestByCount(request=apb.ResourceRequest(resources_bundle=dict(k)), count=n)
            for k, n in counts.items()])
        self.call(self.stubs.autoscaler.RequestClusterResourceConstraint,
                  apb.RequestClusterResourceConstraintRequest(cluster_resource_constraint=constraint))

    def drain_node(self, node_id: bytes, reason: int, reason_message: str = "", deadline_ms: int = 0,
                   timeout_s: float | None = None) -> apb.DrainNodeReply:
        req = apb.DrainNodeRequest(node_id=node_id, reason=reason, reason_message=reason_message,
                                   deadline_timestamp_ms=deadline_ms)
        return self.call(self.stubs.autoscaler.DrainNode, req, timeout_s)

    def get_all_job_info(self) -> list[pb.JobTableData]:
        return list(self.call(self.stubs.job.GetAllJobInfo, pb.GetAllJobInfoRequest()).job_info_list)

    def get_next_job_id(self) -> int:
        return self.call(self.stubs.job.GetNextJobID, pb.GetNextJobIDRequest()).job_id

    def add_job(self, data: pb.JobTableData) -> None:
        self.call(self.stubs.job.AddJob, pb.AddJobRequest(data=data))

    def mark_job_finished(self, job_id: bytes) -> None:
        self.call(self.stubs.job.MarkJobFinished, pb.MarkJobFinishedRequest(job_id=job_id))

    def publish(self, channel: str, key: bytes, data: bytes) -> None:
        msg = pb.PubMessage(channel=channel, key=key, data=data)
        self.call(self.stubs.pubsub.GcsPublish, pb.GcsPublishRequest(messages=[msg]))

    def subscribe(self, channels: list[str], key: bytes = b""):
        """An iterator of `PubMessage`s; call `.cancel()` on it to stop."""
        return self.stubs.pubsub.GcsSubscribe(pb.GcsSubscribeRequest(channels=channels, key=key))

    def close(self) -> None:
        self._closed = True
        self._channel.close()


class AsyncGcsClient:
    """The same calls as coroutines, over a grpc.aio channel (create it inside the running loop)."""

    def __init__(self, address: str, timeout_s: float | None = None):
        self.address = address
        self.timeout_s = config().gcs_rpc_server_reconnect_timeout_s if timeout_s is None else timeout_s
        self._channel = new_aio_channel(address)
        self.stubs = _Stubs(self._channel)

    async def call(self, method: Callable, request, timeout_s: float | None = None):
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        delay = 0.05
        while True:
            remaining = deadline - time.monotonic()
            try:
                return await method(request, timeout=max(remaining, 0.1), wait_for_ready=True)
            except grpc.RpcError as e:
                if (reason := too_large(e)) is not None:
                    raise ValueError(reason) from e
                if (refused := unauthenticated(e, f"The GCS at {self.address}")) is not None:
                    raise refused from e
                if e.code() not in _RETRYABLE or time.monotonic() + delay >= deadline:
                    raise ConnectionError(
                        f"Could not reach the GCS at {self.address} ({e.code().name}: {e.details()})."
                    ) from e
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def internal_kv_get(self, key: bytes, namespace: bytes | None = None) -> bytes | None:
        reply = await self.call(
            self.stubs.kv.InternalKVGet, pb.InternalKVGetRequest(key=key, namespace=_ns(namespace))
        )
        return reply.value if reply.found else None

    async def internal_kv_put(
        self, key: bytes, value: bytes, overwrite: bool = True, namespace: bytes | None = None
    ) -> int:
        req = pb.InternalKVPutRequest(key=key, value=value, overwrite=overwrite, namespace=_ns(namespace))
        return (await self.call(self.stubs.kv.InternalKVPut, req)).added_num

    async def internal_kv_del(
        self, key: bytes, del_by_prefix: bool = False, namespace: bytes | None = None
    ) -> int:
        req = pb.InternalKVDelRequest(key=key, del_by_prefix=del_by_prefix, namespace=_ns(namespace))
        return (await self.call(self.stubs.kv.InternalKVDel, req)).deleted_num

    async def internal_kv_keys(self, prefix: bytes, namespace: bytes | None = None) -> list[bytes]:
        req = pb.InternalKVKeysRequest(prefix=prefix, namespace=_ns(namespace))
        return list((await self.call(self.stubs.kv.InternalKVKeys, req)).results)

    async def internal_kv_exists(self, key: bytes, namespace: bytes | None = None) -> bool:
        req = pb.InternalKVExistsRequest(key=key, namespace=_ns(namespace))
        return (await self.call(self.stubs.kv.InternalKVExists, req)).exists

    async def get_all_node_info(self) -> list[dict]:
        reply = await self.call(self.stubs.node.GetAllNodeInfo, pb.GetAllNodeInfoRequest())
        return [node_info_to_dict(n) for n in reply.node_info_list]

    async def close(self) -> None:
        await self._channel.close()
