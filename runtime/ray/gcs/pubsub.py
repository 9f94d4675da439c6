"""GCS pub/sub: publishers post messages on named channels; subscribers hold a server stream open."""

from __future__ import annotations

import asyncio
import itertools

from ray.protocol import gcs_pb2 as pb
from ray.protocol import gcs_pb2_grpc

# A subscriber that falls this far behind is dropped rather than letting the GCS grow without bound.
MAX_QUEUED_PER_SUBSCRIBER = 10_000


class Publisher:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue]] = {}
        self._seq = itertools.count(1)

    def publish(self, channel: str, key: bytes, data: bytes) -> None:
        msg = pb.PubMessage(channel=channel, key=key, data=data, sequence_id=next(self._seq))
        for queue in list(self._subscribers.get(channel, ())):
            if queue.qsize() < MAX_QUEUED_PER_SUBSCRIBER:
                queue.put_nowait(msg)

    def subscribe(self, channels: list[str]) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        for ch in channels:
            self._subscribers.setdefault(ch, set()).add(queue)
        return queue

    def unsubscribe(self, channels: list[str], queue: asyncio.Queue) -> None:
        for ch in channels:
            self._subscribers.get(ch, set()).discard(queue)


class PubSubService(gcs_pb2_grpc.InternalPubSubGcsServiceServicer):
    def __init__(self, publisher: Publisher):
        self._publisher = publisher

    async def GcsPublish(self, request, context):
        for m in request.messages:
            self._publisher.publish(m.channel, m.key, m.data)
        return pb.GcsPublishReply()

    async def GcsSubscribe(self, request, context):
        channels = list(request.channels)
        queue = self._publisher.subscribe(channels)
        try:
            while True:
                msg = await queue.get()
                if request.key and msg.key != request.key:
                    continue
                yield msg
        finally:
            self._publisher.unsubscribe(channels, queue)
