"""Finding the processes a benchmark run started, for idle memory and for cleanup.

Runs under both interpreters, and the real Ray's virtualenv has no psutil, so this reads
Linux's /proc directly (stdlib only). Every workload subprocess gets a unique token in its
environment (TOKEN_ENV); every process a runtime starts inherits it, even one that detaches
into its own session, so the token finds exactly the processes this run started.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass

TOKEN_ENV = "OPENRAY_BENCH_TOKEN"
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    cmdline: list[str]
    rss_bytes: int

    @property
    def short_name(self) -> str:
        """A readable name: the module after `-m`, else the script or executable's basename."""
        args = self.cmdline
        if len(args) == 1:  # a process that rewrote its title (setproctitle) shows one spaced string
            args = args[0].split()
        if not args:
            return f"pid {self.pid}"
        if "-m" in args[:-1]:
            return args[args.index("-m") + 1]
        for arg in args[1:]:
            if arg.endswith(".py"):
                return os.path.basename(arg)
        name = os.path.basename(args[0])
        if name.startswith("python") and len(args) > 1:  # e.g. `python -c ...`: show what it runs
            return " ".join([name, *args[1:]])[:60]
        return name


def python_loop_seconds(rounds: int = 3) -> float:
    """How long this machine takes for a fixed pure-Python loop (10,000,000 additions), the best of `rounds`.
    On a shared VM the host's other tenants can slow a core by 40% or more with no `steal` time showing; this is
    written next to a bench table so that tables from a slow spell can be told apart."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for `ray start --port=...` and the like)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:  # gone, or not ours to read
        return None


def proc_info(pid: int) -> ProcInfo | None:
    stat = _read(f"/proc/{pid}/stat")
    statm = _read(f"/proc/{pid}/statm")
    cmdline = _read(f"/proc/{pid}/cmdline")
    if stat is None or statm is None or cmdline is None:
        return None
    # The command name in stat is in parentheses and may hold spaces; fields resume after the last ')'.
    after_name = stat[stat.rindex(b")") + 2:].split()
    state, ppid = after_name[0], int(after_name[1])
    if state == b"Z":  # a zombie holds no memory and needs no killing
        return None
    return ProcInfo(pid, ppid, [a.decode(errors="replace") for a in cmdline.split(b"\0") if a],
                    int(statm.split()[1]) * _PAGE)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (None: it is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _has_token(pid: int, token: str) -> bool:
    environ = _read(f"/proc/{pid}/environ")
    return environ is not None and f"{TOKEN_ENV}={token}".encode() in environ.split(b"\0")


def processes_of_run(token: str | None, markers: list[str] | None = None,
                     root_pid: int | None = None) -> list[ProcInfo]:
    """Live processes that carry `token`, mention one of `markers` (e.g. the session dir) in
    their command line, or descend from `root_pid`; `root_pid` itself and this process are left out."""
    infos = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := proc_info(int(entry))) is not None:
            infos[info.pid] = info
    chosen: set[int] = set()
    for pid, info in infos.items():
        joined = " ".join(info.cmdline)
        if (token and _has_token(pid, token)) or (markers and any(m and m in joined for m in markers)):
            chosen.add(pid)
    if root_pid is not None:
        children: dict[int, list[int]] = {}
        for info in infos.values():
            children.setdefault(info.ppid, []).append(info.pid)
        stack = list(children.get(root_pid, []))
        while stack:
            pid = stack.pop()
            if pid not in chosen:
                chosen.add(pid)
                stack.extend(children.get(pid, []))
    chosen -= {root_pid, os.getpid()}
    return [infos[pid] for pid in sorted(chosen)]


def _alive(pid: int) -> bool:
    return proc_info(pid) is not None


def terminate(pids: list[int], grace_s: float = 5.0) -> int:
    """SIGTERM these processes, SIGKILL the ones still alive after `grace_s`; returns how many were alive."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in alive):
        time.sleep(0.1)
    for pid in alive:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return len(alive)
