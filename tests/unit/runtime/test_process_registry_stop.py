"""`ray stop`'s waits (ray._common.process_registry): a stopped process counts as gone once it has exited, whether
or not its parent has reaped it yet. Ray's daemons are orphans whose parent is PID 1, and PID 1 reaps late (this
VM's init every ~2 s) or never (a container whose PID 1 is a shell); waiting for the reaping made every `ray stop`
take the grace period's share of that for each group of processes it stopped."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from ray._common import process_registry

# A parent that starts a child and never reaps it: the child's exit leaves a zombie, as under a lazy PID 1.
_NEGLECTFUL_PARENT = """
import subprocess, sys, time
child = subprocess.Popen(["sleep", "600"])
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def unreaped_child() -> Iterator[psutil.Process]:
    parent = subprocess.Popen([sys.executable, "-c", _NEGLECTFUL_PARENT], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        yield child
    finally:
        if child is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        parent.kill()  # the child's zombie goes to init, which reaps it
        parent.wait()
        parent.stdout.close()


def _zombie(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_an_exited_process_its_parent_has_not_reaped_counts_as_stopped(unreaped_child: psutil.Process) -> None:
    assert process_registry.wait_exited([unreaped_child], 0) == [unreaped_child]  # running
    unreaped_child.send_signal(signal.SIGTERM)
    assert process_registry.wait_exited([unreaped_child], 60) == []
    assert _zombie(unreaped_child)  # exited, still unreaped: psutil.wait_procs would have waited on it
    _, alive = psutil.wait_procs([unreaped_child], timeout=0.2)
    assert alive == [unreaped_child]


def test_ray_stop_does_not_wait_out_the_grace_period_for_a_parent_that_never_reaps(
        unreaped_child: psutil.Process, tmp_path: Path) -> None:
    """`stop_all` (what `ray stop` runs) with a grace period longer than this test's timeout: it returns because
    the raylet exited, not because the grace period ran out (the old wait hit the timeout here)."""
    temp_dir = str(tmp_path / "ray")
    process_registry.record(temp_dir, unreaped_child.pid, "raylet", str(tmp_path / "session_test"))
    stopped = process_registry.stop_all(temp_dir, grace_period_s=3600)
    assert stopped == 1
    assert _zombie(unreaped_child)
    assert process_registry.recorded_processes(temp_dir) == []
