"""Running one workload under one runtime: a fresh interpreter in its own temp dir, with a
timeout, and afterwards no process of it left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import TOKEN_ENV, processes_of_run, terminate

BENCH_DIR = Path(__file__).resolve().parent
WORKLOADS_PY = BENCH_DIR / "workloads.py"
PROFILE_ENV = "OPENRAY_BENCH_PROFILE"  # read by workloads.py (which cannot import this module)

# Environment variables that would point a fresh driver at some other cluster or interpreter setup.
_SCRUBBED_ENV = ("RAY_ADDRESS", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RAY_JOB_CONFIG_JSON_ENV_VAR")


@dataclass
class Runtime:
    name: str  # "OpenRay" or "Ray" (or "OpenRay auth off" with --auth-cost)
    python: str  # the interpreter whose `import ray` is this runtime
    env: dict[str, str] = field(default_factory=dict)  # set last in the driver's environment


@dataclass
class WorkloadResult:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # row key -> {"value", "details"}
    error: str | None = None
    wall_s: float = 0.0
    log_path: str = ""
    ray_version: str = ""
    leftover_processes: int = 0
    leftover_names: list[str] = field(default_factory=list)


def workload_env(runtime: Runtime, tmp_root: str, token: str) -> dict[str, str]:
    """The driver's environment: its own temp dir (Ray keys 'the latest local cluster' off
    RAY_TMPDIR/TMPDIR, so a cluster someone else started is never joined), the runtime's
    interpreter first on PATH (so a job entrypoint's `python` is that one), no usage stats."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    bin_dir = str(Path(runtime.python).parent)
    env.update({
        "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
        "RAY_TMPDIR": tmp_root,
        "TMPDIR": tmp_root,
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray 2.60's default for a cluster it starts (ray.init or `ray start`), said explicitly so
        # that its JobSubmissionClient, whose config is read at import, sends ~/.ray/auth_token
        # too. It is OpenRay's default for every cluster.
        "RAY_AUTH_MODE": "token",
        "PYTHONUNBUFFERED": "1",
        "OPENRAY_BENCH_TMP": tmp_root,
        TOKEN_ENV: token,
    })
    env.update(runtime.env)
    if env.get("RAY_REDIS_ADDRESS"):
        env["RAY_external_storage_namespace"] = token  # a fresh cluster in the shared Redis
    return env


# A workload that must not see the machine's other processes and ports (Ray's AutoscalingCluster runs
# `ray stop --force`): its own pid, mount and network namespaces, loopback up. Everything in the pid namespace
# dies with the workload.
ISOLATE = ["unshare", "--pid", "--fork", "--mount-proc", "--net", "--kill-child", "sh", "-c",
           'ip link set lo up && exec "$@"', "isolated"]


def run_workload(runtime: Runtime, workload: str, duration_s: float, timeout_s: float,
                 log_dir: Path, profile_path: Path | None = None, isolated: bool = False,
                 extra_env: dict[str, str] | None = None) -> WorkloadResult:
    """Runs `workload` in a fresh `runtime.python` (in its own namespaces when `isolated`, with `extra_env` in its
    environment); never raises for a failing runtime."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{runtime.name.lower()}-{workload}.log"
    # Short path on purpose: Unix socket paths under the session dir must stay under 108 bytes.
    tmp_root = tempfile.mkdtemp(prefix="orb", dir="/tmp")
    token = uuid.uuid4().hex
    out_path = Path(tmp_root) / "result.json"
    result = WorkloadResult(log_path=str(log_path))
    env = workload_env(runtime, tmp_root, token)
    env.update(extra_env or {})
    if profile_path is not None:
        profile_path.parent.mkdir(parents=True, exist_ok=True)
        env[PROFILE_ENV] = str(profile_path)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            (ISOLATE if isolated else [])
            + [runtime.python, str(WORKLOADS_PY), workload, "--duration", str(duration_s), "--out", str(out_path)],
            cwd=tmp_root, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            result.error = f"timed out after {timeout_s:.0f} s"
    result.wall_s = time.perf_counter() - start
    # Whatever the driver left behind (or everything, after a timeout) goes, found by the token.
    leftover_infos = processes_of_run(token, [tmp_root])
    result.leftover_names = sorted({info.short_name for info in leftover_infos})
    leftovers = [info.pid for info in leftover_infos]
    if proc.poll() is None:
        leftovers.append(proc.pid)
    result.leftover_processes = terminate(leftovers)
    proc.wait()
    _read_result(out_path, result, log_path)
    if result.error:
        _keep_session_logs(Path(tmp_root), log_dir / f"{runtime.name.lower()}-{workload}-session-logs")
    shutil.rmtree(tmp_root, ignore_errors=True)
    return result


def _keep_session_logs(tmp_root: Path, dest: Path, max_file_bytes: int = 5 * 2**20) -> None:
    """After a failure, the runtime's own logs (any `logs/` dir under the driver's temp dir)
    are all that explains it; copy them (regular files, capped) before the temp dir goes."""
    shutil.rmtree(dest, ignore_errors=True)
    for path in tmp_root.rglob("*"):
        if "logs" in path.relative_to(tmp_root).parts[:-1] and path.is_file() and not path.is_symlink():
            target = dest / path.relative_to(tmp_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as src, open(target, "wb") as out:
                out.write(src.read(max_file_bytes))


def _read_result(out_path: Path, result: WorkloadResult, log_path: Path) -> None:
    if not out_path.exists():
        if result.error is None:
            result.error = f"driver died: {_last_line(log_path)}"
        return
    data = json.loads(out_path.read_text())
    result.ray_version = data.get("ray_version", "")
    if "rows" in data:
        result.rows = data["rows"]
        result.error = None  # the figures made it out; a slow shutdown does not void them
    else:
        result.error = data.get("error", "unknown error")


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(empty log)"
