"""Commands and file copies on one host with the system's `ssh` and `rsync` (`scp` when there is no rsync):
Ray's SSHCommandRunner, without a connection multiplexer (an `ssh -o ControlPersist` master would keep
the caller's pipes open after a command ends)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

# Ray's constants (python/ray/autoscaler/_private/constants.py), overridable the same way.
NODE_START_WAIT_S = float(os.environ.get("AUTOSCALER_NODE_START_WAIT_S", 900))
SSH_INTERVAL_S = float(os.environ.get("AUTOSCALER_NODE_SSH_INTERVAL_S", 5))
SSH_CONNECT_TIMEOUT_S = 10

_UNREACHABLE = ("Connection refused", "No route to host", "Connection timed out", "timed out",
                "Network is unreachable", "Could not resolve hostname", "Connection reset", "Connection closed",
                "kex_exchange_identification")


class SSHError(RuntimeError):
    """ssh itself failed (exit status 255): the host is unreachable or refused the key."""

    def __init__(self, message: str, unreachable: bool):
        super().__init__(message)
        self.unreachable = unreachable


class CommandFailed(RuntimeError):
    def __init__(self, cmd: str, returncode: int, output_tail: str):
        super().__init__(f"`{cmd}` exited with status {returncode}")
        self.cmd, self.returncode, self.output_tail = cmd, returncode, output_tail


class SSHRunner:
    def __init__(self, ip: str, ssh_user: str, ssh_private_key: str | None = None,
                 ssh_proxy_command: str | None = None):
        self.ip, self.user, self.key, self.proxy = ip, ssh_user, ssh_private_key, ssh_proxy_command

    def ssh_options(self, connect_timeout: float = SSH_CONNECT_TIMEOUT_S) -> list[str]:
        opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                "-o", f"ConnectTimeout={int(connect_timeout)}s"]
        if self.key:  # only that key; without one, ssh's defaults (~/.ssh/id_*, the agent)
            opts = ["-i", self.key, "-o", "IdentitiesOnly=yes", *opts]
        if self.proxy:
            opts += ["-o", f"ProxyCommand={self.proxy}"]
        return opts

    @property
    def target(self) -> str:
        return f"{self.user}@{self.ip}"

    @staticmethod
    def wrap(cmd: str, env: dict[str, str] | None = None, login: bool = True) -> str:
        """The remote command line: a login bash that reads ~/.bashrc, exports Ray's variables and the
        given ones, then runs `cmd` in a subshell (Ray's `bash --login -c -i 'source ~/.bashrc; ...'`, not
        interactive since there is no terminal)."""
        exports = {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
        prefix = "{ [ ! -f ~/.bashrc ] || source ~/.bashrc; } >/dev/null 2>&1; " if login else ""
        line = prefix + "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items()) + f" && ({cmd})"
        return "bash --login -c " + shlex.quote(line)

    def argv(self, cmd: str | None, env: dict[str, str] | None = None, tty: bool = False) -> list[str]:
        argv = ["ssh", *self.ssh_options()]
        if tty:
            argv.append("-tt")
        argv.append(self.target)
        if cmd is not None:
            argv.append(self.wrap(cmd, env))
        return argv

    def run(self, cmd: str, env: dict[str, str] | None = None, on_line: Callable[[str], None] | None = None,
            stdin: bytes | None = None) -> str:
        """Run `cmd`, passing each output line (stdout and stderr) to `on_line`; the output on success,
        CommandFailed / SSHError otherwise."""
        proc = subprocess.Popen(self.argv(cmd, env), stdin=subprocess.PIPE if stdin is not None else
                                subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if stdin is not None:
            threading.Thread(target=_feed, args=(proc, stdin), daemon=True).start()
        lines = []
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            if on_line is not None:
                on_line(line)
        rc = proc.wait()
        output = "\n".join(lines)
        if rc == 255 and _looks_like_ssh_error(output):
            raise SSHError(output.strip() or "ssh failed", unreachable=any(s in output for s in _UNREACHABLE))
        if rc != 0:
            raise CommandFailed(cmd, rc, "\n".join(lines[-20:]))
        return output

    def capture(self, cmd: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = subprocess.run(self.argv(cmd, env), stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode == 255 and _looks_like_ssh_error(proc.stderr):
            raise SSHError(proc.stderr.strip() or "ssh failed", unreachable=any(s in proc.stderr for s in _UNREACHABLE))
        return proc.returncode, proc.stdout, proc.stderr

    def wait_ready(self, deadline_s: float = NODE_START_WAIT_S, interval_s: float = SSH_INTERVAL_S,
                   on_line: Callable[[str], None] = print) -> None:
        """Ray's wait_ready: `uptime` until it works. A refused key fails at once; an unreachable host is
        retried every `interval_s` until `deadline_s`."""
        on_line("Running `uptime` as a test.")
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                rc, out, err = self.capture("uptime")
            except SSHError as e:
                if not e.unreachable or time.monotonic() + interval_s > deadline:
                    raise
                on_line(f"SSH still not available ({_first_line(str(e))}), retrying in {interval_s:g} seconds.")
                time.sleep(interval_s)
                continue
            if rc != 0:
                raise CommandFailed("uptime", rc, (out + err).strip())
            on_line("Success.")
            return

    def _rsync_argv(self, source: str, target: str, up: bool, exclude: list[str], filters: list[str]) -> list[str]:
        ssh = " ".join(shlex.quote(a) for a in ["ssh", *self.ssh_options()])
        if shutil.which("rsync"):
            argv = ["rsync", "--rsh", ssh, "-avz"]
            argv += [f"--exclude={e}" for e in exclude]
            argv += [f"--filter=dir-merge,- {f}" for f in filters]
        else:  # scp copies directories with -r; it does not know rsync's excludes
            argv = ["scp", "-r", *self.ssh_options()]
        remote = lambda p: f"{self.target}:{p}"  # noqa: E731
        return argv + ([source, remote(target)] if up else [remote(source), target])

    def rsync_up(self, source: str, target: str, exclude: list[str] = (), filters: list[str] = (),
                 on_line: Callable[[str], None] | None = None) -> None:
        """Copy a local file or directory to `target` on the host (directories: their contents, as
        Ray's `rsync source/ target/`). Paths go to rsync as they are: it protects remote arguments
        itself and keeps a leading `~/` expandable."""
        if os.path.isdir(source):
            source, target = source.rstrip("/") + "/", target.rstrip("/") + "/"
        parent = os.path.dirname(target.rstrip("/")) or "."
        self.run(f"mkdir -p {_remote_path(parent)}")
        self._copy(self._rsync_argv(source, target, True, list(exclude), list(filters)), on_line)

    def rsync_down(self, source: str, target: str, exclude: list[str] = (), filters: list[str] = (),
                   on_line: Callable[[str], None] | None = None) -> None:
        parent = os.path.dirname(os.path.abspath(target))
        os.makedirs(parent, exist_ok=True)
        self._copy(self._rsync_argv(source, target, False, list(exclude), list(filters)), on_line)

    def _copy(self, argv: list[str], on_line: Callable[[str], None] | None) -> None:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if on_line is not None:
            for line in proc.stdout.splitlines():
                on_line(line)
        if proc.returncode != 0:
            text = (proc.stderr or proc.stdout).strip()
            if _looks_like_ssh_error(text):
                raise SSHError(text, unreachable=any(s in text for s in _UNREACHABLE))
            raise CommandFailed(" ".join(argv[:1] + argv[-2:]), proc.returncode, text)

    def write_file(self, path: str, data: bytes, mode: str = "600") -> None:
        """Write `data` to `path` on the host through ssh's stdin (it never appears on a command line),
        atomically and with `mode`."""
        p = _remote_path(path)
        self.run(f"umask 077 && mkdir -p $(dirname {p}) && cat > {p}.tmp.$$ && chmod {mode} {p}.tmp.$$ "
                 f"&& mv -f {p}.tmp.$$ {p}", stdin=data)


def _remote_path(path: str) -> str:
    """A remote path for the shell: `~` and `~/...` stay expandable, the rest is quoted."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:]) if path[2:] else "~/"
    return shlex.quote(path)


def _looks_like_ssh_error(text: str) -> bool:
    return any(s in text for s in (*_UNREACHABLE, "Permission denied", "Host key verification failed",
                                   "ssh:", "Connection to", "rsync: connection unexpectedly closed"))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
