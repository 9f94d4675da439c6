"""`python -m ray.dashboard.dashboard`: the dashboard HTTP server on the head node.

    python -m ray.dashboard.dashboard --host H --port P --gcs-address A --session-dir S --node-ip-address IP

Logs to `<session_dir>/logs/dashboard.log`. All state is in the GCS, so it can be restarted freely.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any, Protocol

from aiohttp import web

from ray._common import auth, auth_http, lifetime
from ray._common.runtime_env.agent_registry import AgentAddress, agent_by_ip, agent_by_node_id
from ray._common.session_logs import log_to_session_file
from ray.dashboard.modules import ui, version
from ray.dashboard.modules.job.common import InternalKV, JobInfoStorage
from ray.dashboard.modules.job.job_head import JobHead
from ray.dashboard.modules.job.job_manager import ClusterView, JobManager
from ray.dashboard.modules.job.job_runner import LocalJobRunner
from ray.dashboard.modules.job.sdk import DASHBOARD_ADDRESS_KEY, DASHBOARD_KV_NAMESPACE
from ray.dashboard.modules.log.log_head import LogHead
from ray.dashboard.modules.metrics.service_discovery import ServiceDiscoveryWriter
from ray.dashboard.modules.node.node_head import NodeHead
from ray.dashboard.modules.state.aggregator import StateAggregator
from ray.dashboard.modules.state.objects import ObjectsSource
from ray.dashboard.modules.state.state_head import StateHead

logger = logging.getLogger("ray.dashboard")

DEFAULT_DASHBOARD_HOST = "127.0.0.1"
DEFAULT_DASHBOARD_PORT = 8265
# Ray's DASHBOARD_CLIENT_MAX_SIZE: the largest request body (working_dir uploads go up to it).
CLIENT_MAX_SIZE = 100 * 1024 * 1024
# `/api/gcs_healthz` fails when the GCS does not answer CheckAlive within this long.
GCS_HEALTHZ_TIMEOUT_S = 2
# How often the dashboard checks that the GCS is there; it exits once the GCS has been gone for
# gcs_rpc_server_reconnect_timeout_s (as Ray's dashboard exits after too many GCS RPC errors).
GCS_CHECK_ALIVE_PERIOD_S = 2


@web.middleware
async def refuse_large_bodies(request: web.Request, handler):
    """413 from the Content-Length alone, before a byte of an oversized body is read."""
    if request.content_length is not None and request.content_length > CLIENT_MAX_SIZE:
        raise web.HTTPRequestEntityTooLarge(
            max_size=CLIENT_MAX_SIZE, actual_size=request.content_length,
            text=f"The request body ({request.content_length / 2**20:.1f} MiB) is over the dashboard's limit of "
                 f"{CLIENT_MAX_SIZE / 2**20:.0f} MiB. For a working_dir or py_modules package, leave large files "
                 "out with runtime_env 'excludes' or put them behind a remote URI.")
    return await handler(request)


class GcsLike(InternalKV, Protocol):
    def internal_kv_exists(self, key: bytes, namespace: bytes | None = None) -> bool: ...

    def get_all_node_info(self) -> list[dict[str, Any]]: ...


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ray.dashboard.dashboard", description="OpenRay dashboard")
    parser.add_argument("--host", default=DEFAULT_DASHBOARD_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_DASHBOARD_PORT)
    parser.add_argument("--gcs-address", required=True, help="host:port of the GCS")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--node-ip-address", default="127.0.0.1")
    return parser.parse_args(argv)


class AgentLocator:
    """Finds node agents in the GCS KV."""

    def __init__(self, gcs: GcsLike, node_ip: str):
        self._kv = gcs
        self._gcs = gcs
        self._node_ip = node_ip
        self._local: AgentAddress | None = None

    def local(self) -> AgentAddress | None:
        """The head node's agent: found by the head's node id (several nodes may share this IP on one
        machine), or by IP while no raylet has registered the head yet."""
        if self._local is None:
            try:
                heads = [n for n in self._gcs.get_all_node_info() if n.get("IsHeadNode") and n.get("Alive")]
                if heads:
                    self._local = agent_by_node_id(self._kv, heads[0]["NodeID"])
                else:
                    self._local = agent_by_ip(self._kv, self._node_ip)
            except Exception:
                logger.exception("Looking up the local agent failed.")
        return self._local

    def local_grpc_address(self) -> str:
        agent = self.local()
        return agent.grpc_address if agent else ""

    def for_node(self, node_id: str) -> AgentAddress | None:
        return agent_by_node_id(self._kv, node_id)


def build_app(gcs: GcsLike, gcs_address: str, session_dir: str, node_ip: str) -> tuple[web.Application, JobManager]:
    """The aiohttp application with every route; `gcs` is a GcsClient. While token authentication is on
    (the default) only requests with the cluster's token reach a route, health checks and the login page
    aside (`ray._common.auth_http`)."""
    token = auth.process_token()
    hint = os.environ.get(auth.HINT_ENV) or None
    middlewares = [refuse_large_bodies]
    if token is not None:
        middlewares.insert(0, auth_http.token_middleware(token, auth_http.DASHBOARD_PUBLIC_PATHS, login_page=True,
                                                         hint=hint))
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=middlewares)
    auth_http.add_login_routes(app, token, hint)
    agents = AgentLocator(gcs, node_ip)
    runner = LocalJobRunner(gcs_address, session_dir, agents.local_grpc_address)
    cluster = ClusterView(nodes=gcs.get_all_node_info, agent_for_node=agents.for_node, local_agent=agents.local)
    manager = JobManager(JobInfoStorage(gcs), runner, cluster)

    def gcs_alive() -> bool:
        gcs.check_alive(timeout_s=GCS_HEALTHZ_TIMEOUT_S)  # a GCS that is gone fails this in seconds
        return True

    version.add_routes(app, session_dir, gcs_alive)
    job_head = JobHead(manager, gcs)
    job_head.add_routes(app)
    ui.add_routes(app)
    node_head = NodeHead(gcs, session_dir)
    if hasattr(gcs, "stubs"):  # a real GcsClient (tests may pass a KV-only stand-in)
        objects = ObjectsSource(gcs)
        StateHead(StateAggregator(gcs, job_head.all_job_details, objects.rows, agents=node_head.agents,
                                  cluster_events=lambda: list(node_head.history.events))).add_routes(app)
    node_head.add_routes(app)
    LogHead(gcs, node_head.agents).add_routes(app)
    service_discovery = ServiceDiscoveryWriter(gcs, os.path.dirname(os.path.normpath(session_dir)))

    async def on_startup(app: web.Application) -> None:
        manager.start()
        service_discovery.start()

    async def on_cleanup(app: web.Application) -> None:
        await manager.close()
        await service_discovery.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app, manager


async def serve(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT, or until `stop` is set when the caller owns the signals."""
    from ray._common.gcs_client import GcsClient

    gcs = GcsClient(args.gcs_address)
    app, _ = build_app(gcs, args.gcs_address, args.session_dir, args.node_ip_address)
    runner = web.AppRunner(app, access_log=logger)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    logger.info("Dashboard listening on http://%s:%d (GCS %s)", args.host, args.port, args.gcs_address)
    # Ray's clients find the dashboard from a cluster address through this key.
    advertised = args.node_ip_address if args.host in ("0.0.0.0", "::", "") else args.host
    await asyncio.to_thread(
        gcs.internal_kv_put, DASHBOARD_ADDRESS_KEY, f"{advertised}:{args.port}".encode(), True, DASHBOARD_KV_NAMESPACE
    )
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_gcs(gcs, stop))
    await stop.wait()
    watcher.cancel()
    await runner.cleanup()
    gcs.close()
    if watcher.done() and not watcher.cancelled() and watcher.result():
        raise ConnectionError(watcher.result())


async def _watch_gcs(gcs: Any, stop: asyncio.Event) -> str | None:
    """Sets `stop` (and returns why) once the GCS has been unreachable for gcs_rpc_server_reconnect_timeout_s."""
    from ray._common.config import config

    limit = config().gcs_rpc_server_reconnect_timeout_s
    loop = asyncio.get_running_loop()
    failing_since: float | None = None
    while not stop.is_set():
        await asyncio.sleep(GCS_CHECK_ALIVE_PERIOD_S)
        try:
            await asyncio.to_thread(gcs.check_alive, GCS_HEALTHZ_TIMEOUT_S)
            failing_since = None
        except Exception as e:
            now = loop.time()
            failing_since = failing_since or now
            if now - failing_since >= limit:
                why = (f"Dashboard exiting because it could not reach the GCS at {gcs.address} for {limit} s "
                       f"(gcs_rpc_server_reconnect_timeout_s): {e}")
                logger.error(why)
                stop.set()
                return why
    return None


def main(argv: list[str] | None = None) -> None:
    lifetime.die_with_parent()  # a driver's local cluster goes when the driver does, crashed or not
    args = parse_args(argv)
    log_to_session_file(args.session_dir, "dashboard.log")
    try:
        asyncio.run(serve(args))
    except OSError as e:
        logger.error("The dashboard could not start: %s", e)
        print(f"The dashboard could not listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        logger.exception("The dashboard failed.")
        sys.exit(1)


if __name__ == "__main__":
    main()
