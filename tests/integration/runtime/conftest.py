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
