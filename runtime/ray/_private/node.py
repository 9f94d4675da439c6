"""The node launcher used by `ray start`, `ray.init()` and `ray.cluster_utils`: session dir + processes.

Head: GCS server, raylet, node agent, dashboard; for `ray.init()`'s own cluster the agent runs inside the
dashboard's process (ray.agent.with_dashboard). Worker node: raylet, node agent. Components whose module
is not installed are skipped. Every PID is recorded (see process_registry) so `ray stop` and
`ray.shutdown()` leave nothing behind; processes started for a driver also die with it (PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ray._common import auth, lifetime, process_registry
from ray._common.config import system_config_to_env
from ray._common.ids import NodeID
from ray._common.net import free_port, node_ip_address, port_is_free, split_address
from ray._private.resource_spec import node_resources
from ray._version import RUNTIME_ROOT

logger = logging.getLogger(__name__)

DEFAULT_DASHBOARD_AGENT_LISTEN_PORT = 52365
DEFAULT_DASHBOARD_PORT = 8265
# Components that do not arm die-with-parent themselves before their imports (see _spawn).
_EXEC_WRAPPED = (["-m", "ray.agent"], ["-m", "ray.dashboard.dashboard"], ["-m", "ray.agent.with_dashboard"])


@dataclass
class NodeParams:
    head: bool
    gcs_address: str | None = None  # required for worker nodes
    port: int = 6379
    node_ip_address: str | None = None
    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: int | None = None
    object_store_memory: int | None = None
    resources: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    temp_dir: str | None = None
    include_dashboard: bool | None = None
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int | None = None
    dashboard_agent_listen_port: int | None = None
    dashboard_agent_grpc_port: int | None = None
    metrics_export_port: int | None = None
    system_config: dict = field(default_factory=dict)
    # The head's Ray Client server (ray://): `ray start --head` asks for 10001 by default; None: none.
    ray_client_server_port: int | None = None
    ray_client_server_port_explicit: bool = False  # a default port that is taken only skips the server
    # True for clusters `ray.init()` starts: they must die with the driver process.
    owned_by_driver: bool = False
    start_timeout_s: float = 60
    # Extra environment for every process of the node (an autoscaler's RAY_CLOUD_INSTANCE_ID, ...).
    env: dict[str, str] = field(default_factory=dict)
    # `ray start --head --autoscaling-config=<file>`: the head also runs the autoscaler (monitor.log).
    autoscaling_config: str | None = None
    # GCS fault tolerance (head only): the GCS keeps its tables in this Redis.
    redis_address: str = ""
    redis_password: str = ""
    redis_username: str = ""


class ProcessStartError(RuntimeError):
    pass


def module_exists(name: str) -> bool:
    """Optional components (raylet, agent, dashboard) are started only when installed."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def new_session_dir(temp_dir: str, head: bool = True) -> str:
    """A new `session_<date>_<pid>` with its logs/ directory. `session_latest` points at a head's session; a
    worker node's takes it only when there is none (a second node on the head's machine leaves it be)."""
    now = datetime.datetime.now()
    name = f"session_{now:%Y-%m-%d_%H-%M-%S_%f}_{os.getpid()}"
    session = Path(temp_dir) / name
    for attempt in range(1, 100):  # nodes started at the same microsecond by one process (an autoscaler's threads)
        try:
            session.mkdir(parents=True)
            break
        except FileExistsError:
            session = Path(temp_dir) / f"{name}_{attempt}"
    (session / "logs").mkdir(parents=True, exist_ok=True)
    latest = Path(temp_dir) / "session_latest"
    if not head and latest.exists():
        return str(session)
    tmp_link = Path(temp_dir) / f".session_latest.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    tmp_link.symlink_to(session)
    os.replace(tmp_link, latest)
    return str(session)


class Node:
    """One node's processes. `start()` launches them; `kill_all()` stops them."""

    def __init__(self, params: NodeParams):
        self.params = params
        self.temp_dir = params.temp_dir or process_registry.default_temp_dir()
        os.makedirs(self.temp_dir, exist_ok=True)
        self.node_ip_address = params.node_ip_address or node_ip_address(
            (params.gcs_address or "8.8.8.8:0").split(":")[0]
        )
        self.node_id = NodeID.from_random().hex()  # a hex string, as Ray's Node.node_id
        self.session_dir = ""
        self.gcs_address = params.gcs_address or ""
        self.processes: dict[str, subprocess.Popen] = {}
        self.raylet_info: dict = {}
        self.dashboard_url = ""
        self.ray_client_server_port: int | None = None
        self.resources: dict[str, float] = {}
        self.auth_token: str | None = None  # the token every process of this node runs with (None: disabled)
        self.generated_token_path: str | None = None  # set when starting this head made ~/.ray/auth_token

    # ------------------------------------------------------------------ helpers
    @property
    def logs_dir(self) -> str:
        return os.path.join(self.session_dir, "logs")

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(system_config_to_env(self.params.system_config))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (RUNTIME_ROOT, env.get("PYTHONPATH", "")) if p)
        # Every process of the node (and so every worker, job supervisor and job entrypoint under it)
        # authenticates with the node's token, wherever this process found it.
        env.pop(auth.TOKEN_PATH_ENV, None)
        env.update(auth.child_env(self.auth_token))
        env.update(self.params.env)
        if self.params.owned_by_driver:
            env.update(lifetime.env_for_child())  # a crashed driver leaves nothing behind
        return env

    def _spawn(self, name: str, args: list[str], log_name: str | None = None,
               env_extra: dict[str, str] | None = None) -> subprocess.Popen:
        log_name = log_name or name
        out = open(os.path.join(self.logs_dir, f"{log_name}.out"), "ab")  # noqa: SIM115 (child owns it)
        err = open(os.path.join(self.logs_dir, f"{log_name}.err"), "ab")  # noqa: SIM115
        env = self._env()
        env.update(env_extra or {})
        if self.params.owned_by_driver and args[:2] in _EXEC_WRAPPED:
            # These do not arm die-with-parent themselves: a wrapper does, then execs them. SIGKILL, because
            # their graceful shutdown is not ours to rely on when the driver has crashed.
            args = ["-m", "ray._common.lifetime", *args[1:]]
            env.update(lifetime.env_for_child(signal.SIGKILL))
        try:
            proc = subprocess.Popen(
                [sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=self.session_dir,
                start_new_session=not self.params.owned_by_driver,
            )
        finally:
            out.close()
            err.close()
        self.processes[name] = proc
        process_registry.record(self.temp_dir, proc.pid, name, self.session_dir)
        return proc

    def _wait_for_file(self, path: str, proc: subprocess.Popen, what: str) -> str:
        deadline = time.monotonic() + self.params.start_timeout_s
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return Path(path).read_text()
            if proc.poll() is not None:
                raise ProcessStartError(f"{what} exited with code {proc.returncode}. {self._tail(what)}")
            time.sleep(0.02)
        raise ProcessStartError(f"{what} did not become ready in {self.params.start_timeout_s:.0f} s. {self._tail(what)}")

    def _tail(self, what: str) -> str:
        path = os.path.join(self.logs_dir, f"{what}.err")
        try:
            lines = Path(path).read_text(errors="replace").strip().splitlines()[-15:]
        except OSError:
            return ""
        return f"Last lines of {path}:\n" + "\n".join(lines)

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.kill_all()
            raise

    def _start(self) -> None:
        p = self.params
        self._resolve_token()
        self.session_dir = new_session_dir(self.temp_dir, head=p.head)
        gcs_proc = self._start_gcs() if p.head else None
        if not self.gcs_address:
            raise ValueError("A worker node needs the GCS address of the head (ray start --address=<host>:<port>).")
        self.resources = node_resources(
            self.node_ip_address, p.head, p.num_cpus, p.num_gpus, p.memory, p.object_store_memory, p.resources
        )
        if p.owned_by_driver and not p.dashboard_agent_listen_port:
            # A driver's private cluster takes any free port: concurrent local clusters (tests) would race
            # for 52365 between our check and the agent's bind.
            agent_http_port = free_port(self.node_ip_address)
        else:
            agent_http_port = self._port_or_free(p.dashboard_agent_listen_port, DEFAULT_DASHBOARD_AGENT_LISTEN_PORT)
        agent_grpc_port = p.dashboard_agent_grpc_port or free_port(self.node_ip_address)
        self.agent_http_port, self.agent_grpc_port = agent_http_port, agent_grpc_port
        # Ray picks a free port unless --metrics-export-port is given; the raylet records it in the node
        # table (`MetricsExportPort` in ray.nodes()) and the agent serves /metrics on it.
        self.metrics_export_port = p.metrics_export_port or free_port(self.node_ip_address)
        # The raylet starts while the GCS is still coming up (it retries until the GCS answers): the two
        # Python start-ups overlap, which is most of `ray.init`'s time.
        raylet_proc = self._spawn_raylet() if module_exists("ray.raylet.main") else None
        if gcs_proc is not None:
            self._wait_for_file(os.path.join(self.session_dir, "gcs_server.port"), gcs_proc, "gcs_server")
        if raylet_proc is not None:
            self.raylet_info = json.loads(self._wait_for_file(self._raylet_ready_file, raylet_proc, "raylet"))
        with_dashboard = p.head and p.include_dashboard is not False and module_exists("ray.dashboard.dashboard")
        if with_dashboard and p.owned_by_driver and module_exists("ray.agent"):
            # `ray.init()`'s cluster: the head's agent lives in the dashboard's process (one interpreter with
            # aiohttp and gRPC instead of two, ~55 MiB of idle RSS). Same ports and registration as apart.
            self._spawn_dashboard(["-m", "ray.agent.with_dashboard", "--node-id", self.node_id,
                                   "--agent-grpc-port", str(agent_grpc_port),
                                   "--agent-http-port", str(agent_http_port),
                                   "--metrics-export-port", str(self.metrics_export_port)])
        elif module_exists("ray.agent"):
            self._spawn(
                "agent",
                [
                    "-m", "ray.agent",
                    "--node-id", self.node_id,
                    "--node-ip-address", self.node_ip_address,
                    "--gcs-address", self.gcs_address,
                    "--session-dir", self.session_dir,
                    "--grpc-port", str(agent_grpc_port),
                    "--http-port", str(agent_http_port),
                    "--metrics-export-port", str(self.metrics_export_port),
                ],
                log_name="agent",
            )
        if with_dashboard and "dashboard" not in self.processes:
            self._spawn_dashboard(["-m", "ray.dashboard.dashboard"])
        if p.head and p.ray_client_server_port is not None:
            self._start_client_server()
        if p.head and p.autoscaling_config:
            self._spawn("monitor", [
                "-m", "ray.autoscaler._private.monitor",
                "--gcs-address", self.gcs_address,
                "--autoscaling-config", os.path.abspath(p.autoscaling_config),
                "--logs-dir", self.logs_dir,
                "--monitor-ip", self.node_ip_address,
                "--temp-dir", self.temp_dir,
            ])
        if p.head and not p.owned_by_driver:
            # `ray.init()`/`address="auto"` find clusters started by `ray start` through this file.
            process_registry.current_cluster_file(self.temp_dir).write_text(self.gcs_address)
        self._write_node_info()

    def _resolve_token(self) -> None:
        """A head makes the cluster's token when there is none yet (~/.ray/auth_token; `ray.init()` as Ray
        does, `ray start --head` too, ahead of Ray); a node joining a cluster must have it already
        (AuthenticationError with Ray's message otherwise)."""
        if self.params.head:
            had_token = auth.auth_mode() == auth.DISABLED or auth.load_token() is not None
            self.auth_token = auth.ensure_token_for_new_cluster()
            if not had_token:
                self.generated_token_path = str(auth.default_token_path())
        else:
            self.auth_token = auth.process_token()

    def wait_for_dashboard(self, timeout_s: float) -> bool:
        """Until the dashboard accepts connections (`ray start` returns only then, as Ray's does, so a job
        submitted right after it finds the API); False if it did not within `timeout_s` or its process died."""
        return self._wait_until_listening("dashboard", *split_address(self.dashboard_url), timeout_s)

    def wait_for_agent(self, timeout_s: float) -> bool:
        """Until this node's agent accepts HTTP connections, so that a health probe right after `ray start`
        (KubeRay's readiness probe, `/api/local_raylet_healthz`) tells the truth instead of "refused"."""
        if "agent" not in self.processes:  # `ray.init()`'s head: the agent lives in the dashboard's process
            return True
        # The agent listens on the node IP first, then on loopback (the probe's address): wait for the latter.
        host = self.node_ip_address if self.node_ip_address.startswith("127.") else "127.0.0.1"
        return self._wait_until_listening("agent", host, self.agent_http_port, timeout_s)

    def _wait_until_listening(self, proc_name: str, host: str, port: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
                return True
            proc = self.processes.get(proc_name)
            if proc is not None and proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def _spawn_dashboard(self, module_args: list[str]) -> None:
        """The dashboard process: `module_args` (its module and any extra flags) plus the dashboard's own."""
        p = self.params
        port = self._port_or_free(p.dashboard_port, DEFAULT_DASHBOARD_PORT, p.dashboard_host)
        self._spawn("dashboard", [
            *module_args,
            "--host", p.dashboard_host,
            "--port", str(port),
            "--gcs-address", self.gcs_address,
            "--session-dir", self.session_dir,
            "--node-ip-address", self.node_ip_address,
        ])
        host = "127.0.0.1" if p.dashboard_host in ("0.0.0.0", "localhost", "") else p.dashboard_host
        self.dashboard_url = f"{host}:{port}"

    def _port_or_free(self, requested: int | None, default: int, host: str | None = None) -> int:
        if requested:
            return requested
        if port_is_free(host or self.node_ip_address, default):
            return default
        # Several nodes on one machine (cluster_utils, tests): the default is taken by a sibling.
        return free_port(self.node_ip_address)

    def _start_gcs(self) -> subprocess.Popen:
        port_file = os.path.join(self.session_dir, "gcs_server.port")
        port = self.params.port or free_port(self.node_ip_address)
        if not port_is_free(self.node_ip_address, port):
            raise ProcessStartError(
                f"Port {port} on {self.node_ip_address} is already in use; is a Ray cluster already running? "
                "Stop it with 'ray stop' or choose another port with --port."
            )
        self._gcs_args = [
            "-m", "ray.gcs.server",
            "--port", str(port),
            "--node-ip-address", self.node_ip_address,
            "--session-dir", self.session_dir,
            "--port-file", port_file,
            "--redis-address", self.params.redis_address,
        ]
        proc = self._spawn("gcs_server", self._gcs_args, env_extra=self._redis_env())
        self.gcs_address = f"{self.node_ip_address}:{port}"
        return proc

    def _start_client_server(self) -> None:
        """The Ray Client server (ray.util.client.server) on every interface, as Ray's."""
        p = self.params
        port = p.ray_client_server_port or 0
        if port and not port_is_free("0.0.0.0", port):
            if p.ray_client_server_port_explicit:
                raise ProcessStartError(f"The Ray Client server port {port} is already in use; choose another "
                                        "with --ray-client-server-port.")
            logger.warning("Port %d is in use: this head runs no Ray Client server (choose a port with "
                           "--ray-client-server-port).", port)
            return
        port_file = os.path.join(self.session_dir, "ray_client_server.port")
        proc = self._spawn("ray_client_server", [
            "-m", "ray.util.client.server", "--address", self.gcs_address, "--host", "0.0.0.0",
            "--port", str(port), "--logs-dir", self.logs_dir, "--port-file", port_file,
        ])
        self.ray_client_server_port = int(self._wait_for_file(port_file, proc, "ray_client_server"))
    def _redis_env(self) -> dict[str, str]:
        # The password travels in the environment, not on the command line (ps shows that to everyone).
        return {"REDIS_PASSWORD": self.params.redis_password, "REDIS_USERNAME": self.params.redis_username}

    def kill_gcs_server(self) -> None:
        """SIGKILL the GCS (Ray's Node.kill_gcs_server; fault-tolerance tests)."""
        proc = self.processes.pop("gcs_server")
        proc.kill()
        proc.wait()
        process_registry.forget(self.temp_dir, proc.pid)

    def start_gcs_server(self) -> None:
        """Start the GCS again on the same port (with Redis it takes its cluster over)."""
        port_file = os.path.join(self.session_dir, "gcs_server.port")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(port_file)
        proc = self._spawn("gcs_server", self._gcs_args, env_extra=self._redis_env())
        self._wait_for_file(port_file, proc, "gcs_server")

    @property
    def _raylet_ready_file(self) -> str:
        return os.path.join(self.session_dir, f"raylet_{self.node_id[:8]}.json")

    def _spawn_raylet(self) -> subprocess.Popen:
        ready_file = self._raylet_ready_file
        p = self.params
        args = [
            "-m", "ray.raylet.main",
            "--node-id", self.node_id,
            "--node-ip-address", self.node_ip_address,
            "--gcs-address", self.gcs_address,
            "--session-dir", self.session_dir,
            "--resources", json.dumps(self.resources),
            "--labels", json.dumps(p.labels),
            "--ready-file", ready_file,
            "--metrics-export-port", str(self.metrics_export_port),
        ]
        if module_exists("ray.agent"):
            args += ["--runtime-env-agent-address", f"{self.node_ip_address}:{self.agent_grpc_port}"]
        if p.head:
            args.append("--head")
        return self._spawn("raylet", args)

    def _write_node_info(self) -> None:
        info = {
            "node_id": self.node_id,
            "node_ip_address": self.node_ip_address,
            "gcs_address": self.gcs_address,
            "session_dir": self.session_dir,
            "dashboard_url": self.dashboard_url,
            "ray_client_server_port": self.ray_client_server_port,
            "raylet": self.raylet_info,
            "pids": {name: proc.pid for name, proc in self.processes.items()},
        }
        Path(self.session_dir, f"node_{self.node_id[:8]}.json").write_text(json.dumps(info, indent=1))

    # ------------------------------------------------------------------ stop
    def dead_processes(self) -> list[str]:
        return [f"{name} (pid={proc.pid}, exit code {proc.returncode})"
                for name, proc in self.processes.items() if proc.poll() is not None]

    def kill_process(self, name: str, force: bool = False) -> None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        self._terminate([proc], force)

    def kill_all(self, force: bool = False) -> None:
        """Stop this node's processes (raylet and its workers first, the GCS last) and its shared memory."""
        order = ["monitor", "raylet", "agent", "dashboard", "gcs_server"]
        for name in sorted(self.processes, key=lambda n: order.index(n) if n in order else 1):
            self.kill_process(name, force)
        if self.session_dir:
            process_registry.remove_session_shm(self.session_dir)

    def _terminate(self, procs: list[subprocess.Popen], force: bool) -> None:
        import psutil

        live = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                live.append(psutil.Process(proc.pid))
        process_registry.kill_tree(live, force, grace_period_s=10)
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
            process_registry.forget(self.temp_dir, proc.pid)
