"""Ray's `local` provider: a fixed list of machines (`provider.head_ip`, `provider.worker_ips`) reached over SSH
(`auth.ssh_user`, `auth.ssh_private_key`), as in Ray's cluster launcher.

"Launching" a node takes a host of `worker_ips` that is not in use, copies the head's token to its
`~/.ray/auth_token` (through ssh's stdin) and runs the config's `setup_commands`, `worker_setup_commands` and
`worker_start_ray_commands` there (Ray's defaults: `ray stop`, then `ray start --address=$RAY_HEAD_IP:6379`),
with `RAY_HEAD_IP`, `RAY_CLOUD_INSTANCE_ID` (the host) and `RAY_NODE_TYPE_NAME` exported; "terminating" runs
`ray stop` there and frees the host. Which hosts are in use is kept in a state file (`provider.state_path`,
default `<temp dir>/cluster-<name>.state`, as Ray's `/tmp/cluster-<name>.state`), so a restarted autoscaler
knows them; a host the file names whose Ray is not alive when the autoscaler first looks (its Ray belonged to
an earlier head) is free again. Ray nodes are matched to hosts by the instance id they registered with, or by
IP for nodes started by hand; a host of `worker_ips` where Ray runs already is adopted.

`ray up` starts min_workers of the workers itself (the first hosts of `worker_ips`): for the first
`provider.launch_grace_s` (300 s) those hosts are shown as instances `ray up` is starting (so min_workers
launches nothing a second time) until their Ray registers; the other hosts are launched on demand at once.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ray.autoscaler._private.providers import CloudInstance, LaunchError, NodeProvider

logger = logging.getLogger(__name__)

DEFAULT_WORKER_START_RAY_COMMANDS = ["ray stop", "ray start --address=$RAY_HEAD_IP:6379"]
STARTING, RUNNING = "starting", "running"
# (host, bash script, its stdin) -> (exit code, output)
Runner = Callable[[str, str, bytes | None], tuple[int, str]]
WRITE_TOKEN = ("umask 077 && mkdir -p ~/.ray && cat > ~/.ray/auth_token.tmp.$$ && chmod 600 ~/.ray/auth_token.tmp.$$ "
               "&& mv -f ~/.ray/auth_token.tmp.$$ ~/.ray/auth_token")


class SSHCommandRunner:
    """Runs a bash script on a host with `ssh`, as `ray up` does (batch mode, a login shell that reads
    ~/.bashrc; see launcher/ssh.py)."""

    def __init__(self, auth: dict, timeout_s: float = 600) -> None:
        self.user = auth.get("ssh_user") or os.environ.get("USER", "root")
        key = auth.get("ssh_private_key")
        self.key = os.path.expanduser(key) if key else None
        self.proxy = auth.get("ssh_proxy_command")
        self.timeout_s = timeout_s

    def __call__(self, host: str, script: str, stdin: bytes | None = None) -> tuple[int, str]:
        import subprocess

        from ray.autoscaler._private.launcher.ssh import SSHRunner

        argv = SSHRunner(host, self.user, self.key, self.proxy).argv(script)
        try:
            done = subprocess.run(argv, input=stdin if stdin is not None else b"", capture_output=True,
                                  timeout=self.timeout_s)
        except (OSError, subprocess.TimeoutExpired) as e:
            return 255, str(e)
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace")[-2000:]


# How long after the autoscaler starts the min_workers hosts are left to `ray up` (it starts them itself).
DEFAULT_LAUNCH_GRACE_S = 300


class LocalNodeProvider(NodeProvider):
    match_by_ip = True

    def __init__(self, config, gcs_address: str, runner: Runner | None = None) -> None:
        provider = config.provider
        self.config = config
        self.head_ip = str(provider.get("head_ip") or gcs_address.rsplit(":", 1)[0])
        ips = provider.get("worker_ips") or []
        if not isinstance(ips, list) or not all(isinstance(ip, str) and ip for ip in ips):
            raise ValueError("provider.worker_ips must be a list of host names or IPs.")
        self.worker_ips = list(dict.fromkeys(ip for ip in ips if ip != self.head_ip))
        self.head_port = gcs_address.rsplit(":", 1)[1] if ":" in gcs_address else "6379"
        self._run = runner or SSHCommandRunner(config.raw.get("auth") or {})
        from ray._common import process_registry

        default_state = Path(process_registry.default_temp_dir()) / f"cluster-{config.cluster_name}.state"
        self.state_path = Path(provider.get("state_path") or default_state)
        self._lock = threading.Lock()
        self._state: dict[str, dict] = self._load()  # host -> {"node_type", "state"}
        self._unconfirmed = set(self._state)  # from the file: forgotten unless their Ray is alive
        self._errors: list[LaunchError] = []
        self._created = time.monotonic()
        self.launch_grace_s = float(provider.get("launch_grace_s", DEFAULT_LAUNCH_GRACE_S))

    def _worker_type(self) -> str:
        workers = [n for n in self.config.node_types if n != self.config.head_node_type]
        return workers[0] if workers else self.config.head_node_type

    def ray_up_hosts(self) -> list[str]:
        """The hosts `ray up` is starting (min_workers of worker_ips), while the launch grace lasts and their Ray
        has not registered."""
        if time.monotonic() - self._created >= self.launch_grace_s:
            return []
        types = self.config.node_types
        # Ray's local config has one node type, the head's too: its min_workers are the workers'.
        workers = [t for n, t in types.items() if n != self.config.head_node_type] or list(types.values())
        wanted = sum(t.min_workers for t in workers)
        return [ip for ip in self.worker_ips[:wanted] if ip not in self._state]

    def set_config(self, config) -> None:
        self.config = config

    # ------------------------------------------------------------------ state file
    def _load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return {ip: v for ip, v in data.items() if ip in self.worker_ips and isinstance(v, dict)}

    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._state, indent=1))
            os.replace(tmp, self.state_path)
        except OSError as e:
            logger.warning("Could not write the local provider's state file %s: %s", self.state_path, e)

    # ------------------------------------------------------------------ NodeProvider
    def observe_ray_nodes(self, nodes: list[tuple[str, str]]) -> None:
        """Hosts of worker_ips where Ray already runs (`ray up` starts min_workers of them itself) are this
        provider's running nodes: never started a second time, and counted against min/max workers."""
        with self._lock:
            changed = False
            alive = {ip for ip, _ in nodes}
            for ip in self._unconfirmed - alive:
                if self._state.get(ip, {}).get("state") == RUNNING:
                    logger.info("Host %s of the state file runs no Ray of this cluster: it is free again.", ip)
                    del self._state[ip]
                    changed = True
            self._unconfirmed = set()
            for ip, node_type in nodes:
                if ip in self.worker_ips and self._state.get(ip, {}).get("state") != RUNNING:
                    kind = node_type if node_type in self.config.node_types else self._worker_type()
                    self._state[ip] = {"node_type": kind, "state": RUNNING}
                    changed = True
            if changed:
                self._save()

    def non_terminated(self) -> dict[str, CloudInstance]:
        out = {self.head_ip: CloudInstance(self.head_ip, self.config.head_node_type, is_head=True, ip=self.head_ip)}
        with self._lock:
            for ip in self.ray_up_hosts():
                out[ip] = CloudInstance(ip, self._worker_type(), ip=ip, details="`ray up` is starting Ray there")
            for ip, v in self._state.items():
                out[ip] = CloudInstance(ip, v["node_type"], running=v["state"] == RUNNING, ip=ip,
                                        details="" if v["state"] == RUNNING else "running the start commands")
        return out

    def launch(self, node_type: str, count: int) -> None:
        with self._lock:
            taken = set(self._state) | set(self.ray_up_hosts())
            free = [ip for ip in self.worker_ips if ip not in taken]
            if len(free) < count:
                raise LaunchError(node_type, count, f"only {len(free)} of the {len(self.worker_ips)} hosts in "
                                  "provider.worker_ips are free; add hosts or lower max_workers.")
            hosts = free[:count]
            for ip in hosts:
                self._state[ip] = {"node_type": node_type, "state": STARTING}
            self._save()
        for ip in hosts:
            threading.Thread(target=self._start, args=(ip, node_type), daemon=True, name=f"local-start-{ip}").start()

    def terminate(self, instance_ids: list[str]) -> None:
        with self._lock:
            gone = [ip for ip in instance_ids if self._state.pop(ip, None) is not None]
            self._save()
        for ip in gone:
            threading.Thread(target=self._stop, args=(ip,), daemon=True, name=f"local-stop-{ip}").start()

    def poll_errors(self) -> list[LaunchError]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    # ------------------------------------------------------------------ commands
    def _script(self, ip: str, node_type: str, commands: list[str]) -> str:
        env = {"RAY_HEAD_IP": self.head_ip, "RAY_CLOUD_INSTANCE_ID": ip, "RAY_NODE_TYPE_NAME": node_type}
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in env.items())
        return exports + "set -e; " + "; ".join(commands)

    def start_commands(self) -> list[str]:
        raw = self.config.raw
        start = raw.get("worker_start_ray_commands") or [
            c.replace("6379", self.head_port) for c in DEFAULT_WORKER_START_RAY_COMMANDS]
        return list(raw.get("setup_commands") or []) + list(raw.get("worker_setup_commands") or []) + list(start)

    def _start(self, ip: str, node_type: str) -> None:
        rc, output = 0, ""
        token = self._token()
        if token:
            rc, output = self._run(ip, WRITE_TOKEN, token.encode())
            output = f"copying the cluster's token to ~/.ray/auth_token failed: {output}"
        if rc == 0:
            rc, output = self._run(ip, self._script(ip, node_type, self.start_commands()), None)
        with self._lock:
            if ip not in self._state:
                return  # terminated meanwhile
            if rc == 0:
                self._state[ip]["state"] = RUNNING
            else:
                del self._state[ip]
                self._errors.append(LaunchError(node_type, 1, f"the start commands failed on {ip} (exit code {rc}): "
                                                f"{output.strip()[-500:]}", [ip]))
            self._save()

    @staticmethod
    def _token() -> str | None:
        """The cluster's token (the autoscaler's own), which a worker needs to join; None with auth off."""
        from ray._common import auth

        if not auth.token_auth_enabled():
            return None
        try:
            return auth.load_token()
        except auth.AuthenticationError as e:
            logger.warning("The cluster's token cannot be read (%s); the workers get none.", e)
            return None

    def _stop(self, ip: str) -> None:
        rc, output = self._run(ip, "ray stop", None)
        if rc != 0:
            logger.warning("`ray stop` on %s failed (exit code %d): %s", ip, rc, output.strip()[-500:])
