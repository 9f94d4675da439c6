"""A node's log directory as the dashboard and the node agent serve it: safe names, categories, tails.

A file name is a path relative to `<session>/logs`; an absolute path, a `..` component, a NUL byte or a
name that resolves (through symlinks) outside the directory is refused with `BadLogFileName`, so nothing
outside the node's log directory is ever read.
"""

from __future__ import annotations

import fnmatch
import os
import re

MAX_LIST = 10_000
MAX_TAIL_BYTES = 64 * 2**20


class BadLogFileName(ValueError):
    """The 400 text for a file name that is not a plain name under the log directory."""


class LogFileNotFound(FileNotFoundError):
    """The 404 text."""


def resolve(logs_dir: str, filename: str) -> str:
    """The real path of `filename` inside `logs_dir`."""
    if not filename:
        raise BadLogFileName("No log file name given: pass filename=<a name from /api/v0/logs>.")
    if "\0" in filename:
        raise BadLogFileName("The log file name contains a NUL byte.")
    if os.path.isabs(filename) or filename.startswith("~"):
        raise BadLogFileName(f"The log file name {filename!r} is absolute: give a name relative to the node's "
                             "log directory, as /api/v0/logs lists them.")
    if ".." in re.split(r"[\\/]+", filename):
        raise BadLogFileName(f"The log file name {filename!r} contains '..': only files inside the node's log "
                             "directory can be read.")
    root = os.path.realpath(logs_dir)
    path = os.path.realpath(os.path.join(root, filename))
    if os.path.commonpath([root, path]) != root:
        raise BadLogFileName(f"The log file name {filename!r} points outside the node's log directory.")
    if not os.path.isfile(path):
        raise LogFileNotFound(f"Log file {filename!r} not found in the node's log directory.")
    return path


def list_files(logs_dir: str, glob: str = "*") -> list[str]:
    """Every file under `logs_dir` (relative names, sorted) matching `glob` (on the name or the path)."""
    out = []
    root = os.path.realpath(logs_dir)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if fnmatch.fnmatch(rel, glob) or fnmatch.fnmatch(name, glob):
                out.append(rel)
                if len(out) >= MAX_LIST:
                    return out
    return out


_CATEGORIES = (
    ("worker_out", re.compile(r"^worker-.*\.out$")),
    ("worker_err", re.compile(r"^worker-.*\.err$")),
    ("core_driver", re.compile(r"^python-core-driver-")),
    ("core_worker", re.compile(r"^python-core-worker-")),
    ("driver", re.compile(r"^job-driver-")),
    ("raylet", re.compile(r"^raylet")),
    ("gcs_server", re.compile(r"^gcs_server")),
    ("dashboard", re.compile(r"^dashboard")),
    ("agent", re.compile(r"^(agent|dashboard_agent|runtime_env)")),
    ("autoscaler", re.compile(r"^(monitor|autoscaler)")),
)


def categorize(files: list[str]) -> dict[str, list[str]]:
    """Ray's `/api/v0/logs` grouping (worker_out, worker_err, raylet, gcs_server, ..., internal)."""
    out: dict[str, list[str]] = {}
    for rel in files:
        name = os.path.basename(rel)
        category = next((c for c, pattern in _CATEGORIES if pattern.search(name)), "internal")
        out.setdefault(category, []).append(rel)
    return out


def tail(path: str, lines: int, start: int = 0, end: int | None = None) -> tuple[bytes, int]:
    """The last `lines` lines of the file (all of it when lines < 0, up to MAX_TAIL_BYTES) and the offset
    its end was at; with `start`/`end`, of that byte range of the file only (a task's part of a worker's log)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell() if end is None else max(0, min(end, f.tell()))
        start = max(0, min(start, end))
        if lines == 0:
            return b"", end
        if lines < 0:
            start = max(start, end - MAX_TAIL_BYTES)
            f.seek(start)
            return f.read(end - start), end
        block, data, pos = 64 * 1024, b"", end
        while pos > start and data.count(b"\n") <= lines and len(data) < MAX_TAIL_BYTES:
            step = min(block, pos - start)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
        keep = data.split(b"\n")
        trailing = keep[-1] == b""
        if trailing:
            keep.pop()
        keep = keep[-lines:]
        return b"\n".join(keep) + (b"\n" if trailing and keep else b""), end
