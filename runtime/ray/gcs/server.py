"""The GCS server process: `python -m ray.gcs.server --port P --node-ip-address IP --session-dir S`.

Without Redis its tables live in memory and die with it. With `--redis-address` (or RAY_REDIS_ADDRESS, with
`--redis-password`/REDIS_PASSWORD) every table is kept in Redis under RAY_external_storage_namespace; a GCS
started again on the same port and namespace loads them and takes the cluster over: the same cluster id,
the nodes alive (each given a fresh health-check grace period), jobs, KV (packages, function table), placement
groups and actors, whose workers it reconnects to (see `ActorManager.load`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

import grpc

from ray._common import lifetime
from ray._common.config import config
from ray._common.grpc_util import new_server
from ray._common.net import bind_host
from ray._version import version as ray_version
from ray.gcs.actor_manager import add_actor_service
from ray.gcs.autoscaler_state_manager import AutoscalerStateManager
from ray.gcs.job_manager import JobManager
from ray.gcs.kv_manager import InternalKVManager
from ray.gcs.node_manager import NodeManager
from ray.gcs.placement_group_manager import add_placement_group_service
from ray.gcs.pubsub import Publisher, PubSubService
from ray.gcs.storage import InMemoryStoreClient, StoreClient
from ray.gcs.task_manager import add_task_info_service
from ray.gcs.worker_manager import add_worker_info_service
from ray.protocol import autoscaler_pb2_grpc, gcs_pb2_grpc

logger = logging.getLogger("ray.gcs")
CLUSTER_TABLE = "CLUSTER"


def make_storage(redis_address: str, redis_password: str = "", redis_username: str = "") -> StoreClient:
    """Redis when an address is given, else memory."""
    if not redis_address:
        return InMemoryStoreClient()
    from ray.gcs.redis_store import RedisStoreClient

    return RedisStoreClient(redis_address, redis_password, redis_username, config().external_storage_namespace)


class GcsServer:
    def __init__(self, storage: StoreClient | None = None, session_name: str = ""):
        self.storage = storage or InMemoryStoreClient()
        self.publisher = Publisher()
        self.cluster_id = os.urandom(28)  # replaced by the stored one when the tables outlive a GCS
        self.kv = InternalKVManager(self.storage)
        self.nodes = NodeManager(self.storage, self.publisher, self.cluster_id, ray_version)
        self.jobs = JobManager(self.storage, self.publisher)
        self.autoscaler_state = AutoscalerStateManager(self, session_name)
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        stored_id = await self.storage.get(CLUSTER_TABLE, b"cluster_id")
        if stored_id:
            self.cluster_id = stored_id
            self.nodes.cluster_id = stored_id
            logger.info("Found the tables of cluster %s in storage: taking it over.", stored_id.hex())
        else:
            await self.storage.put(CLUSTER_TABLE, b"cluster_id", self.cluster_id)
        await self.nodes.load()
        await self.jobs.load()
        self.server = new_server([("grpc.so_reuseport", 0)])
        gcs_pb2_grpc.add_InternalKVGcsServiceServicer_to_server(self.kv, self.server)
        gcs_pb2_grpc.add_NodeInfoGcsServiceServicer_to_server(self.nodes, self.server)
        gcs_pb2_grpc.add_JobInfoGcsServiceServicer_to_server(self.jobs, self.server)
        gcs_pb2_grpc.add_InternalPubSubGcsServiceServicer_to_server(PubSubService(self.publisher), self.server)
        autoscaler_pb2_grpc.add_AutoscalerStateServiceServicer_to_server(self.autoscaler_state, self.server)
        self.actors = add_actor_service(self, self.server)
        self.placement_groups = add_placement_group_service(self, self.server)
        self.task_manager = add_task_info_service(self, self.server)
        self.worker_manager = add_worker_info_service(self, self.server)
        await self.placement_groups.load()
        await self.actors.load()
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"GCS could not bind {host}:{port}; is another Ray cluster using that port?")
        await self.server.start()
        self._health_task = asyncio.get_running_loop().create_task(self.nodes.run_health_checks())
        self._restored_task = asyncio.get_running_loop().create_task(self.nodes.keep_restored_nodes_alive())
        self.placement_groups.start()
        return self.port

    async def stop(self) -> None:
        self._health_task.cancel()
        self._restored_task.cancel()
        self.placement_groups.stop()
        self.autoscaler_state.close()
        if self.server:
            await self.server.stop(grace=0.5)


async def _serve(args: argparse.Namespace) -> None:
    storage = make_storage(args.redis_address, args.redis_password, args.redis_username)
    if hasattr(storage, "connect"):
        await storage.connect()
        logger.info("GCS tables in Redis at %s, namespace %r", args.redis_address,
                    config().external_storage_namespace)
    server = GcsServer(storage, session_name=os.path.basename(args.session_dir.rstrip("/")) if args.session_dir else "")
    port = await server.start(bind_host(args.node_ip_address), args.port)
    logger.info("GCS server listening on %s:%d", args.node_ip_address, port)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenRay GCS server")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--node-ip-address", default="127.0.0.1")
    parser.add_argument("--session-dir", default=None)
    parser.add_argument("--port-file", default=None, help="write the bound port here once serving")
    parser.add_argument("--redis-address", default=os.environ.get("RAY_REDIS_ADDRESS", ""),
                        help="keep the GCS tables in this Redis (host:port); default $RAY_REDIS_ADDRESS")
    parser.add_argument("--redis-password", default=os.environ.get("REDIS_PASSWORD", ""),
                        help="Redis password; default $REDIS_PASSWORD")
    parser.add_argument("--redis-username", default=os.environ.get("REDIS_USERNAME", ""),
                        help="Redis user (ACL); default $REDIS_USERNAME")
    args = parser.parse_args(argv)
    lifetime.die_with_parent()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    tune_gc()
    asyncio.run(_serve(args))


def tune_gc() -> None:
    """The GCS holds tables of many small objects (up to 100,000 task attempts). With Python's default thresholds
    (a young collection every 700 allocations) a burst of task events ran the collector over the whole table so
    often that it was most of what ingesting them cost (22 -> 7.5 us of CPU per task, in-process). Young
    collections every 10,000 allocations, and what start-up imported (modules, functions: alive for good) out
    of the collector's sight."""
    gc.set_threshold(10_000, 10, 10)
    gc.freeze()


if __name__ == "__main__":
    main()
