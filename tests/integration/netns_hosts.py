"""Hosts made of Linux network namespaces for tests (we run as root): a test bridge in the host namespace
with an address of its own, and one namespace per host joined to it by a veth pair, each with its own
address. `TestNetwork` removes every namespace (and so its veth), the bridge and any process still running
in a namespace when it closes, even when the test failed."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


class TestNetwork:
    __test__ = False  # not a test class

    def __init__(self, hosts: int):
        self.tag = secrets.token_hex(3)
        self.subnet = f"10.{200 + int(self.tag[:2], 16) % 50}.{int(self.tag[2:4], 16)}"
        self.bridge = f"orb{self.tag}"
        self.host_ip = f"{self.subnet}.1"  # the host namespace's address on the test bridge
        self.namespaces: list[str] = []
        self.ips: list[str] = []
        self._hosts = hosts

    def __enter__(self) -> TestNetwork:
        try:
            _ip("link", "add", "name", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(self._hosts):
                self.add_host(i)
        except BaseException:
            self.close()
            raise
        return self

    def add_host(self, i: int) -> str:
        ns = f"ort{self.tag}h{i}"
        host_end, ns_end = f"orv{self.tag}{i}", f"orn{self.tag}{i}"
        ip = f"{self.subnet}.{i + 2}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        _ip("link", "set", ns_end, "netns", ns)
        _ip("link", "set", host_end, "master", self.bridge)
        _ip("link", "set", host_end, "up")
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", ns_end)
        _ip("-n", ns, "link", "set", ns_end, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "route", "add", "default", "via", self.host_ip)
        self.ips.append(ip)
        return ns

    def exec_args(self, i: int) -> list[str]:
        """Prefix a command with this to run it in host `i`'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[i]]

    def pids(self, ns: str) -> list[int]:
        out = _ip("netns", "pids", ns, check=False).stdout
        return [int(p) for p in out.split()]

    def close(self) -> None:
        for ns in self.namespaces:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = self.pids(ns)
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + 5
                while pids and self.pids(ns) and time.monotonic() < deadline:
                    time.sleep(0.1)
            _ip("netns", "del", ns, check=False)  # takes its end of the veth, and so the pair, with it
        self.namespaces.clear()
        _ip("link", "del", self.bridge, check=False)

    def __exit__(self, *exc) -> None:
        self.close()
