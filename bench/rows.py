"""The rows of the side-by-side table: what each measures, its unit, and its target (issues 4, 5, 10, 12, 13, 16).

Shared by the orchestrator (run.py) and the report; the workloads themselves only need the keys.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    key: str  # stable identifier, used in results files and by --only
    title: str  # what the table shows
    unit: str
    higher_is_better: bool
    # Target as a "speedup" over Ray: OpenRay must be this many times better than Ray.
    # For higher-is-better rows that is ratio >= speedup; for lower-is-better rows ratio <= 1/speedup.
    target_speedup: float
    workload: str  # the function in workloads.py that produces this row (one subprocess each)
    timeout_s: float  # for the whole workload subprocess, ray.init and shutdown included
    issue: int
    # An absolute ceiling the OpenRay figure must also stay under (lower-is-better rows only).
    absolute_max: float | None = None
    # False: Ray has no counterpart to run; the row meets its target by `absolute_max` alone.
    ray_comparable: bool = True
    # True: a scale row (issue 16): its sizes and timeout follow --scale, and only --only runs it.
    scaled: bool = False


TASK_OR_ACTOR = 2.0  # "at least 2x Ray's figure on every task and actor row"
AT_LEAST_RAY = 1.0  # "at least Ray's on every other row"

ROWS: tuple[Row, ...] = (
    Row("init_ready", "ray.init to ready (first task done)", "s", False, 5.0, "init_ready", 180, 5),
    Row("tasks_sync", "tasks sync", "tasks/s", True, TASK_OR_ACTOR, "tasks_sync", 180, 5),
    Row("client_round_trip", "Ray Client (ray://) round trip of a trivial task", "tasks/s", True, AT_LEAST_RAY,
        "client_round_trip", 240, 14),
    Row("launcher_up", "ray up: head + 2 workers (SSH hosts) to ray status showing 3 nodes", "s", False, AT_LEAST_RAY,
        "launcher_up", 600, 14),
    Row("tasks_async", "tasks async (batches of 1000)", "tasks/s", True, TASK_OR_ACTOR, "tasks_async", 180, 5),
    Row("actor_calls_sync", "1:1 actor calls sync", "calls/s", True, TASK_OR_ACTOR, "actor_calls_sync", 180, 5),
    Row("actor_calls_async", "1:1 actor calls async (batches of 1000)", "calls/s", True, TASK_OR_ACTOR,
        "actor_calls_async", 180, 5),
    Row("async_actor_calls_sync", "1:1 async-actor calls sync", "calls/s", True, TASK_OR_ACTOR,
        "async_actor_calls_sync", 180, 5),
    Row("async_actor_calls_async", "1:1 async-actor calls async (batches of 1000)", "calls/s", True,
        TASK_OR_ACTOR, "async_actor_calls_async", 180, 5),
    Row("put_small", "ray.put small", "puts/s", True, AT_LEAST_RAY, "put_small", 180, 5),
    Row("get_small", "ray.get small", "gets/s", True, AT_LEAST_RAY, "get_small", 180, 5),
    Row("put_get_100mib", "put+get 100 MiB numpy array", "GB/s", True, AT_LEAST_RAY, "put_get_100mib", 240, 5),
    # Issue 16: numpy at least Ray, bytes and task/actor transfers at least 1.5x Ray (details: share of memcpy).
    Row("put_100mib_numpy", "ray.put 100 MiB numpy", "GB/s", True, AT_LEAST_RAY, "large_objects", 300, 16),
    Row("put_100mib_bytes", "ray.put 100 MiB bytes", "GB/s", True, 1.5, "large_objects", 300, 16),
    Row("get_100mib_bytes", "ray.get 100 MiB bytes", "GB/s", True, 1.5, "large_objects", 300, 16),
    Row("put_get_100mib_bytes", "put+get 100 MiB bytes", "GB/s", True, 1.5, "large_objects", 300, 16),
    Row("task_arg_100mib_numpy_by_value", "task taking 100 MiB numpy by value", "GB/s", True, 1.5,
        "large_objects", 300, 16),
    Row("task_arg_100mib_numpy_by_ref", "task taking 100 MiB numpy by ref", "GB/s", True, 1.5, "large_objects", 300,
        16),
    Row("task_return_100mib_bytes", "task returning 100 MiB bytes", "GB/s", True, 1.5, "large_objects", 300, 16),
    Row("actor_arg_100mib_numpy_by_value", "actor call taking 100 MiB numpy by value", "GB/s", True, 1.5,
        "large_objects", 300, 16),
    Row("actor_arg_100mib_numpy_by_ref", "actor call taking 100 MiB numpy by ref", "GB/s", True, 1.5,
        "large_objects", 300, 16),
    Row("actor_return_100mib_bytes", "actor call returning 100 MiB bytes", "GB/s", True, 1.5, "large_objects", 300,
        16),
    Row("wait_1k_refs", "ray.wait on 1000 refs (1000 tasks, 1000 waits)", "rounds/s", True, AT_LEAST_RAY,
        "wait_1k_refs", 240, 5),
    # Issue 12: at least Ray's figure, and no worse than 80% of the default strategy (the JSON has the same
    # batches with the default strategy on the same three nodes).
    Row("tasks_spread_3_nodes", "tasks/s with SPREAD on 3 nodes (batches of 1000)", "tasks/s", True, AT_LEAST_RAY,
        "tasks_spread_3_nodes", 420, 12),
    Row("actors_100", "100 actors created and called", "s", False, TASK_OR_ACTOR, "actors_100", 600, 5),
    Row("idle_memory", "idle memory (RSS of runtime processes)", "MiB", False, 3.0, "idle_memory", 180, 5),
    Row("job_submit_running", "job submit -> RUNNING (JobSubmissionClient)", "s", False, AT_LEAST_RAY,
        "job_submit_running", 300, 4),
    Row("pip_env_second_task", "pip runtime env: 2nd task on the same env", "s", False, AT_LEAST_RAY,
        "pip_env", 600, 4, absolute_max=1.0),
    Row("pip_env_cached_actor", "pip runtime env: then an actor on the same env", "s", False, AT_LEAST_RAY,
        "pip_env", 600, 4, absolute_max=1.0),
    Row("pip_env_second_job", "pip runtime env: 2nd job submit -> RUNNING", "s", False, AT_LEAST_RAY,
        "pip_env_job", 900, 4),
    Row("pg_create_one_bundle", "placement group create + ready + remove (1 bundle)", "PGs/s", True,
        AT_LEAST_RAY, "pg_create_one_bundle", 240, 12),
    Row("pg_create_strict_spread_4_nodes", "placement group create + ready + remove (4 bundles STRICT_SPREAD, "
        "4 nodes)", "PGs/s", True, AT_LEAST_RAY, "pg_create_strict_spread_4_nodes", 400, 12),
    Row("pg_tasks_async", "tasks inside a placement group (batches of 1000)", "tasks/s", True, AT_LEAST_RAY,
        "pg_tasks_async", 240, 12),
    # Issue 13: AutoscalingCluster (fake_multinode) on both runtimes, each in its own pid and network namespace
    # (Ray's start() and shutdown() run `ray stop --force`, which stops every Ray process it can see).
    Row("autoscale_first_task", "autoscaling: queued task -> its first run on a new node", "s", False, 2.0,
        "autoscale_first_task", 420, 13),
    Row("autoscaler_idle_memory", "autoscaling: the autoscaler's idle memory (RSS)", "MiB", False, AT_LEAST_RAY,
        "autoscale_first_task", 420, 13),
    Row("autoscaler_round", "autoscaling: one round, 10,000 pending tasks of 100 shapes, 10 node types", "s",
        False, AT_LEAST_RAY, "autoscaler_round", 180, 13, absolute_max=0.1, ray_comparable=False),
    # Issue 15: `ray start --head` with the GCS in Redis; the GCS SIGKILLed and started again at once.
    Row("gcs_restart_first_task", "GCS in Redis: SIGKILL + restart -> first task done", "s", False, AT_LEAST_RAY,
        "gcs_restart", 600, 15),
    Row("gcs_restart_first_actor", "GCS in Redis: SIGKILL + restart -> a new actor answers", "s", False, AT_LEAST_RAY,
        "gcs_restart", 600, 15),
)

# Issue 10's cost rows: at least Ray's figure (bench/workloads_obs.py).
OBSERVABILITY_ROWS: tuple[Row, ...] = (
    Row("state_list_tasks_10k", "ray list tasks: list_tasks(limit=10000) over 10,000 finished tasks", "s", False,
        AT_LEAST_RAY, "state_list_tasks_10k", 600, 10),
    Row("gcs_rss_100k_task_events", "GCS memory (RSS) after 100,000 finished tasks' events", "MiB", False,
        AT_LEAST_RAY, "gcs_task_events_100k", 900, 10),
    Row("agent_idle_cpu_scraped", "node agent's idle CPU, /metrics scraped every 5 s", "%", False, AT_LEAST_RAY,
        "agent_idle_cpu", 600, 10),
)
ROWS = ROWS + OBSERVABILITY_ROWS

# ---------------------------------------------------------------- scale rows (issue 16 item 3, workloads_scale.py)
# Full-size figures need a quiet machine and minutes to an hour of Ray each: `--only envelope --scale 0.05` smokes them.
# Timeouts are for full size; run.py scales them with --scale (see scaled_timeout).
_MEMORY = 2.0  # "memory rows at most half of Ray's"


def _scale_row(key: str, title: str, unit: str, higher: bool, target: float, workload: str, timeout_s: float) -> Row:
    return Row(key, title, unit, higher, target, workload, timeout_s, 16, scaled=True)


SCALE_ROWS: tuple[Row, ...] = (
    _scale_row("envelope_tasks_100k_submit", "100,000 tasks queued at once: time to submit", "s", False, AT_LEAST_RAY,
               "envelope_tasks_100k", 1500),
    _scale_row("envelope_tasks_100k_finish", "100,000 tasks queued at once: time to finish", "s", False, 5.0,
               "envelope_tasks_100k", 1500),
    _scale_row("envelope_tasks_100k_driver_rss", "100,000 tasks queued at once: driver peak RSS", "MiB", False, _MEMORY,
               "envelope_tasks_100k", 1500),
    _scale_row("envelope_tasks_100k_raylet_rss", "100,000 tasks queued at once: raylet peak RSS", "MiB", False, _MEMORY,
               "envelope_tasks_100k", 1500),
    _scale_row("envelope_objects_1m_put", "1,000,000 ray.put refs held: time to create", "s", False, AT_LEAST_RAY,
               "envelope_objects_1m", 2400),
    _scale_row("envelope_objects_1m_bytes_per_ref", "1,000,000 ray.put refs held: driver bytes per ref", "bytes", False,
               _MEMORY, "envelope_objects_1m", 2400),
    _scale_row("envelope_actors_200", "200 actors alive at once: create all and call each once", "s", False,
               AT_LEAST_RAY, "envelope_actors_200", 1500),
    _scale_row("envelope_actors_200_pss", "200 actors alive at once: PSS per actor", "MiB", False, _MEMORY,
               "envelope_actors_200", 1500),
    _scale_row("envelope_nodes_20_spread", "20 nodes, 20,000 SPREAD tasks: throughput", "tasks/s", True, AT_LEAST_RAY,
               "envelope_nodes_20", 1800),
    _scale_row("envelope_nodes_20_gcs_cpu", "20 nodes, 20,000 SPREAD tasks: GCS CPU seconds", "CPU s", False,
               AT_LEAST_RAY, "envelope_nodes_20", 1800),
    _scale_row("envelope_nodes_20_detect_dead", "20 nodes: raylet SIGKILL -> ray.nodes() shows it dead", "s", False,
               AT_LEAST_RAY, "envelope_nodes_20", 1800),
    _scale_row("envelope_broadcast_1gib", "1 GiB object read by tasks on 4 other nodes at once", "GB/s", True,
               AT_LEAST_RAY, "envelope_broadcast_1gib", 900),
    _scale_row("envelope_pg_1000", "1,000 placement groups created, ready, removed", "s", False, AT_LEAST_RAY,
               "envelope_pg_1000", 900),
    _scale_row("envelope_gcs_memory", "GCS RSS with 10,000 finished actors and 100,000 task events", "MiB", False,
               _MEMORY, "envelope_gcs_memory", 3600),
)
ROWS = (*ROWS, *SCALE_ROWS)


def scaled_timeout(timeout_s: float, scale: float) -> float:
    """A scale row's timeout at --scale `scale`: its full-size timeout times the scale, at least a quarter of it
    (starting nodes and workers does not shrink with the sizes)."""
    return timeout_s * max(scale, 0.25)


# Workloads run in their own pid and network namespace (`unshare`): see the autoscaling rows.
ISOLATED_WORKLOADS = frozenset({"autoscale_first_task"})

ROWS_BY_KEY: dict[str, Row] = {row.key: row for row in ROWS}


def workloads_for(rows: list[Row]) -> list[str]:
    """The distinct workloads that produce these rows, in table order."""
    seen: list[str] = []
    for row in rows:
        if row.workload not in seen:
            seen.append(row.workload)
    return seen


def select_rows(pattern: str | None) -> list[Row]:
    """Rows whose key or title contains `pattern` (case-insensitive); all rows but the scale rows when it is empty."""
    if not pattern:
        return [r for r in ROWS if not r.scaled]
    needles = [p.strip().lower() for p in pattern.split(",") if p.strip()]
    chosen = [r for r in ROWS if any(n in r.key.lower() or n in r.title.lower() for n in needles)]
    if not chosen:
        known = ", ".join(r.key for r in ROWS)
        raise ValueError(f"--only {pattern!r} matches no row; rows are: {known}")
    return chosen


def parse_scale(text: str) -> dict[str, float]:
    """`F` or `F,WORKLOAD=F,...` (or only WORKLOAD=F pairs) -> {"": default, workload: F}."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.rpartition("=")
        try:
            factor = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if factor <= 0:
            raise argparse.ArgumentTypeError(f"a scale must be positive: {part!r}")
        out[name.strip()] = factor
    return out


def scale_of(args: argparse.Namespace, workload: str) -> float:
    scales = getattr(args, "scale", None) or {}
    return scales.get(workload, scales.get("", 1.0))
