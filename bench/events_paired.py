"""What task events cost the hot path, measured in lockstep (issue 10's bar: every hot row within 5% of events off).

    python bench/events_paired.py                        # every hot row, 15 pairs of 2 s slices
    python bench/events_paired.py --only tasks --pairs 30 --slice 3
    python bench/events_paired.py --ray-python "$(bash .ci/real-ray-venv)"   # the real Ray's own task events

`run.py --events-cost` runs each configuration in its own fresh interpreter, one after the other. On this
2-core VM the same code runs up to 2.8x faster or slower from one run to the next, so a 5% difference drowns.
Here both clusters are up at once, one with task events on and one with `RAY_enable_task_events=0`, each with its
own driver; the drivers take turns, a slice of a few seconds each (A B, B A, ...), and each pair of neighbouring
slices gives one ratio. The machine's drift hits both sides of a pair alike; the row's figure is the median of the
pair ratios.

Task events are reported off the hot path, every `task_events_report_interval_ms`: a slice that ended before its
cluster's GCS took in its events would leave that work to the next slice, which is the other cluster's. So every
slice ends with a drain, timed as part of it: the driver reports its events at once and waits until the GCS
counts every task it ran as FINISHED (the `ray_tasks` counts). The events-off driver asks the GCS once, as well.

Each driver is this file run with `--driver ROW` under OpenRay's interpreter; the coordinator talks to it through
its stdin and stdout, one JSON line per slice.

`--ray-python PATH` measures the real Ray's own task events the same way (Ray's `RAY_enable_task_events=0` is the
off side), each cluster in its own pid and network namespace. Ray offers no call that reports a driver's events
at once, so a Ray slice ends with an untimed settle instead of a drain: both sides idle for
`RAY_SETTLE_S` (more than Ray's 1 s report interval) before the next slice, so the GCS takes in one slice's events
before the other cluster's slice starts. What Ray's GCS does with a slice's last second of events is left out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
EVENTS_OFF_ENV = {"RAY_enable_task_events": "0"}
TOLERANCE = 0.95  # on/off at or above this meets the bar
DRAIN_TIMEOUT_S = 30.0
START_TIMEOUT_S = 180.0  # a driver's cluster up and its row set up
SLICE_GRACE_S = DRAIN_TIMEOUT_S + 60.0  # a slice's answer may come this long after its calls end
RAY_SETTLE_S = 1.5  # the real Ray's untimed pause after a slice: its events reach its GCS meanwhile


# ---------------------------------------------------------------- the driver (runs under OpenRay, or the real Ray)

@dataclass
class HotRow:
    call: Callable[[], None]
    ops_per_call: int
    tasks_per_call: int  # tasks the GCS counts as FINISHED after one call


def _setup(row: str) -> HotRow:
    import ray
    from workloads import BATCH, Actor, AsyncActor, _three_node_cluster, noop

    if row == "tasks_spread_3_nodes":
        _three_node_cluster()
    else:
        ray.init()
    if row == "tasks_sync":
        return HotRow(lambda: ray.get(noop.remote()), 1, 1)
    if row == "tasks_async":
        return HotRow(lambda: ray.get([noop.remote() for _ in range(BATCH)]), BATCH, BATCH)
    if row == "tasks_spread_3_nodes":
        spread = noop.options(scheduling_strategy="SPREAD")
        return HotRow(lambda: ray.get([spread.remote() for _ in range(BATCH)]), BATCH, BATCH)
    if row == "wait_1k_refs":
        def one_round() -> None:
            not_ready = [noop.remote() for _ in range(BATCH)]
            for _ in range(BATCH):
                _ready, not_ready = ray.wait(not_ready)
        return HotRow(one_round, 1, BATCH)
    if row == "pg_tasks_async":
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = placement_group([{"CPU": 1}] * int(ray.cluster_resources()["CPU"]), strategy="PACK")
        ray.get(pg.ready())
        in_group = noop.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg))
        return HotRow(lambda: ray.get([in_group.remote() for _ in range(BATCH)]), BATCH, BATCH)
    actor_class = AsyncActor if row.startswith("async_actor") else Actor
    actor = actor_class.remote()
    ray.get(actor.small_value.remote())
    if row.endswith("_sync"):
        return HotRow(lambda: ray.get(actor.small_value.remote()), 1, 1)
    return HotRow(lambda: ray.get([actor.small_value.remote() for _ in range(BATCH)]), BATCH, BATCH)


def _finished_count(core_worker: Any) -> int:
    """Task attempts the GCS has seen finish (its `ray_tasks` counts, drivers left out)."""
    from ray.protocol import state_pb2

    gcs = core_worker.gcs
    reply = gcs.call(gcs.stubs.task_info.GetTaskStateCounts, state_pb2.GetTaskStateCountsRequest())
    return sum(row[4] for row in json.loads(reply.counts_json or b"[]") if row[0] == "FINISHED")


def _drain(core_worker: Any, tasks_run: int) -> None:
    """Reports this driver's task events now and waits until the GCS has counted every task it ran (private API:
    this harness measures OpenRay's own reporting path). With events off, one question to the GCS and no wait."""
    events = core_worker.task_events
    if events.enabled:
        core_worker.loop.call_soon_threadsafe(events.flush)
    deadline = time.perf_counter() + DRAIN_TIMEOUT_S
    while _finished_count(core_worker) < tasks_run and events.enabled:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the GCS counted fewer than {tasks_run} finished tasks after {DRAIN_TIMEOUT_S} s")
        time.sleep(0.002)


def driver_main(row: str) -> int:
    """Sets the row up, then answers each `run SECONDS` line on stdin with one JSON line: ops, seconds."""
    import ray
    from ray._private.worker import global_worker

    hot = _setup(row)
    core_worker = global_worker.core_worker
    tasks_run = 1 if row.startswith(("actor", "async_actor")) else 0  # the actor's creation task
    warm_until = time.perf_counter() + 1.0
    while time.perf_counter() < warm_until:
        hot.call()
        tasks_run += hot.tasks_per_call
    drains = hasattr(core_worker, "task_events")  # OpenRay; the real Ray settles instead (RAY_SETTLE_S)
    if drains:
        _drain(core_worker, tasks_run)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] != "run":
            break
        slice_s = float(command[1])
        calls = 0
        start = time.perf_counter()
        while time.perf_counter() - start < slice_s:
            hot.call()
            calls += 1
        calls_s = time.perf_counter() - start
        tasks_run += calls * hot.tasks_per_call
        if drains:
            _drain(core_worker, tasks_run)
            elapsed = time.perf_counter() - start
        else:
            elapsed = calls_s
            time.sleep(RAY_SETTLE_S)
        print(json.dumps({"ops": calls * hot.ops_per_call, "s": elapsed, "drain_s": elapsed - calls_s}), flush=True)
    ray.shutdown()
    from workloads import _shutdown_cluster

    _shutdown_cluster()
    return 0


# ---------------------------------------------------------------- the coordinator

HOT_ROWS = ("tasks_sync", "tasks_async", "actor_calls_sync", "actor_calls_async", "async_actor_calls_sync",
            "async_actor_calls_async", "wait_1k_refs", "tasks_spread_3_nodes", "pg_tasks_async")


class Driver:
    """One driver process and the cluster it starts, in its own temp dir; everything it started goes at close."""

    def __init__(self, python: str, row: str, extra_env: dict[str, str], log_dir: Path, label: str,
                 isolated: bool = False):
        from runner import ISOLATE, Runtime, workload_env

        self.tmp_root = tempfile.mkdtemp(prefix="orp", dir="/tmp")  # short: socket paths stay under 108 bytes
        self.token = uuid.uuid4().hex
        env = workload_env(Runtime(label, python, extra_env), self.tmp_root, self.token)
        self.log = open(log_dir / f"{row}-{label}.log", "w")
        command = [python, __file__, "--driver", row]
        self.proc = subprocess.Popen((ISOLATE if isolated else []) + command, cwd=self.tmp_root, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     start_new_session=True)

    def answer(self, timeout_s: float) -> dict[str, Any]:
        """The driver's next JSON line. A driver that hangs (seen once: a lost task) fails the row after
        `timeout_s` instead of holding both clusters up for good; `measure_row` then stops them."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                raise TimeoutError(f"the driver sent nothing for {timeout_s:.0f} s; see {self.log.name}")
        line = self.proc.stdout.readline()  # one line per request: nothing waits in the buffer
        if not line:
            raise RuntimeError(f"the driver exited (code {self.proc.wait()}); see {self.log.name}")
        return json.loads(line)

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of each kind of process this driver's cluster runs (gcs, raylet, workers, ...)."""
        from procs import cpu_seconds, processes_of_run

        totals: dict[str, float] = {}
        for info in processes_of_run(self.token, [self.tmp_root]):  # the driver carries the token too
            seconds = cpu_seconds(info.pid)
            if seconds is not None:
                kind = process_kind(info)
                totals[kind] = totals.get(kind, 0.0) + seconds
        return totals

    def run_slice(self, slice_s: float) -> dict[str, Any]:
        before = self.cpu_by_process()
        self.proc.stdin.write(f"run {slice_s}\n")
        self.proc.stdin.flush()
        got = self.answer(slice_s + SLICE_GRACE_S)
        after = self.cpu_by_process()
        # CPU microseconds per op, by process kind (a worker that exited during the slice is missed).
        got["cpu_us_per_op"] = {k: (after[k] - before.get(k, 0.0)) * 1e6 / max(1, got["ops"]) for k in after}
        return got

    def close(self) -> None:
        import shutil

        from procs import processes_of_run, terminate

        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass
        terminate([p.pid for p in processes_of_run(self.token, [self.tmp_root])] + [self.proc.pid])
        self.log.close()
        shutil.rmtree(self.tmp_root, ignore_errors=True)


def process_kind(info: Any) -> str:
    name = info.short_name
    if name.startswith("ray::"):  # the real Ray's workers name themselves after what they run
        return "worker"
    for kind in ("gcs", "raylet", "agent", "dashboard", "log_monitor", "worker"):
        if kind in name:
            return kind
    return "driver" if name == "events_paired.py" else name


def measure_row(python: str, row: str, pairs: int, slice_s: float, log_dir: Path,
                isolated: bool = False) -> dict[str, Any]:
    """`pairs` pairs of slices, events on and off in turns; the figure is the median of the pairs' on/off ratios."""
    on = Driver(python, row, {}, log_dir, "events-on", isolated)
    off = Driver(python, row, EVENTS_OFF_ENV, log_dir, "events-off", isolated)
    try:
        on.answer(START_TIMEOUT_S)
        off.answer(START_TIMEOUT_S)
        slices: dict[str, list[dict]] = {"on": [], "off": []}
        ratios = []
        for pair in range(pairs):
            order = (("on", on), ("off", off)) if pair % 2 == 0 else (("off", off), ("on", on))
            got = {name: driver.run_slice(slice_s) for name, driver in order}
            for name in got:
                slices[name].append(got[name])
            ratios.append((got["on"]["ops"] / got["on"]["s"]) / (got["off"]["ops"] / got["off"]["s"]))
    finally:
        on.close()
        off.close()
    rate = {name: statistics.median(s["ops"] / s["s"] for s in got_slices) for name, got_slices in slices.items()}
    return {"row": row, "ratio": statistics.median(ratios), "ratios": [round(r, 4) for r in ratios],
            "quartiles": [round(q, 4) for q in statistics.quantiles(ratios, n=4)] if len(ratios) > 1 else [],
            "on_per_s": rate["on"], "off_per_s": rate["off"],
            "drain_s_on": statistics.median(s["drain_s"] for s in slices["on"]),
            "cpu_us_per_op": {name: _median_by_kind([s["cpu_us_per_op"] for s in got_slices])
                              for name, got_slices in slices.items()},
            "slices": slices}


def _median_by_kind(per_slice: list[dict[str, float]]) -> dict[str, float]:
    kinds = sorted({k for s in per_slice for k in s})
    return {k: round(statistics.median(s.get(k, 0.0) for s in per_slice), 2) for k in kinds}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| row | events on (ops/s) | events off (ops/s) | on/off, median of pairs | quartiles | meets |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['row']} | | | failed: {r['error']} | | **no** |")
            continue
        q = r["quartiles"]
        quartiles = f"{q[0]:.3f}–{q[2]:.3f}" if q else ""
        meets = "yes" if r["ratio"] >= TOLERANCE else "**no**"
        lines.append(f"| {r['row']} | {r['on_per_s']:,.0f} | {r['off_per_s']:,.0f} | {r['ratio']:.3f} | "
                     f"{quartiles} | {meets} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument("--only", default="", help="comma-separated patterns of row names")
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--slice", type=float, default=2.0, help="seconds of calls per slice (the drain adds on)")
    parser.add_argument("--python", default=str(BENCH_DIR.parent / ".venv" / "bin" / "python"),
                        help="OpenRay's interpreter")
    parser.add_argument("--ray-python", help="measure the real Ray's task events instead, with this interpreter "
                                             "(.ci/real-ray-venv prints it)")
    parser.add_argument("--results-dir", default=str(BENCH_DIR / "results"))
    args = parser.parse_args(argv)
    if args.driver:
        return driver_main(args.driver)
    sys.path.insert(0, str(BENCH_DIR))
    # A SIGTERM unwinds like Ctrl-C, so that `measure_row` stops both clusters on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    patterns = [p for p in args.only.split(",") if p]
    rows = [r for r in HOT_ROWS if not patterns or any(p in r for p in patterns)]
    if not rows:
        parser.error(f"--only {args.only!r} matches none of {', '.join(HOT_ROWS)}")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir = Path(args.results_dir)
    run_name = f"events-paired{'-ray' if args.ray_python else ''}-{stamp}"
    log_dir = results_dir / "logs" / run_name
    log_dir.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    from procs import python_loop_seconds

    meta = {"runtime": "Ray" if args.ray_python else "OpenRay", "commit": commit, "started": stamp, "load_at_start": os.getloadavg(), "pairs": args.pairs,
            "slice_s": args.slice, "python_loop_s_at_start": python_loop_seconds()}
    print(f"{meta['runtime']}'s task events cost in lockstep at {commit}, load {os.getloadavg()[0]:.2f}, "
          f"python loop {meta['python_loop_s_at_start']} s", flush=True)
    results = []
    for row in rows:
        try:
            result = measure_row(args.ray_python or args.python, row, args.pairs, args.slice, log_dir,
                                 isolated=bool(args.ray_python))
        except (TimeoutError, RuntimeError) as error:  # the clusters are gone; the other rows still run
            results.append({"row": row, "error": str(error)})
            print(f"{row:<26} failed: {error}", flush=True)
            continue
        results.append(result)
        print(f"{row:<26} on/off {result['ratio']:.3f} (quartiles {result['quartiles']}); "
              f"on {result['on_per_s']:,.0f}/s, off {result['off_per_s']:,.0f}/s", flush=True)
        for name, cpu in result["cpu_us_per_op"].items():
            print(f"    CPU us per op, events {name}: {cpu}", flush=True)
    table = markdown(results)
    print(table)
    out = results_dir / f"{run_name}.json"
    out.write_text(json.dumps({"meta": meta, "rows": results}, indent=1))
    (results_dir / f"{run_name}.md").write_text(table + "\n")
    print(f"results: {out}")
    return 0 if all(r.get("ratio", 0.0) >= TOLERANCE for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
