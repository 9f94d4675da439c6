"""Worker process entry point: `python -m ray._private.workers.default_worker ...` (started by the raylet)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from ray._common import lifetime, long_lived
from ray._common.ids import JobID, WorkerID


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenRay worker")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--raylet-address", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--node-ip-address", required=True)
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--shm-dir", required=True)
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--env-key", default="")
    args = parser.parse_args(argv)
    lifetime.die_with_parent()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SIGTERM from the raylet/`ray stop` ends the worker at once; nothing here needs a graceful path.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    import ray._private.worker as worker_module
    from ray.core_worker.core_worker import WORKER, CoreWorker
    from ray.core_worker.executor import TaskExecutor

    cw = CoreWorker(
        WORKER, args.gcs_address, args.raylet_address.removeprefix("unix:"), args.node_id,
        args.node_ip_address, args.session_dir, JobID.from_hex(args.job_id), WorkerID.from_hex(args.worker_id),
    )
    cw.executor = TaskExecutor(cw)
    cw.dispatcher.add(cw.executor)  # this process also runs tasks: it receives pushes and cancels
    cw.executor.install_interrupt_handler()
    cw.start()
    worker_module.global_worker.attach(cw, mode="worker")
    long_lived.freeze_worker_startup()
    cw.executor.run()


if __name__ == "__main__":
    main()
