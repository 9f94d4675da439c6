"""`python -m ray.agent`: the per-node agent process.

Also runs the supervisors of jobs the head places on this node (`/api/job_agent/jobs/...`).

Serves the runtime env gRPC service on --grpc-port and HTTP on --http-port (Ray's
--dashboard-agent-listen-port, 52365): health endpoints (`GET /api/healthz` and `GET /api/local_raylet_healthz`
answer `success`; KubeRay's probes call them with wget on localhost), this node's stats and the user metrics
push (`reporter.py`), this node's log files (`log_agent.py`), its runtime envs (`GET /api/v0/runtime_envs_local`). Both servers require the cluster's token (gRPC
metadata, HTTP headers), the two health endpoints aside. Prometheus text is served on its own port,
--metrics-export-port (`GET /metrics` only), without a token, as Ray serves it.

The agent watches its node's raylet (the pid in the raylet's ready file): with the raylet gone
`local_raylet_healthz` fails at once (503), and the agent exits rather than linger, as Ray's does
("Raylet is terminated"), so KubeRay's probes and `ray start --block` see a dead node.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys

from aiohttp import web

from ray._common import auth, auth_http, lifetime
from ray._common.grpc_util import new_server
from ray._common.runtime_env.agent_registry import AgentAddress, register_agent, unregister_agent
from ray._common.session_logs import log_to_session_file
from ray.agent.log_agent import LogAgent
from ray.agent.reporter import METRICS_PATH, Reporter
from ray.agent.runtime_env.manager import RuntimeEnvManager
from ray.agent.runtime_env_service import RuntimeEnvAgentServicer
from ray.dashboard.modules.job.common import JobInfoStorage
from ray.dashboard.modules.job.job_agent import JobAgent
from ray.dashboard.modules.job.job_runner import LocalJobRunner
from ray.protocol import runtime_env_agent_pb2_grpc

logger = logging.getLogger("ray.agent")

DEFAULT_DASHBOARD_AGENT_LISTEN_PORT = 52365
# On shutdown, how long the agent waits for this node's jobs to stop (SIGTERM, then the supervisor's
# own SIGKILL after RAY_JOB_STOP_WAIT_TIME_S) before it exits.
_JOB_STOP_BUDGET_S = 6.0
_GCS_PROBE_TIMEOUT_S = 1.0  # on shutdown: whether the GCS is there to hear about this node's jobs and agent
RAYLET_CHECK_PERIOD_S = 1.0
RAYLET_GONE_GRACE_S = 2.0


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (OSError, IndexError):
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ray.agent", description="OpenRay node agent")
    parser.add_argument("--node-id", required=True, help="hex id of the node this agent serves")
    parser.add_argument("--node-ip-address", required=True)
    parser.add_argument("--gcs-address", required=True, help="host:port of the GCS")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--grpc-port", type=int, default=0, help="runtime env service port (0 = pick a free one)")
    parser.add_argument("--http-port", type=int, default=DEFAULT_DASHBOARD_AGENT_LISTEN_PORT)
    parser.add_argument("--metrics-export-port", type=int, default=0,
                        help="Prometheus /metrics port (0 = no metrics endpoint)")
    return parser.parse_args(argv)


def _http_bind_hosts(node_ip: str) -> list[str]:
    # Other nodes reach the agent on the node IP; KubeRay's probes call http://localhost:52365 inside
    # the pod, so listen on loopback too (not on every interface).
    return [node_ip] if node_ip.startswith("127.") else [node_ip, "127.0.0.1"]


def _make_gcs_client(gcs_address: str):  # -> GcsClient; imported lazily so the agent starts without it
    from ray._common.gcs_client import GcsClient

    return GcsClient(gcs_address)


class _LazyGcs:
    """The agent's GcsClient, connected on first use (the GCS may start after the agent)."""

    def __init__(self, agent: NodeAgent):
        self._agent = agent

    def __getattr__(self, name: str):
        return getattr(self._agent.gcs_client(), name)


class NodeAgent:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._gcs = None
        self.manager = RuntimeEnvManager(
            os.path.join(args.session_dir, "runtime_resources"), kv_factory=self.gcs_client
        )
        self.grpc_port = args.grpc_port
        self.http_port = args.http_port
        runner = LocalJobRunner(args.gcs_address, args.session_dir, lambda: f"{args.node_ip_address}:{self.grpc_port}")
        self.job_agent = JobAgent(runner, JobInfoStorage(_LazyGcs(self)))
        self.reporter = Reporter(args.node_id, args.node_ip_address, args.session_dir, self.gcs_client)
        self.log_agent = LogAgent(args.session_dir)
        self.metrics_export_port = getattr(args, "metrics_export_port", 0) or 0
        self.raylet_gone = False

    def _node_table_quickly(self) -> list[dict]:
        from ray._common.gcs_client import node_info_to_dict
        from ray.protocol import gcs_pb2

        gcs = self.gcs_client()
        reply = gcs.call(gcs.stubs.node.GetAllNodeInfo, gcs_pb2.GetAllNodeInfoRequest(), timeout_s=1)
        return [node_info_to_dict(n) for n in reply.node_info_list]

    def raylet_pid(self) -> int | None:
        """The pid of this node's raylet, from its ready file (None until it has written it)."""
        path = os.path.join(self.args.session_dir, f"raylet_{self.args.node_id[:8]}.json")
        try:
            with open(path) as f:
                return int(json.load(f)["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def raylet_alive(self) -> bool:
        pid = self.raylet_pid()
        return pid is None or _pid_alive(pid)  # not started yet counts as alive (the node is starting)

    async def _watch_raylet(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(RAYLET_CHECK_PERIOD_S)
            if not self.raylet_alive():
                logger.error("Raylet is terminated (pid %s). Termination is unexpected; the agent exits.",
                             self.raylet_pid())
                self.raylet_gone = True
                await asyncio.sleep(RAYLET_GONE_GRACE_S)  # probes see the 503 before the port closes
                stop.set()
                return

    def gcs_client(self):
        if self._gcs is None:
            self._gcs = _make_gcs_client(self.args.gcs_address)
        return self._gcs

    async def _healthz(self, request: web.Request) -> web.Response:
        # KubeRay's probe for Ray >= 2.53: the agent is up and so is its raylet.
        if not self.raylet_alive():
            return web.Response(status=503, text=f"Local Raylet failed: the raylet (pid {self.raylet_pid()}) "
                                                 "is not running.")
        return web.Response(text="success")

    async def _local_raylet_healthz(self, request: web.Request) -> web.Response:
        # The raylet is unhealthy when its process is gone or the GCS has marked this node dead; a GCS that
        # cannot be asked counts as up, because a GCS hiccup must not make Kubernetes restart a healthy pod.
        if not self.raylet_alive():
            return web.Response(status=503, text=f"Local Raylet failed: the raylet (pid {self.raylet_pid()}) "
                                                 "is not running.")
        try:
            nodes = await asyncio.to_thread(self._node_table_quickly)
        except Exception as e:
            logger.warning("local_raylet_healthz could not ask the GCS: %s", e)
            return web.Response(text="success")
        for node in nodes:
            if node.get("NodeID") == self.args.node_id and node.get("Alive") is False:
                return web.Response(status=503, text="Local Raylet failed: the GCS reports this node as dead.")
        return web.Response(text="success")

    async def _runtime_envs(self, request: web.Request) -> web.Response:
        # What this node's runtime env service created and uses, or failed to create (`ray list runtime-envs`).
        states = self.manager.states()
        return web.json_response({"runtime_env_states": states, "total": len(states)})

    async def _register(self, address: AgentAddress) -> None:
        # The GCS may still be starting; keep trying without holding up the servers.
        for attempt in range(120):
            try:
                await asyncio.to_thread(register_agent, self.gcs_client(), address)
                logger.info("Registered agent %s in the GCS.", address)
                return
            except Exception as e:
                if attempt % 10 == 0:
                    logger.warning("Could not register the agent in the GCS yet: %s", e)
                self._gcs = None
                await asyncio.sleep(1)
        logger.error("Gave up registering the agent in the GCS at %s.", self.args.gcs_address)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve until SIGTERM/SIGINT, or until `stop` is set when the caller owns the signals (the agent
        running inside the head's dashboard process, see ray.agent.with_dashboard)."""
        server = new_server()
        runtime_env_agent_pb2_grpc.add_RuntimeEnvAgentServiceServicer_to_server(
            RuntimeEnvAgentServicer(self.manager), server
        )
        self.grpc_port = server.add_insecure_port(f"{self.args.node_ip_address}:{self.args.grpc_port}")
        if self.grpc_port == 0:
            raise OSError(f"Could not bind the runtime env gRPC port {self.args.grpc_port} on {self.args.node_ip_address}.")
        await server.start()

        token = auth.process_token()
        middlewares = [] if token is None else [auth_http.token_middleware(token, auth_http.AGENT_PUBLIC_PATHS)]
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/api/healthz", self._healthz)
        app.router.add_get("/api/local_raylet_healthz", self._local_raylet_healthz)
        app.router.add_get("/api/v0/runtime_envs_local", self._runtime_envs)
        self.job_agent.add_routes(app)
        self.reporter.add_routes(app)
        self.log_agent.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        hosts = _http_bind_hosts(self.args.node_ip_address)
        site = web.TCPSite(runner, hosts[0], self.args.http_port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked
        for host in hosts[1:]:
            try:
                await web.TCPSite(runner, host, self.http_port).start()
            except OSError as e:
                logger.warning("Agent HTTP could not also listen on %s:%d: %s", host, self.http_port, e)
        metrics_runner = await self._serve_metrics(token, hosts) if self.metrics_export_port else None
        logger.info("Agent up: gRPC %s:%d, HTTP %d, metrics %d", self.args.node_ip_address, self.grpc_port,
                    self.http_port, self.metrics_export_port)

        address = AgentAddress(self.args.node_id, self.args.node_ip_address, self.http_port, self.grpc_port)
        register_task = asyncio.create_task(self._register(address))
        reaper = asyncio.create_task(self.job_agent.reap_forever())
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        watcher = asyncio.create_task(self._watch_raylet(stop))
        await stop.wait()
        watcher.cancel()
        register_task.cancel()
        if await self._gcs_reachable():
            try:
                await asyncio.wait_for(self.job_agent.stop_node_jobs(self.args.node_id, _JOB_STOP_BUDGET_S),
                                       _JOB_STOP_BUDGET_S + 2)
            except Exception as e:
                logger.warning("Stopping this node's jobs on shutdown failed: %r", e)
            reaper.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(unregister_agent, self.gcs_client(), address), 3)
        else:
            # Its calls would retry for as long as the GCS may come back, in threads that hold up the exit until
            # `ray stop` kills the agent at the end of its grace period (`ray down` stops the head first).
            logger.warning("Stopping with the GCS at %s unreachable: this node's jobs are left to their supervisors, "
                           "which stop them once they lose the GCS too.", self.args.gcs_address)
            reaper.cancel()
        await runner.cleanup()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await server.stop(grace=1)

    async def _gcs_reachable(self) -> bool:
        try:
            await asyncio.to_thread(self.gcs_client().check_alive, _GCS_PROBE_TIMEOUT_S)
        except Exception:
            return False
        return True

    async def _serve_metrics(self, token: str | None, hosts: list[str]) -> web.AppRunner | None:
        """Prometheus' endpoint: `/metrics` is open (Ray's metrics port takes no credentials, and Prometheus
        scrapes it from its file service discovery); anything else on this port needs the token."""
        middlewares = [] if token is None else [auth_http.token_middleware(token, {METRICS_PATH})]
        app = web.Application(middlewares=middlewares)
        self.reporter.add_metrics_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            for host in hosts:
                await web.TCPSite(runner, host, self.metrics_export_port).start()
        except OSError as e:
            logger.error("Could not serve metrics on port %d: %s", self.metrics_export_port, e)
            await runner.cleanup()
            return None
        return runner


def main(argv: list[str] | None = None) -> None:
    lifetime.die_with_parent()  # a driver's local cluster goes when the driver does, crashed or not
    args = parse_args(argv)
    log_to_session_file(args.session_dir, "agent.log")
    agent = NodeAgent(args)
    try:
        asyncio.run(agent.run())
    except Exception:
        logger.exception("The agent failed.")
        sys.exit(1)
    if agent.raylet_gone:
        sys.exit(1)
