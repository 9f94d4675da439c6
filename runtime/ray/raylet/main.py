"""Raylet process entry point (started by the node launcher)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from ray._common import lifetime
from ray.raylet.node_manager import NodeManager


async def _run(args: argparse.Namespace) -> None:
    manager = NodeManager(
        node_id=args.node_id, node_ip=args.node_ip_address, gcs_address=args.gcs_address,
        session_dir=args.session_dir, resources=json.loads(args.resources), labels=json.loads(args.labels),
        is_head=args.head, metrics_export_port=args.metrics_export_port,
        runtime_env_agent_address=args.runtime_env_agent_address,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: loop.create_task(manager.shutdown()))
    # `ray stop` (a worker pod's preStop): drain, let the running tasks finish, then stop.
    loop.add_signal_handler(signal.SIGUSR2, lambda: loop.create_task(manager.stop_gracefully()))
    await manager.start()
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(manager.ready_info(), f)
        os.replace(tmp, args.ready_file)
    await manager.run_until_stopped()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenRay raylet")
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--node-ip-address", required=True)
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--resources", default="{}")
    parser.add_argument("--labels", default="{}")
    parser.add_argument("--ready-file", default=None)
    parser.add_argument("--metrics-export-port", type=int, default=0)
    parser.add_argument("--head", action="store_true")
    parser.add_argument("--runtime-env-agent-address", default="", help="host:port of the node agent's gRPC")
    args = parser.parse_args(argv)
    lifetime.die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
