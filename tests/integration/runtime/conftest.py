"""Fixtures that start real OpenRay processes in a private temp dir and always clean them up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from ray._common import process_registry
from ray._common.net import free_port

RAY = [sys.executable, "-m", "ray.scripts.scripts"]


class CliEnv:
    """Runs `ray ...` with TMPDIR pointing at a per-test dir so sessions/registries never collide."""

    def __init__(self, root: Path):
        self.root = root
        self.temp_dir = str(root / "ray")
        self.env = dict(os.environ, TMPDIR=str(root), RAY_ADDRESS="")
        self.env.pop("RAY_ADDRESS")

    def ray(self, *args: str, check: bool = True, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*RAY, *args], env={**self.env, **env}, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"ray {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def recorded_pids(self) -> list[int]:
        return [e["pid"] for e, p in process_registry.recorded_processes(self.temp_dir) if p is not None]

    @staticmethod
    def assert_no_processes(pids: list[int]) -> None:
        assert_no_processes(pids)

    def cleanup(self) -> None:
        process_registry.stop_all(self.temp_dir, force=True, grace_period_s=5)


@pytest.fixture
def cli(tmp_path):
    env = CliEnv(tmp_path)
    try:
        yield env
    finally:
        env.cleanup()


@pytest.fixture
def port() -> int:
    return free_port()


def assert_no_processes(pids: list[int]) -> None:
    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(p.cmdline())[:200]}")
        except psutil.NoSuchProcess:
            pass
    assert not alive, f"processes still running: {alive}"


class RedisServer:
    """Debian's redis-server on a free loopback port with a password, its data in the test's dir."""

    def __init__(self, root: Path, password: str = "openray-test-pw"):
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make tools` (it installs Debian's redis-server).")
        self.password = password
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", password, "--dir", str(root),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=open(root / "redis.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        import socket
        import time

        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start: {(root / 'redis.log').read_text()}") from None
                time.sleep(0.05)

    def keys(self, pattern: str = "*") -> list[bytes]:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password)
        try:
            return list(client.keys(pattern))
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
