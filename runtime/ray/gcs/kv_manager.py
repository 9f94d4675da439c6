"""The internal KV service (function table, packages, job info, autoscaler state...)."""

from __future__ import annotations

from ray.gcs.storage import StoreClient
from ray.protocol import gcs_pb2 as pb
from ray.protocol import gcs_pb2_grpc

KV_TABLE = "KV"


def _full_key(namespace: bytes, key: bytes) -> bytes:
    # Ray prefixes keys with "@namespace_<ns>:" so namespaces never collide.
    return b"@namespace_" + namespace + b":" + key if namespace else key


class InternalKVManager(gcs_pb2_grpc.InternalKVGcsServiceServicer):
    def __init__(self, storage: StoreClient):
        self._storage = storage

    async def InternalKVGet(self, request, context):
        value = await self._storage.get(KV_TABLE, _full_key(request.namespace, request.key))
        return pb.InternalKVGetReply(found=value is not None, value=value or b"")

    async def InternalKVPut(self, request, context):
        added = await self._storage.put(
            KV_TABLE, _full_key(request.namespace, request.key), request.value, request.overwrite
        )
        return pb.InternalKVPutReply(added_num=int(added))

    async def InternalKVDel(self, request, context):
        full = _full_key(request.namespace, request.key)
        if request.del_by_prefix:
            keys = await self._storage.keys(KV_TABLE, full)
        else:
            keys = [full]
        deleted = 0
        for k in keys:
            deleted += await self._storage.delete(KV_TABLE, k)
        return pb.InternalKVDelReply(deleted_num=deleted)

    async def InternalKVKeys(self, request, context):
        ns_prefix = _full_key(request.namespace, b"")
        keys = await self._storage.keys(KV_TABLE, ns_prefix + request.prefix)
        return pb.InternalKVKeysReply(results=[k[len(ns_prefix) :] for k in keys])

    async def InternalKVExists(self, request, context):
        exists = await self._storage.exists(KV_TABLE, _full_key(request.namespace, request.key))
        return pb.InternalKVExistsReply(exists=exists)
