"""Every process a launcher starts is recorded here, so `ray stop` finds exactly those (and nothing of
another user's) and a crashed driver's cluster can be cleaned up.

Records live in `<temp_dir>/ray_processes/<pid>.json` with the process's create time, which guards
against killing an unrelated process that reused the pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the raylet reads only shm_dir_for_node here (psutil: ~0.6 MiB RSS)
    import psutil

SHM_ROOT = Path("/dev/shm")
SHM_PREFIX = "openray-"


def registry_dir(temp_dir: str) -> Path:
    return Path(temp_dir) / "ray_processes"


def record(temp_dir: str, pid: int, name: str, session_dir: str) -> None:
    import psutil
    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return
    d = registry_dir(temp_dir)
    d.mkdir(parents=True, exist_ok=True)
    entry = {"pid": pid, "create_time": created, "name": name, "session_dir": session_dir}
    (d / f"{pid}.json").write_text(json.dumps(entry))


def forget(temp_dir: str, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (registry_dir(temp_dir) / f"{pid}.json").unlink()


def recorded_processes(temp_dir: str) -> list[tuple[dict, psutil.Process | None]]:
    """(record, live process or None when it is gone or the pid was reused)."""
    import psutil
    out = []
    d = registry_dir(temp_dir)
    if not d.is_dir():
        return out
    for path in sorted(d.glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        proc = None
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(entry["pid"])
            if abs(p.create_time() - entry["create_time"]) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                proc = p
        out.append((entry, proc))
    return out


def kill_tree(procs: list[psutil.Process], force: bool, grace_period_s: float) -> int:
    """SIGTERM (or SIGKILL with force) the processes and their descendants; returns how many were signalled."""
    import psutil
    everyone: dict[int, psutil.Process] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            for child in p.children(recursive=True):
                everyone[child.pid] = child
            everyone[p.pid] = p
    sig = signal.SIGKILL if force else signal.SIGTERM
    for p in everyone.values():
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)
    alive = wait_exited(list(everyone.values()), grace_period_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    wait_exited(alive, 5)
    return len(everyone)


def wait_exited(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Waits up to `timeout_s` for the processes to exit; returns those still running.

    A zombie has exited. `psutil.wait_procs` waits until a process that is not our child is reaped too, which is
    its parent's business: where PID 1 reaps orphans every few seconds (this VM's init: about 2 s), or never (a
    container whose PID 1 is a shell), every `ray stop` waited that long for each group it stopped."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if _alive(p)]
    return alive


def shm_dir_for_node(session_dir: str, node_id_hex: str) -> Path:
    return SHM_ROOT / f"{SHM_PREFIX}{Path(session_dir).name}-{node_id_hex[:12]}"


def remove_session_shm(session_dir: str) -> None:
    """Remove every node's shared-memory dir of the session (one per raylet)."""
    for path in SHM_ROOT.glob(f"{SHM_PREFIX}{Path(session_dir).name}*"):
        shutil.rmtree(path, ignore_errors=True)


def stop_all(temp_dir: str, force: bool = False, grace_period_s: float = 16) -> int:
    """Stop every recorded process under `temp_dir` and remove their shared memory; returns the count."""
    entries = recorded_processes(temp_dir)
    # The autoscaler first (it would replace the nodes going away), then raylets (and their workers), the GCS
    # last, as `ray stop` does.
    order = {"monitor": -1, "raylet": 0, "agent": 1, "dashboard": 2, "gcs_server": 3}
    live = sorted(((e, p) for e, p in entries if p is not None), key=lambda ep: order.get(ep[0]["name"], 1))
    count = 0
    for group in sorted({order.get(e["name"], 1) for e, _ in live}):
        procs = [p for e, p in live if order.get(e["name"], 1) == group]
        if group == order["raylet"] and not force:
            # Raylets alone first, with SIGUSR2: each drains (its running tasks finish, nothing new starts there)
            # and then stops its workers itself; whatever is left after the grace period goes as before.
            count += _terminate_alone(procs, grace_period_s)
        count += kill_tree(procs, force, grace_period_s)
    for entry, _ in entries:
        remove_session_shm(entry["session_dir"])
        forget(temp_dir, entry["pid"])
    wait_exited([p for _, p in live], 5)
    with contextlib.suppress(FileNotFoundError):
        current_cluster_file(temp_dir).unlink()
    return count


def _terminate_alone(procs: list[psutil.Process], grace_period_s: float) -> int:
    """Ask these raylets to drain and stop (SIGUSR2; not their workers) and wait up to the grace period for them
    to exit."""
    import psutil
    signalled = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGUSR2)
            signalled.append(p)
    wait_exited(signalled, grace_period_s)
    return 0


def _alive(p: psutil.Process) -> bool:
    """Running and not a zombie (our own child's zombie is reaped here)."""
    import psutil
    try:
        if not p.is_running():
            return False
        if p.status() != psutil.STATUS_ZOMBIE:
            return True
        ours = p.ppid() == os.getpid()
    except psutil.Error:
        return False
    if ours:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(p.pid, os.WNOHANG)
    return False


def current_cluster_file(temp_dir: str) -> Path:
    return Path(temp_dir) / "ray_current_cluster"


def default_temp_dir() -> str:
    """`$RAY_TMPDIR/ray` if set, else `<the system temp dir>/ray` (TMPDIR counts), as Ray does."""
    import tempfile

    return os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray")
