"""Worker processes of one node, keyed by (job, runtime env): a worker never serves two runtime envs.

Workers are started with a clean copy of the raylet's environment plus the runtime env's context
(env vars, python executable, cwd, PYTHONPATH), register back over the raylet socket, and are handed out
to leases. Idle workers are kept for reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from ray._common import auth, framing, lifetime
from ray._common.config import config
from ray._common.ids import WorkerID
from ray.protocol import messages as msg
from ray.raylet.runtime_envs import local_runtime_env_context

logger = logging.getLogger(__name__)

STARTING, IDLE, LEASED, DEAD = "STARTING", "IDLE", "LEASED", "DEAD"


def env_key(job_id: str, runtime_env: dict | None) -> str:
    return job_id + "|" + json.dumps(runtime_env or {}, sort_keys=True)


class ForkedProcess:
    """A worker forked by the template (not our child): the Popen calls the pool uses.

    Held through a pidfd where Linux has them (5.3+): the template reaps its children at once, so a bare pid
    may soon name another process (pid_max is 32,768 here and a busy node forks thousands of workers); a
    pidfd keeps naming this one, so a late SIGKILL never reaches a stranger and a dead worker never looks
    alive."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already
            self.returncode = -1
        except (AttributeError, OSError):  # no pidfd here: by pid, as before
            pass

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self._pidfd is not None:
            if select.select([self._pidfd], [], [], 0)[0]:  # a pidfd turns readable when its process exits
                self._exited()
            return self.returncode
        try:
            os.kill(self.pid, 0)
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    self.returncode = -1
        except (ProcessLookupError, FileNotFoundError):
            self.returncode = -1
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            raise ProcessLookupError(f"worker process {self.pid} has exited")
        if self._pidfd is not None:
            signal.pidfd_send_signal(self._pidfd, sig)
        else:
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = time.monotonic() + (timeout or 0)
        while self.poll() is None and (timeout is None or time.monotonic() < deadline):
            time.sleep(0.01)
        return self.returncode

    def _exited(self) -> None:
        self.returncode = -1
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __del__(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)


@dataclass
class Worker:
    worker_id: str
    env_key: str
    job_id: str
    proc: subprocess.Popen
    state: str = STARTING
    conn: object = None  # the worker's registration connection to the raylet
    address: dict = field(default_factory=dict)
    lease_id: int = 0
    registered: asyncio.Future | None = None
    is_actor: bool = False
    idle_since: float = 0.0
    launch_time_ms: int = 0
    # Why it ended, when the raylet ended it (Ray's WorkerExitType and exit detail); else decided at its death.
    exit_type: str = ""
    exit_detail: str = ""
    log_base: str = ""  # <logs>/worker-<worker id>-<job id>-<pid>: its .out and .err files


def _kill_if_alive(proc: subprocess.Popen | ForkedProcess) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)


class WorkerPool:
    def __init__(self, raylet_address: str, node_id: str, node_ip: str, gcs_address: str, session_dir: str,
                 shm_dir: str, on_worker_dead):
        self.raylet_address = raylet_address
        self.node_id = node_id
        self.node_ip = node_ip
        self.gcs_address = gcs_address
        self.session_dir = session_dir
        self.shm_dir = shm_dir
        self.workers: dict[str, Worker] = {}
        self._idle: dict[str, list[Worker]] = {}
        self._template: subprocess.Popen | None = None
        self._template_ready = False
        self._on_worker_dead = on_worker_dead
        # Registrations that came before their worker was recorded (see `wait_recorded`): worker id -> waiter.
        self._unrecorded: dict[str, asyncio.Future] = {}

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.session_dir, "logs")

    async def start_worker(self, key: str, job_id: str, runtime_env: dict | None, ctx: dict | None = None) -> Worker:
        ctx = ctx or local_runtime_env_context(runtime_env)
        worker_id = WorkerID.from_random().hex()
        launched_ms = int(time.time() * 1000)
        env = dict(os.environ)
        env.update(ctx["env_vars"])
        env.update(auth.child_env(auth.process_token()))  # the node's token, whatever env_vars say
        if ctx["pythonpath"]:
            env["PYTHONPATH"] = os.pathsep.join([*ctx["pythonpath"], env.get("PYTHONPATH", "")])
        env["RAY_JOB_ID"] = job_id
        env["PYTHONUNBUFFERED"] = "1"  # prints reach the driver promptly through the log monitor
        env.update(lifetime.env_for_child(signal.SIGKILL))  # workers die with their raylet
        env["RAY_RUNTIME_ENV_JSON"] = json.dumps(runtime_env or {})
        with_malloc_tunables(env)
        python = ctx["py_executable"] or sys.executable
        args = [
            python, "-m", "ray._private.workers.default_worker",
            "--worker-id", worker_id,
            "--raylet-address", self.raylet_address,
            "--node-id", self.node_id,
            "--node-ip-address", self.node_ip,
            "--gcs-address", self.gcs_address,
            "--session-dir", self.session_dir,
            "--shm-dir", self.shm_dir,
            "--job-id", job_id,
            "--env-key", key,
        ]
        log_base = os.path.join(self.logs_dir, f"worker-{worker_id}-{job_id}")
        proc = None
        if ctx["py_executable"] is None and not read_at_exec(ctx["env_vars"]):
            proc = await self._fork_from_template(args[3:], env, ctx, log_base)
        if proc is None:
            proc = self._spawn(args, env, ctx, log_base)
        worker = Worker(worker_id, key, job_id, proc, registered=asyncio.get_running_loop().create_future(),
                        launch_time_ms=launched_ms, log_base=f"{log_base}-{proc.pid}")
        self.record(worker)
        return worker

    def record(self, worker: Worker) -> None:
        """A worker this raylet started, from now on known by its id (a registration waiting for it goes on)."""
        self.workers[worker.worker_id] = worker
        waiter = self._unrecorded.pop(worker.worker_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_recorded(self, worker_id: str, timeout_s: float) -> bool:
        """Waits until the worker `worker_id` is recorded (at most `timeout_s`); True if it is.

        A forked worker can register before its start is recorded: the fork server answers with the child's pid
        only after `fork()`, and on a loaded machine the child may run, connect and register first (the pool
        records a worker once it knows its pid). Its registration must wait for the record, not be dropped:
        dropped, the worker runs but is never leased, and its lease fails after `worker_register_timeout_seconds`."""
        if worker_id in self.workers:
            return True
        waiter = self._unrecorded.setdefault(worker_id, asyncio.get_running_loop().create_future())
        try:
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        finally:
            if self._unrecorded.get(worker_id) is waiter:
                del self._unrecorded[worker_id]
        return worker_id in self.workers

    async def start_template(self) -> None:
        """Start the fork server early (it imports the worker code while the cluster comes up)."""
        env = dict(os.environ)
        env.update(lifetime.env_for_child(signal.SIGKILL))
        with_malloc_tunables(env)  # read by glibc when the template starts; its forks inherit them
        err = open(os.path.join(self.logs_dir, "worker_template.err"), "ab")  # noqa: SIM115
        try:
            self._template = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ray._private.workers.worker_template", stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, env=env, cwd=self.session_dir)
        finally:
            err.close()
        self._template_ready = False
        self._template_lock = asyncio.Lock()

    async def _fork_from_template(self, args: list[str], env: dict, ctx: dict, log_base: str) -> ForkedProcess | None:
        template = self._template
        if template is None or template.returncode is not None:
            return None
        # Requests and replies are lines on one pipe pair: one at a time. Awaited, never blocking the loop.
        async with self._template_lock:
            try:
                if not self._template_ready:
                    json.loads(await template.stdout.readline())  # {"ready": true} once its imports are done
                    self._template_ready = True
                request = {"args": args, "env": env, "cwd": ctx["cwd"] or os.getcwd(),
                           "pythonpath": ctx["pythonpath"], "out": f"{log_base}-{{pid}}.out", "err": f"{log_base}-{{pid}}.err"}
                template.stdin.write((json.dumps(request) + "\n").encode())
                await template.stdin.drain()
                return ForkedProcess(json.loads(await template.stdout.readline())["pid"])
            except (OSError, ValueError, KeyError) as e:
                logger.warning("The worker fork server failed (%s); starting workers the slow way.", e)
                self._template = None
                return None

    def _spawn(self, args: list[str], env: dict, ctx: dict, log_base: str) -> subprocess.Popen:
        # Named after the pid once it is known (Ray's worker-<id>-<job>-<pid>); renaming keeps the open files.
        starting = f"{log_base}-starting"
        out = open(f"{starting}.out", "ab")  # noqa: SIM115
        err = open(f"{starting}.err", "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                    cwd=ctx["cwd"] or os.getcwd())
        finally:
            out.close()
            err.close()
        for ext in ("out", "err"):
            os.replace(f"{starting}.{ext}", f"{log_base}-{proc.pid}.{ext}")
        return proc

    def on_registered(self, worker_id: str, conn, address: dict) -> Worker | None:
        worker = self.workers.get(worker_id)
        if worker is None:
            return None
        worker.conn = conn
        worker.address = address
        if worker.registered and not worker.registered.done():
            worker.registered.set_result(worker)
        return worker

    def pop_idle(self, key: str) -> Worker | None:
        idle = self._idle.get(key)
        while idle:
            worker = idle.pop()
            if worker.state == IDLE:
                return worker
        return None

    def num_starting(self, key: str) -> int:
        return sum(1 for w in self.workers.values() if w.env_key == key and w.state == STARTING)

    def push_idle(self, worker: Worker) -> None:
        worker.state = IDLE
        worker.lease_id = 0
        worker.idle_since = time.monotonic()
        self._idle.setdefault(worker.env_key, []).append(worker)

    def kill(self, worker: Worker, force: bool = True, exit_type: str = "INTENDED_SYSTEM_EXIT",
             exit_detail: str = "The raylet stopped the worker.") -> None:
        if worker.state == DEAD:
            return
        if not worker.exit_type:
            worker.exit_type, worker.exit_detail = exit_type, exit_detail
        with contextlib.suppress(ProcessLookupError):
            worker.proc.send_signal(signal.SIGKILL if force else signal.SIGTERM)
        self.mark_dead(worker)

    def end(self, worker: Worker, exit_detail: str, exit_type: str = "INTENDED_SYSTEM_EXIT") -> None:
        """Ends a worker the raylet no longer needs (its job or its lease's owner ended, idle too long, its
        placement group removed): asked to exit (`EXIT_WORKER`), so that it reports the task events it has not
        reported yet first, as Ray's core worker flushes them when it exits; SIGKILLed if still alive
        `kill_worker_timeout_milliseconds` later. One not registered yet (nothing to report) is SIGKILLed now."""
        if worker.state == DEAD:
            return
        conn = worker.conn
        if conn is None or conn.closed:
            self.kill(worker, exit_type=exit_type, exit_detail=exit_detail)
            return
        if not worker.exit_type:
            worker.exit_type, worker.exit_detail = exit_type, exit_detail
        grace_s = config().kill_worker_timeout_milliseconds / 1000
        try:
            conn.notify(msg.EXIT_WORKER, {"timeout_s": min(1.0, grace_s)})
        except framing.ConnectionLost:
            grace_s = 0
        asyncio.get_running_loop().call_later(grace_s, _kill_if_alive, worker.proc)
        self.mark_dead(worker)

    def mark_dead(self, worker: Worker) -> None:
        if worker.state == DEAD:
            return
        worker.state = DEAD
        if worker.registered and not worker.registered.done():
            worker.registered.set_exception(RuntimeError(
                f"Worker {worker.worker_id} exited before registering (exit code {worker.proc.poll()}); "
                f"see {self.logs_dir}/worker-{worker.worker_id}-*.err"))
            worker.registered.exception()  # mark retrieved
        self._on_worker_dead(worker)

    def reap(self) -> None:
        """Notice workers that exited (including those that never registered) and forget them."""
        for worker in list(self.workers.values()):
            if worker.proc.poll() is not None:
                self.mark_dead(worker)
                del self.workers[worker.worker_id]

    def kill_idle_above(self, soft_limit: int, idle_threshold_s: float) -> None:
        """Idle workers beyond the soft limit are killed once idle long enough (oldest idle first)."""
        idle = sorted((w for w in self.workers.values() if w.state == IDLE), key=lambda w: w.idle_since)
        now = time.monotonic()
        for worker in idle[: max(0, len(idle) - soft_limit)]:
            if now - worker.idle_since >= idle_threshold_s:
                self.end(worker, exit_detail=(
                    "The worker exited because it was idle (it doesn't have objects it owns while no task or "
                    "actor has been scheduled) for a long time."))

    def kill_job(self, job_id: str) -> None:
        """Its driver is gone: every worker of the job ends, idle or leased (a worker that owned tasks may hold
        a lease on itself, and nothing else would end it), as Ray's raylet does when a job finishes. Actors' are
        the GCS's to end (a detached actor outlives its job)."""
        for worker in list(self.workers.values()):
            if worker.job_id == job_id and not worker.is_actor:
                self.end(worker, exit_detail="The worker exited because its job (driver) ended.")

    def kill_all(self) -> None:
        for worker in list(self.workers.values()):
            self.kill(worker)
        if self._template is not None and self._template.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._template.kill()
        for worker in list(self.workers.values()):
            with contextlib.suppress(Exception):
                worker.proc.wait(timeout=5)


# Variables the dynamic loader, glibc or the interpreter read once, when a process starts: a worker forked
# from the template would carry the template's, so a runtime env that sets one gets a worker of its own.
_READ_AT_EXEC_PREFIXES = ("LD_", "GLIBC_TUNABLES", "MALLOC_", "PYTHONMALLOC", "PYTHONHASHSEED", "PYTHONOPTIMIZE")


def read_at_exec(env_vars: dict[str, str]) -> bool:
    return any(name.startswith(_READ_AT_EXEC_PREFIXES) for name in env_vars)


def with_malloc_tunables(env: dict[str, str]) -> dict[str, str]:
    """Adds glibc's `glibc.malloc.hugetlb=1` to a worker's GLIBC_TUNABLES (`worker_malloc_huge_pages`), unless
    the user's environment already chose a hugetlb setting."""
    if not config().worker_malloc_huge_pages or not sys.platform.startswith("linux"):
        return env
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    if not any(t.startswith("glibc.malloc.hugetlb=") for t in tunables):
        env["GLIBC_TUNABLES"] = ":".join([*tunables, "glibc.malloc.hugetlb=1"])
    return env
