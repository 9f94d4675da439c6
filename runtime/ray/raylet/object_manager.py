"""The node's object manager: copies of other nodes' objects, pulled into this node's store (Ray's
ObjectManager and PullManager): one pull per object, however many of the node's processes want it.

A core worker that needs a value held on another node asks its raylet (`PULL_OBJECT`). The raylet pulls it from
the holding node's raylet (`READ_OBJECT`: chunks of `object_manager_default_chunk_size`, a few in flight on one
connection) straight into `<shm_dir>/<id>.pull.tmp`: each chunk's range is allocated and mapped off the event
loop, and the chunk comes as a raw reply (`framing.RawReply`) that the connection receives into that mapping, so
the kernel's copy out of the socket is the only copy on this side. The file is renamed to the object's name
(sealed) and booked in the store as a copy; the worker then maps it like any object of its node, and so do
the node's other readers, without another pull. Requests for an object already being pulled wait for that pull.

The holding side maps the requested range read-only under a shared lock (a freed object's recycled segment is
not rewritten while it is sent) and hands the view to the transport, which writes from those pages. It records
which raylets copied each object and forwards the owner's FREE_OBJECTS to them. Copies are secondary: the
store evicts them before it spills a primary (`object_store.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os

from ray._common import framing, recycled_segments
from ray._common.config import config
from ray.protocol import messages as msg
from ray.protocol.messages import handles
from ray.raylet.object_store import LocalObjectStore, map_file_range

logger = logging.getLogger(__name__)

# Chunks requested at once per pull: one in the socket, the next ones mapped and asked for behind it.
CHUNKS_IN_FLIGHT = 3


class ObjectManager:
    def __init__(self, store: LocalObjectStore, handler: framing.Handler) -> None:
        self.store = store
        self.address = ""  # this raylet's host:port, once it listens: holders send frees of our copies there
        self._peers = framing.ConnectionPool(handler)
        self._pulls: dict[str, asyncio.Future] = {}
        self._copied_to: dict[str, set[str]] = {}  # object held here -> raylets that pulled a copy of it
        self.num_pulls = 0
        self.pulled_bytes_total = 0
        self.num_pull_requests = 0

    def stats(self) -> dict:
        return {"num_pulls": self.num_pulls, "pulled_bytes_total": self.pulled_bytes_total,
                "num_pull_requests": self.num_pull_requests, "pulls_in_progress": len(self._pulls)}

    def close(self) -> None:
        self._peers.close_all()

    # ------------------------------------------------------------------ the pulling side
    @handles(msg.PULL_OBJECT)
    async def pull_object(self, conn: framing.Connection, body: msg.PullObject) -> bool:
        """A process of this node needs a copy of another node's object here; True once it is in this node's
        store, False if it could not be pulled (its holder is gone, or no longer has it)."""
        oid = body["object_id"]
        self.num_pull_requests += 1
        if self.store.restore(oid):  # here already (a copy another reader asked for), or spilled here
            return True
        pull = self._pulls.get(oid)
        if pull is None:
            pull = asyncio.ensure_future(self._pull(oid, body["size"], body["source"]))
            self._pulls[oid] = pull
            pull.add_done_callback(lambda _done, oid=oid: self._pulls.pop(oid, None))
        return await asyncio.shield(pull)

    async def _pull(self, oid: str, size: int, source: str) -> bool:
        path = os.path.join(self.store.shm_dir, oid)
        tmp = f"{path}.pull.tmp"
        chunk = max(1, config().object_manager_default_chunk_size)
        fd = recycled_segments.claim(self.store.shm_dir, size, tmp) if size >= recycled_segments.MIN_SEGMENT_BYTES else None
        if fd is None:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            conn = await self._peers.get(source)
            in_flight = asyncio.Semaphore(CHUNKS_IN_FLIGHT)

            async def pull_range(offset: int) -> None:
                length = min(chunk, size - offset)
                async with in_flight:
                    # Allocating the range's pages costs as much as receiving them: done off the loop, while
                    # the chunk before it is in the socket.
                    dest = await asyncio.to_thread(map_file_range, fd, offset, length, True)
                    got = await conn.request_into(msg.READ_OBJECT, {"object_id": oid, "offset": offset,
                                                                   "length": length, "copy_at": self.address}, dest)
                if got != length:
                    raise LookupError(f"the raylet at {source} no longer holds object {oid}")

            results = await asyncio.gather(*(pull_range(offset) for offset in range(0, size, chunk)),
                                           return_exceptions=True)  # all done: nothing writes into the file now
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed
            os.rename(tmp, path)
        except (OSError, LookupError, framing.RemoteError) as e:  # ConnectionLost is an OSError
            logger.warning("Could not pull object %s (%d bytes) from %s: %s", oid, size, source, e)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            return False
        finally:
            # A claimed segment came exclusively locked, and the range mappings hold duplicates of this
            # descriptor: unlock explicitly, or readers of the copy would wait for those mappings to go.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self.num_pulls += 1
        self.pulled_bytes_total += size
        self.store.on_created(oid, size, copy=True)
        return True

    # ------------------------------------------------------------------ the holding side
    @handles(msg.READ_OBJECT)
    async def read_object(self, conn: framing.Connection, body: msg.ReadObject) -> framing.RawReply | None:
        """Another node pulls a chunk of an object held here (in memory or spilled): sent raw from the file's
        pages, mapped off the event loop; None if it is not here."""
        oid = body["object_id"]
        view = await asyncio.to_thread(self.store.map_range, oid, body["offset"], body["length"])
        if view is None:
            return None
        if body.get("copy_at"):
            self._copied_to.setdefault(oid, set()).add(body["copy_at"])
        return framing.RawReply(view)

    def freed(self, oids: list[str]) -> None:
        """The owner freed these objects: so are the copies other nodes pulled of them."""
        by_node: dict[str, list[str]] = {}
        for oid in oids:
            for address in self._copied_to.pop(oid, ()):
                by_node.setdefault(address, []).append(oid)
        for address, copies in by_node.items():
            asyncio.get_running_loop().create_task(self._free_copies(address, copies))

    async def _free_copies(self, address: str, oids: list[str]) -> None:
        try:
            conn = await self._peers.get(address)
            conn.notify(msg.FREE_OBJECTS, {"object_ids": oids})
        except OSError:  # that node is gone, and its copies with it
            pass
