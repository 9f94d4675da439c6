"""`python -m ray.agent.with_dashboard`: the head's dashboard and its node agent in one process.

Used for the local cluster `ray.init()` starts. Both are aiohttp servers on one event loop with a gRPC
client of the GCS; as two processes each paid ~60 MiB of RSS for the same interpreter, aiohttp and gRPC
(issue 5's idle-memory target). Each keeps its own ports and protocol, so nothing that talks to them can
tell: the dashboard serves --port, the agent serves its runtime env gRPC on --agent-grpc-port and its HTTP
on --agent-http-port and registers in the GCS as the node's agent. `ray start` keeps two processes.

    python -m ray.agent.with_dashboard --host H --port P --gcs-address A --session-dir S \\
        --node-ip-address IP --node-id N --agent-grpc-port G --agent-http-port HP
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ray._common import lifetime
from ray._common.session_logs import log_to_session_file

logger = logging.getLogger("ray.dashboard")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """The dashboard's and the agent's arguments, from one command line."""
    parser = argparse.ArgumentParser(prog="python -m ray.agent.with_dashboard",
                                     description="OpenRay dashboard with the head's node agent")
    parser.add_argument("--host", default="127.0.0.1", help="dashboard host")
    parser.add_argument("--port", type=int, default=8265, help="dashboard port")
    parser.add_argument("--gcs-address", required=True, help="host:port of the GCS")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--node-ip-address", required=True)
    parser.add_argument("--node-id", required=True, help="hex id of the head node the agent serves")
    parser.add_argument("--agent-grpc-port", type=int, default=0, help="runtime env service port (0 = any)")
    parser.add_argument("--agent-http-port", type=int, required=True, help="Ray's --dashboard-agent-listen-port")
    parser.add_argument("--metrics-export-port", type=int, default=0, help="the agent's Prometheus port")
    args = parser.parse_args(argv)
    dashboard = argparse.Namespace(host=args.host, port=args.port, gcs_address=args.gcs_address,
                                   session_dir=args.session_dir, node_ip_address=args.node_ip_address)
    agent = argparse.Namespace(node_id=args.node_id, node_ip_address=args.node_ip_address,
                               gcs_address=args.gcs_address, session_dir=args.session_dir,
                               grpc_port=args.agent_grpc_port, http_port=args.agent_http_port,
                               metrics_export_port=args.metrics_export_port)
    return dashboard, agent


async def serve_both(dashboard_args: argparse.Namespace, agent_args: argparse.Namespace) -> None:
    """Run both until SIGTERM/SIGINT. Either one failing (e.g. its port is taken) is logged and leaves the
    other up, as when they were two processes; the process exits with an error once both have failed."""
    # Imported here: `python -m` of this module must arm die-with-parent before the heavy imports.
    from ray.agent.agent import NodeAgent
    from ray.dashboard.dashboard import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parts = {
        asyncio.create_task(serve(dashboard_args, stop), name="dashboard"):
            f"The dashboard (on {dashboard_args.host}:{dashboard_args.port})",
        asyncio.create_task(NodeAgent(agent_args).run(stop), name="agent"):
            f"The node agent (HTTP {agent_args.http_port}, gRPC {agent_args.grpc_port})",
    }
    errors = []
    for task in asyncio.as_completed(parts):
        try:
            await task
        except Exception as e:
            errors.append(e)
            if not stop.is_set():
                what = next(name for t, name in parts.items() if t.done() and t.exception() is e)
                logger.error("%s failed; the rest of this process stays up: %r", what, e, exc_info=e)
                print(f"{what} failed: {e}", file=sys.stderr, flush=True)
    if len(errors) == len(parts):
        raise errors[0]


def main(argv: list[str] | None = None) -> None:
    lifetime.die_with_parent()  # a driver's local cluster goes when the driver does, crashed or not
    dashboard_args, agent_args = parse_args(argv)
    # One log file for both, as Ray's dashboard.log; the agent's lines carry its logger name.
    log_to_session_file(dashboard_args.session_dir, "dashboard.log", logger_names=True)
    try:
        asyncio.run(serve_both(dashboard_args, agent_args))
    except Exception:
        logger.exception("Both the dashboard and the node agent failed.")
        sys.exit(1)


if __name__ == "__main__":
    main()
