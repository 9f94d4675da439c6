"""Bring one node up to date, in Ray's numbered steps (NodeUpdater, NUM_SETUP_STEPS = 7), printing each step
and each command's output with the node's prefix. A failure becomes a NodeUpdateError naming the host, its
role and the step."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import yaml

from ray.autoscaler._private.launcher import cluster_yaml
from ray.autoscaler._private.launcher import state as st
from ray.autoscaler._private.launcher.ssh import CommandFailed, SSHError, SSHRunner

NUM_SETUP_STEPS = 7
_print_lock = threading.Lock()


class NodeUpdateError(RuntimeError):
    def __init__(self, ip: str, role: str, step: str, detail: str):
        super().__init__(f"{role} {ip}: {step} failed: {detail}")
        self.ip, self.role, self.step, self.detail = ip, role, step, detail


def echo(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


@dataclass
class Plan:
    """What to do on a node: set-up (file mounts, initialization and setup commands) and/or start Ray."""

    setup: bool
    start: bool
    reason: str = ""


@dataclass
class NodeUpdater:
    ip: str
    role: str  # "head" | "worker"
    config: dict[str, Any]
    state: st.ClusterState
    plan: Plan
    head_ip: str
    token: str | None = None
    ssh_ip: str | None = None  # the address to reach it at (the head's external_head_ip), if not `ip`
    runner: SSHRunner = field(init=False)
    step: str = field(init=False, default="")

    def __post_init__(self) -> None:
        auth = self.config["auth"]
        self.runner = SSHRunner(self.ssh_ip or self.ip, auth["ssh_user"], auth.get("ssh_private_key"),
                                auth.get("ssh_proxy_command"))
        self.prefix = f"  ({self.role} {self.ip}) "

    def say(self, text: str, indent: int = 0) -> None:
        echo(self.prefix + "  " * indent + text)

    def begin(self, n: int, text: str) -> None:
        self.step = f"[{n}/{NUM_SETUP_STEPS}] {text}"
        self.say(self.step)

    def _tag(self, status: str, **extra: str) -> None:
        self.state.set_tags(self.ip, self.role, **{st.TAG_NODE_STATUS: status}, **extra)

    def env(self) -> dict[str, str]:
        return {"RAY_HEAD_IP": self.head_ip}

    def run_commands(self, commands: list[str], n: int, title: str, empty: str) -> None:
        if not commands:
            self.begin(n, empty)
            return
        self.begin(n, title)
        for i, cmd in enumerate(commands):
            self.say(f"({i}/{len(commands)}) {cmd}", 1)
            self.runner.run(cmd, env=self.env(), on_line=lambda line: self.say(line, 2))

    def update(self, skip_wait: bool = False) -> None:
        try:
            self._update(skip_wait)
        except SSHError as e:
            self._tag(st.STATUS_UPDATE_FAILED)
            raise NodeUpdateError(self.ip, self.role, self.step, ssh_hint(str(e), self.config, e.unreachable)) from e
        except CommandFailed as e:
            self._tag(st.STATUS_UPDATE_FAILED)
            tail = f"\n{e.output_tail}" if e.output_tail else ""
            raise NodeUpdateError(self.ip, self.role, self.step, f"{e}{tail}") from e

    def _update(self, skip_wait: bool) -> None:
        if not skip_wait:  # `ray up` waits for the head itself, before it asks the head what is alive
            self._tag(st.STATUS_WAITING_FOR_SSH)
            self.begin(2, "Waiting for SSH to become available")
            self.runner.wait_ready(on_line=lambda line: self.say(line, 1))
        rhash = cluster_yaml.runtime_hash(self.config, self.role)
        if self.plan.setup:
            self._tag(st.STATUS_SYNCING_FILES)
            self.begin(3, "Processing file mounts")
            self._file_mounts()
            self.begin(4, "No worker file mounts to sync")
            self._tag(st.STATUS_SETTING_UP)
            self.run_commands(self.config["initialization_commands"], 5, "Running initialization commands",
                              "No initialization commands to run.")
            self.run_commands(self.config["setup_commands"] + self.config[f"{self.role}_setup_commands"], 6,
                              "Running setup commands", "No setup commands to run.")
        else:
            self.say("Configuration already up to date, skipping file mounts, initalization and setup commands."
                     if not self.plan.reason else f"{self.plan.reason}: skipping file mounts, initialization "
                     "and setup commands.", 0)
        if self.plan.start:
            if self.role == "worker" and self.token:
                self.say("Copying the head's authentication token to ~/.ray/auth_token", 0)
                self.runner.write_file("~/.ray/auth_token", self.token.encode())
            self.run_commands(self.config[f"{self.role}_start_ray_commands"], 7, "Starting the Ray runtime",
                              "No Ray start commands to run.")
        else:
            self.begin(7, "Not restarting Ray (--no-restart)")
        self._tag(st.STATUS_UP_TO_DATE, **{st.TAG_RUNTIME_CONFIG: rhash})
        self.say("New status: up-to-date")

    def write_bootstrap(self, verbose: bool = True) -> None:
        """The head's ~/ray_bootstrap_config.yaml and ~/ray_bootstrap_key.pem (for an autoscaler there)."""
        text = yaml.safe_dump(cluster_yaml.bootstrap_config(self.config), sort_keys=False)
        if verbose:
            self.say("~/ray_bootstrap_config.yaml from the cluster config", 1)
        self.runner.write_file("~/ray_bootstrap_config.yaml", text.encode())
        key = self.config["auth"].get("ssh_private_key")
        if key:
            if verbose:
                self.say(f"~/ray_bootstrap_key.pem from {key}", 1)
            with open(key, "rb") as f:
                self.runner.write_file("~/ray_bootstrap_key.pem", f.read())

    def _file_mounts(self) -> None:
        if self.role == "head":
            self.write_bootstrap()
        for remote, local in self.config["file_mounts"].items():
            self.say(f"{remote} from {local}", 1)
            self.runner.rsync_up(local, remote, self.config["rsync_exclude"], self.config["rsync_filter"])


def ssh_hint(text: str, config: dict[str, Any], unreachable: bool) -> str:
    auth = config["auth"]
    if unreachable:
        return (f"{text}\nThe host cannot be reached over SSH: check that it is up, that the address in the "
                "cluster config is right and that sshd listens on port 22.")
    if "Permission denied" in text:
        key = auth.get("ssh_private_key") or "ssh's default identities"
        return (f"{text}\nSSH refused the login as {auth['ssh_user']!r} with {key}: check auth.ssh_user and "
                "auth.ssh_private_key, and that the key's public half is in the host's authorized_keys.")
    return text
