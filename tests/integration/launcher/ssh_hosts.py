"""SSH hosts for the cluster launcher tests: one network namespace per host (netns_hosts.TestNetwork), each
running Debian's `/usr/sbin/sshd -D` with a config, host key and authorized key made here, and a home and
temp dir of its own (sshd's `SetEnv HOME=... RAY_TMPDIR=...`), so Ray on one "host" never sees another's
files or processes although they share this machine's disk. The home's `.bashrc` puts this checkout's
.venv first on PATH, as a real host would activate its Python environment.

`SSHHosts.close()` stops every Ray process recorded in each host's temp dir (removing their shared
memory), kills sshd and everything else in the namespaces (TestNetwork), and deletes the keys and dirs."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netns_hosts import TestNetwork

try:
    from ray._common import process_registry
except ImportError:  # the real Ray (bench/): what runs in a host dies with its namespaces
    process_registry = None

INSTALL = Path(__file__).with_name("install-packages")
SSHD = "/usr/sbin/sshd"


def ensure_packages() -> None:
    if not (os.path.exists(SSHD) and shutil.which("rsync")):
        subprocess.run([str(INSTALL)], check=True)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "openray-test", "-f", str(path)],
                   check=True)


class SSHHosts:
    def __init__(self, hosts: int, pid_namespace: bool = False):
        self.net = TestNetwork(hosts)
        # Each sshd (and so all a host runs) in a PID namespace of its own with its own /proc, so that the real
        # Ray's `ray stop`, which kills every Ray process it can see, stays on its host (bench/).
        self.pid_namespace = pid_namespace
        self.root = Path(tempfile.mkdtemp(prefix="orl", dir="/tmp"))  # short: Unix socket paths live below
        self.key = self.root / "id_ed25519"
        self.wrong_key = self.root / "wrong_ed25519"
        self.sshd: list[subprocess.Popen] = []
        self.homes: list[Path] = []
        self.temp_dirs: list[Path] = []
        self._made_run_sshd = False
        self._hosts = hosts

    @property
    def ips(self) -> list[str]:
        return self.net.ips

    def __enter__(self) -> SSHHosts:
        try:
            self.net.__enter__()
            _keygen(self.key)
            _keygen(self.wrong_key)
            if not os.path.isdir("/run/sshd"):  # sshd's privilege separation dir (Debian's service makes it)
                os.makedirs("/run/sshd", mode=0o755)
                self._made_run_sshd = True
            for i in range(self._hosts):
                self._start_host(i)
            for ip in self.ips:
                self._wait_port(ip, 22)
        except BaseException:
            self.close()
            raise
        return self

    def _start_host(self, i: int) -> None:
        d = self.root / f"h{i}"
        home, tmp, etc = d / "home", d / "tmp", d / "sshd"
        for p in (home, tmp, etc):
            p.mkdir(parents=True)
        self.homes.append(home)
        self.temp_dirs.append(tmp)
        venv_bin = Path(sys.executable).parent
        (home / ".bashrc").write_text(f'export PATH="{venv_bin}:$PATH"\n')
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "host_key")], check=True)
        shutil.copy(f"{self.key}.pub", etc / "authorized_keys")
        config = etc / "sshd_config"
        config.write_text(
            f"ListenAddress {self.ips[i]}:22\n"
            f"HostKey {etc / 'host_key'}\n"
            f"PidFile {etc / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {etc / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPrintMotd no\n"
            f"SetEnv HOME={home} RAY_TMPDIR={tmp}\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n")
        log = open(etc / "sshd.log", "wb")
        sshd = [SSHD, "-D", "-e", "-f", str(config)]
        if self.pid_namespace:  # bash as the namespace's init reaps the daemons Ray leaves to it
            sshd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "bash", "-c",
                    '"$@" & wait $!', "init", *sshd]
        self.sshd.append(subprocess.Popen([*self.net.exec_args(i), *sshd],
                                          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        log.close()

    def _wait_port(self, ip: str, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=1):
                return
            if time.monotonic() > deadline:
                logs = "".join(p.read_text() for p in self.root.glob("h*/sshd/sshd.log"))
                raise RuntimeError(f"sshd on {ip} did not listen within {timeout} s: {logs}")
            time.sleep(0.1)

    def ray_processes(self, i: int) -> list[int]:
        """Live Ray processes recorded in host i's temp dir."""
        temp = str(self.temp_dirs[i] / "ray")
        return [proc.pid for _, proc in process_registry.recorded_processes(temp) if proc is not None]

    def close(self) -> None:
        for tmp in self.temp_dirs if process_registry is not None else []:
            with contextlib.suppress(Exception):
                process_registry.stop_all(str(tmp / "ray"), force=True)
        for proc in self.sshd:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        self.net.close()
        shutil.rmtree(self.root, ignore_errors=True)
        if self._made_run_sshd:
            with contextlib.suppress(OSError):
                os.rmdir("/run/sshd")

    def __exit__(self, *exc) -> None:
        self.close()

