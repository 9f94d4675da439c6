"""Side-by-side benchmarks: the same workloads on OpenRay and on the real Ray 2.60.

    python bench/run.py                      # every row, both runtimes
    python bench/run.py --only tasks,actor   # rows whose key/title contains a pattern
    python bench/run.py --openray-only       # Ray's column from the committed baseline
    python bench/run.py --self-check         # one tiny row per runtime, plus the table logic
    python bench/run.py --auth-cost --repeat 3   # OpenRay with token auth next to RAY_AUTH_MODE=disabled
    python bench/run.py --redis-cost --only tasks,actor,put   # GCS tables in Redis next to in memory
    python bench/run.py --events-cost --only tasks,actor   # task events on next to RAY_enable_task_events=0
    python bench/run.py --only envelope --scale 0.05   # issue 16's scale rows at 5% size (only --only runs them)

Each workload runs in a fresh interpreter of each runtime (bench/workloads.py); the table,
with the ratio OpenRay/Ray and each row's target from issues 4 and 5, is printed and written
as JSON and Markdown under the results dir.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from procs import python_loop_seconds
from report import (
    AUTH_COST_HEADERS,
    EVENTS_COST_HEADERS,
    EVENTS_COST_TOLERANCE,
    REDIS_COST_HEADERS,
    REDIS_COST_TOLERANCE,
    Cell,
    Comparison,
    auth_cost_row,
    baseline_cells,
    cell_text,
    cost_row,
    markdown_table,
    merge_runs,
    summary_line,
    text_table,
    to_json,
    update_baseline,
)
from rows import ISOLATED_WORKLOADS, Row, parse_scale, scale_of, scaled_timeout, select_rows, workloads_for
from runner import Runtime, WorkloadResult, run_workload

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_BASELINE = BENCH_DIR / "baseline" / "ray-2.60.json"


def real_ray_python() -> str:
    """The real Ray's interpreter; .ci/real-ray-venv creates its venv on first use (minutes)."""
    script = REPO_DIR / ".ci" / "real-ray-venv"
    print("resolving the real Ray's virtualenv (.ci/real-ray-venv; first time installs ray 2.60) ...",
          file=sys.stderr, flush=True)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"could not create the real Ray's virtualenv:\n{done.stderr[-2000:]}\n"
                         "fix that, pass --ray-python PATH, or run with --openray-only")
    return done.stdout.strip().splitlines()[-1]


def openray_python() -> str:
    venv_python = REPO_DIR / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--only", metavar="PATTERN", help="comma-separated substrings of row keys/titles")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds each throughput row measures for (default 5; startup not counted)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--openray-only", action="store_true", help="run OpenRay only; Ray from --baseline")
    which.add_argument("--ray-only", action="store_true", help="run the real Ray only")
    which.add_argument("--auth-cost", action="store_true",
                       help="OpenRay twice, with token authentication (the default) and with RAY_AUTH_MODE=disabled, "
                            "alternating per workload; target: every row within 5%% of auth off")
    which.add_argument("--redis-cost", action="store_true",
                       help="OpenRay twice, with its GCS tables in a redis-server started for the run and in memory, "
                            "alternating per workload; target: every row within 10%% of in memory")
    which.add_argument("--events-cost", action="store_true",
                       help="OpenRay twice, with task events (the default) and with RAY_enable_task_events=0, "
                            "alternating per workload; target: every row within 5%% of events off")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each workload N times per runtime; the figure is the median (default 1)")
    parser.add_argument("--ray-python", help="the real Ray's interpreter (default: .ci/real-ray-venv)")
    parser.add_argument("--openray-python", help="OpenRay's interpreter (default: the repo's .venv)")
    parser.add_argument("--baseline", default=str(DEFAULT_BASELINE),
                        help="results JSON whose Ray figures fill Ray's column when Ray is not run")
    parser.add_argument("--update-baseline", action="store_true",
                        help="merge the Ray figures measured now into --baseline")
    parser.add_argument("--results-dir", default=str(BENCH_DIR / "results"))
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every workload's timeout")
    parser.add_argument("--scale", type=parse_scale, default={}, metavar="F[,WORKLOAD=F...]",
                        help="sizes of the scale rows (issue 16) times F, default 1; WORKLOAD=F sets one workload's, "
                             "e.g. 0.1 or 1,envelope_gcs_memory=0.1. Their timeouts follow (at least a quarter of full size)")
    parser.add_argument("--profile", action="store_true",
                        help="profile each driver with cProfile (results dir profiles/<runtime>-<workload>.txt)")
    parser.add_argument("--self-check", action="store_true",
                        help="check the table logic and run one tiny row per runtime")
    return parser.parse_args(argv)


SCALE_ENV = "OPENRAY_BENCH_SCALE"  # read by workloads_scale.py


AUTH_OFF = "OpenRay auth off"
REDIS_GCS = "OpenRay Redis GCS"
EVENTS_OFF = "OpenRay events off"


def runtimes_for(args: argparse.Namespace, redis_address: str = "") -> list[Runtime]:
    if getattr(args, "auth_cost", False):
        python = args.openray_python or openray_python()
        return [Runtime("OpenRay", python), Runtime(AUTH_OFF, python, {"RAY_AUTH_MODE": "disabled"})]
    if getattr(args, "events_cost", False):
        python = args.openray_python or openray_python()
        return [Runtime("OpenRay", python), Runtime(EVENTS_OFF, python, {"RAY_enable_task_events": "0"})]
    if getattr(args, "redis_cost", False):
        # Each driver gets its own RAY_external_storage_namespace (runner.workload_env): a fresh cluster.
        python = args.openray_python or openray_python()
        return [Runtime("OpenRay", python), Runtime(REDIS_GCS, python, {"RAY_REDIS_ADDRESS": redis_address})]
    runtimes = []
    if not args.ray_only:
        runtimes.append(Runtime("OpenRay", args.openray_python or openray_python()))
    if not args.openray_only:
        runtimes.append(Runtime("Ray", args.ray_python or real_ray_python()))
    return runtimes


def progress_text(rows: list[Row], result: WorkloadResult) -> str:
    if result.error:
        lines = result.error.strip().splitlines()
        first = lines[0] + (f" ... {lines[-1].strip()}" if len(lines) > 1 else "")
        return f"ERR {first} (log: {result.log_path})"
    parts = [f"{cell_text(Cell(value=result.rows[r.key]['value']))} {r.unit}" for r in rows if r.key in result.rows]
    return ", ".join(parts) + f"  [{result.wall_s:.1f} s wall]"


def run_all(rows: list[Row], runtimes: list[Runtime], args: argparse.Namespace,
            log_dir: Path) -> dict[str, dict[str, Cell]]:
    """cells[runtime name][row key]; runtimes alternate per workload so machine noise hits both
    alike, and with --repeat the figure is the median of the runs. The order flips every repeat (A B, B A, ...):
    with a fixed order, whatever favours the first or the second run of a pair (the previous run's processes
    still going away, caches) would lean every pair the same way."""
    samples: dict[str, dict[str, list[Cell]]] = {rt.name: {r.key: [] for r in rows} for rt in runtimes}
    workloads = workloads_for(rows)
    for n, workload in enumerate(workloads, 1):
        produced = [r for r in rows if r.workload == workload]
        timeout = max(r.timeout_s for r in produced) * args.timeout_scale
        extra_env = {}
        if any(r.scaled for r in produced):
            factor = scale_of(args, workload)
            timeout = scaled_timeout(timeout, factor)
            extra_env[SCALE_ENV] = repr(factor)
        for rep in range(args.repeat):
            for runtime in (runtimes if rep % 2 == 0 else runtimes[::-1]):
                if runtime.name == "Ray" and not any(r.ray_comparable for r in produced):
                    continue  # nothing of Ray's to measure for these rows
                run_label = f" run {rep + 1}/{args.repeat}" if args.repeat > 1 else ""
                print(f"[{n}/{len(workloads)}] {workload:<24} {runtime.name:<7}{run_label} ...", end=" ", flush=True)
                profile = (log_dir.parent / "profiles" / f"{runtime.name.lower()}-{workload}.txt"
                           if args.profile else None)
                result = run_workload(runtime, workload, args.duration, timeout, log_dir, profile,
                                      isolated=workload in ISOLATED_WORKLOADS, extra_env=extra_env)
                print(progress_text(produced, result), flush=True)
                for row in produced:
                    got = result.rows.get(row.key)
                    samples[runtime.name][row.key].append(
                        Cell(value=float(got["value"]), details=got.get("details")) if got is not None
                        else Cell(error=result.error or "row not produced"))
                if result.leftover_processes:
                    print(f"    note: {result.leftover_processes} {runtime.name} process(es) outlived the "
                          f"driver and were terminated: {', '.join(result.leftover_names)}", flush=True)
    return {name: {key: merge_runs(runs) for key, runs in by_row.items()} for name, by_row in samples.items()}


def machine_meta(args: argparse.Namespace, runtimes: list[Runtime]) -> dict[str, object]:
    commit = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}: {os.cpu_count()} cores, "
                   f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python_loop_s_at_start": python_loop_seconds(),
        "duration_s": args.duration,
        "repeat": args.repeat,
        "openray_commit": commit,
        "scale": getattr(args, "scale", None) or {},
        "interpreters": {rt.name: rt.python for rt in runtimes},
    }


def write_results(comparisons: list[Comparison], meta: dict[str, object], results_dir: Path,
                  auth_cost: bool = False, redis_cost: bool = False, events_cost: bool = False) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    body_json = to_json(comparisons, meta)
    title = ("OpenRay: token auth on vs off" if auth_cost else
             "OpenRay: GCS in Redis vs in memory" if redis_cost else
             "OpenRay: task events on vs off" if events_cost else "OpenRay vs Ray 2.60")
    headers = (AUTH_COST_HEADERS if auth_cost else REDIS_COST_HEADERS if redis_cost else
               EVENTS_COST_HEADERS if events_cost else None)
    table = markdown_table(comparisons, headers) if headers else markdown_table(comparisons)
    body_md = (f"# {title} — {meta['date']}\n\n{meta['machine']}; load at start "
               f"{meta['load_average_at_start']}, a 10M-addition Python loop {meta['python_loop_s_at_start']} s; "
               f"{meta['duration_s']} s per throughput row; "
               f"OpenRay at {meta['openray_commit']}.\n\n{table}\n\n"
               f"{summary_line(comparisons)}\n")
    kind = "auth-cost" if auth_cost else "redis-cost" if redis_cost else "events-cost" if events_cost else ""
    if kind:
        stamp = f"{kind}-{stamp}"
    for name in (stamp, f"latest-{kind}" if kind else "latest"):
        (results_dir / f"{name}.json").write_text(body_json)
        (results_dir / f"{name}.md").write_text(body_md)
    return results_dir / f"{stamp}.md"


def compare(rows: list[Row], cells: dict[str, dict[str, Cell]], baseline: dict[str, Cell]) -> list[Comparison]:
    out = []
    for row in rows:
        openray = cells.get("OpenRay", {}).get(row.key, Cell())
        ray = cells["Ray"].get(row.key, Cell()) if "Ray" in cells else baseline.get(row.key, Cell())
        out.append(Comparison(row, openray, ray))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.self_check:
        from selfcheck import self_check

        return self_check(args, runtimes_for(args))
    try:
        rows = select_rows(args.only)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    with contextlib.ExitStack() as stack:
        redis_address = stack.enter_context(redis_server()) if args.redis_cost else ""
        return _run(args, rows, runtimes_for(args, redis_address))


def _run(args: argparse.Namespace, rows: list, runtimes: list[Runtime]) -> int:
    baseline: dict[str, Cell] = {}
    if args.openray_only and Path(args.baseline).exists():
        baseline = baseline_cells(args.baseline)
    meta = machine_meta(args, runtimes)
    results_dir = Path(args.results_dir)
    log_dir = results_dir / "logs"
    cells = run_all(rows, runtimes, args, log_dir)
    if args.auth_cost:
        comparisons = [Comparison(auth_cost_row(row), cells["OpenRay"].get(row.key, Cell()),
                                  cells[AUTH_OFF].get(row.key, Cell())) for row in rows]
        print()
        print(text_table(comparisons, headers=AUTH_COST_HEADERS))
        print()
        print(summary_line(comparisons) + "  (target: auth on within 5% of auth off, same run)")
        print(f"results: {write_results(comparisons, meta, results_dir, auth_cost=True)}")
        return 0
    if args.redis_cost:
        comparisons = [Comparison(cost_row(row, REDIS_COST_TOLERANCE), cells[REDIS_GCS].get(row.key, Cell()),
                                  cells["OpenRay"].get(row.key, Cell())) for row in rows]
        print()
        print(text_table(comparisons, headers=REDIS_COST_HEADERS))
        print()
        print(summary_line(comparisons) + "  (target: the Redis GCS within 10% of the in-memory GCS, same run)")
        print(f"results: {write_results(comparisons, meta, results_dir, redis_cost=True)}")
        return 0
    if args.events_cost:
        comparisons = [Comparison(cost_row(row, EVENTS_COST_TOLERANCE), cells["OpenRay"].get(row.key, Cell()),
                                  cells[EVENTS_OFF].get(row.key, Cell())) for row in rows]
        print()
        print(text_table(comparisons, headers=EVENTS_COST_HEADERS))
        print()
        print(summary_line(comparisons) + "  (target: task events on within 5% of off, same run; the JSON has each "
                                          "row's driver_cpu_s_per_10k_ops)")
        print(f"results: {write_results(comparisons, meta, results_dir, events_cost=True)}")
        return 0
    comparisons = compare(rows, cells, baseline)
    print()
    print(text_table(comparisons))
    print()
    print(summary_line(comparisons) + ("  ((b) = Ray figure from the baseline file)" if baseline else ""))
    if any(r.scaled for r in rows) and args.scale:
        print(f"scale rows ran at --scale {args.scale} (their titles give full size; the JSON details the counts)")
    written = write_results(comparisons, meta, results_dir)
    if args.update_baseline:
        count = update_baseline(args.baseline, comparisons, meta)
        print(f"baseline: {count} Ray figure(s) merged into {args.baseline}")
    print(f"results: {written} (and latest.json/latest.md); workload logs: {log_dir}")
    return 0


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Debian's redis-server on a free loopback port, nothing persisted, for the length of the run."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise SystemExit("--redis-cost needs Debian's redis-server (make tools installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"redis-server did not start on port {port}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
