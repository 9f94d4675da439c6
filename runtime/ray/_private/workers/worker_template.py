"""A fork server for workers: imports the worker code once, then forks a ready worker per request.

Booting a Python worker from scratch costs ~0.5 s of CPU (imports); a fork of this pre-imported template
costs milliseconds, which is what makes `ray.init` and bursts of actors fast on small machines. The raylet
writes one JSON request per line on stdin ({"args", "env", "cwd", "pythonpath", "out", "err"}) and reads
one line back ({"pid": ...}). The template starts no threads, so forking it is safe.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys

# Everything a worker imports, loaded once here: its own start-up and core worker, and the public API that
# the user's code will use (named as data: the template warms the module cache, it does not call them).
PRELOADED = (
    "ray._private.workers.default_worker", "ray.core_worker.core_worker", "ray.core_worker.executor",
    "ray.core_worker.task_submitter", "ray.core_worker.actor_submitter",
    "ray", "ray._private.worker", "ray.actor", "ray.remote_function", "ray.exceptions",
)


def _reap(signum, frame) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(request: dict) -> None:
    """Runs in the forked child: become a worker with the requested environment and logs."""
    import itertools
    import random

    from ray._common import ids, lifetime

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[lifetime.ENV] = f"{os.getppid()}:{int(signal.SIGKILL)}"  # our parent is the template
    lifetime.die_with_parent()
    if request.get("cwd"):
        os.chdir(request["cwd"])
    sys.path[:0] = request.get("pythonpath") or []
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["out"]), (2, request["err"])):
        # Ray's worker-<worker id>-<job id>-<pid>.out/.err: the pid is known only now.
        target = os.open(path.replace("{pid}", str(os.getpid())), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout.reconfigure(write_through=True)
    sys.stderr.reconfigure(write_through=True)
    # Forked children share the template's random state: reseed everything that must differ per worker.
    random.seed()
    ids._TASK_COUNTER = itertools.count(int.from_bytes(os.urandom(8), "little"))
    from ray._private.workers import default_worker

    default_worker.main(request["args"])


def main() -> None:
    from ray._common import lifetime, long_lived

    lifetime.die_with_parent()
    for module in PRELOADED:
        importlib.import_module(module)
    long_lived.freeze_worker_startup()  # before every fork: the children's collectors skip these pages

    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                _child(request)
            finally:
                os._exit(1)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
