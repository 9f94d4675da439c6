"""A forked worker's handle keeps naming its own process after the pid is reused.

The fork server reaps its children at once, so a worker's pid is free as soon as the worker exits, and a busy
node (pid_max is 32,768 on this machine) hands it to another process within minutes. The raylet must then
neither see the dead worker as alive nor SIGKILL the stranger. The test makes the kernel reuse a pid on purpose:
in a private PID namespace (root) it writes ns_last_pid so that the next process gets the dead worker's pid."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, signal, subprocess, sys
    from ray.raylet.worker_pool import ForkedProcess

    worker = subprocess.Popen(["sleep", "60"])
    handle = ForkedProcess(worker.pid)
    assert handle.poll() is None
    worker.kill()
    worker.wait()  # reaped, as the fork server reaps its children: the pid is free
    with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
        fh.write(str(worker.pid - 1))
    stranger = subprocess.Popen(["sleep", "60"])
    assert stranger.pid == worker.pid, (stranger.pid, worker.pid)
    try:
        assert handle.poll() == -1, "the dead worker looks alive: its pid now names another process"
        try:
            handle.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        assert stranger.poll() is None, "the signal meant for the dead worker killed the process that took its pid"
        print("OK")
    finally:
        stranger.kill()
""")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")
def test_a_dead_workers_handle_neither_sees_nor_signals_the_process_that_reused_its_pid():
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.decode().strip()}")
    run = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", SCRIPT],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "OK", run.stdout + run.stderr
