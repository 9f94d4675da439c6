"""Issue 16's scale rows: Ray's scalability envelope, reproduced on one machine.

Imported by workloads.py (whose WORKLOADS gains these); like it, only Ray's public API plus /proc, so the same
code runs on both runtimes. Every size is multiplied by `OPENRAY_BENCH_SCALE` (run.py's `--scale`, default 1):
smoke them small on a loaded machine, run them full size on a quiet one. Each row's details say the size it ran
at and the memory the processes took.

Remote functions and actor classes are defined inside `_defs()`, not at module level: cloudpickle sends
functions of an importable module by reference, and a worker cannot import this file.
"""

from __future__ import annotations

import gc
import os
import signal
import statistics
import time
import uuid
from types import SimpleNamespace
from typing import Any

import ray
from procs import TOKEN_ENV, ProcInfo, cpu_seconds, processes_of_run

Rows = dict[str, dict[str, Any]]
SCALE_ENV = "OPENRAY_BENCH_SCALE"
MIB = 1024 * 1024
GIB = 1024 * MIB
_CLUSTER: Any = None  # a ray.cluster_utils.Cluster started here; shut down after the figures are written


def scale() -> float:
    return float(os.environ.get(SCALE_ENV) or 1.0)


def scaled(full: int, minimum: int) -> int:
    return max(minimum, round(full * scale()))


def one_row(key: str, value: float, **details: Any) -> Rows:
    return {key: {"value": value, "details": details}}


def _defs() -> SimpleNamespace:
    @ray.remote
    def noop() -> int:
        return 0

    @ray.remote
    def node_of() -> str:
        return ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=1)
    def read_array(array: Any) -> int:
        return int(array.nbytes) + int(array[-1])

    @ray.remote
    class PidActor:
        def pid(self) -> int:
            return os.getpid()

    return SimpleNamespace(noop=noop, node_of=node_of, read_array=read_array, PidActor=PidActor)


# ---------------------------------------------------------------- process memory and CPU from /proc

def _status_kib(pid: int, field: str) -> int | None:
    """A `/proc/PID/status` figure in KiB (VmRSS, VmHWM: the peak RSS)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _mib(pid: int, field: str) -> float | None:
    kib = _status_kib(pid, field)
    return None if kib is None else round(kib / 1024, 1)


def _pss_bytes(pid: int) -> int | None:
    """Proportional set size: shared pages divided among the processes that map them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


_ROLES = {"gcs": ("gcs_server", "ray.gcs.server"), "raylet": ("raylet", "ray.raylet.main")}


def _role(info: ProcInfo) -> str | None:
    """Ray's C++ `gcs_server` / `raylet` binaries, or OpenRay's `python -m ray.gcs.server` / `ray.raylet.main`."""
    args = info.cmdline
    names = {os.path.basename(args[0])} if args else set()
    if "-m" in args[:-1]:
        names.add(args[args.index("-m") + 1])
    for role, known in _ROLES.items():
        if names & set(known):
            return role
    return None


def _runtime_pids(role: str) -> list[int]:
    """This run's processes of a role (found by the run's token, as bench/procs.py finds them)."""
    infos = processes_of_run(os.environ.get(TOKEN_ENV), [os.environ.get("OPENRAY_BENCH_TMP", "/nonexistent")])
    return [info.pid for info in infos if _role(info) == role]


def _node_pid(node: Any, name: str) -> int:
    """The pid of a cluster_utils node's process: OpenRay's `Node.processes[name]`, Ray's
    `Node.all_processes[name][0].process` (name: "raylet" or "gcs_server" in both)."""
    processes = getattr(node, "processes", None)
    if isinstance(processes, dict) and name in processes:
        return processes[name].pid
    return node.all_processes[name][0].process.pid


def _start_cluster(nodes: int, num_cpus: int, object_store_memory: int) -> Any:
    """`ray.cluster_utils.Cluster` (the same test API in both runtimes): `nodes` nodes, this driver on the head."""
    global _CLUSTER
    from ray.cluster_utils import Cluster

    # Ray 2.60 under RAY_AUTH_MODE=token needs a token for a cluster_utils cluster (see workloads.py).
    os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex)
    args = {"num_cpus": num_cpus, "object_store_memory": object_store_memory, "include_dashboard": False}
    _CLUSTER = Cluster(initialize_head=True, head_node_args=dict(args))
    for _ in range(nodes - 1):
        _CLUSTER.add_node(**args)
    _CLUSTER.wait_for_nodes(timeout=300)
    ray.init(address=_CLUSTER.address)
    return _CLUSTER


def shutdown() -> None:
    if _CLUSTER is not None:
        _CLUSTER.shutdown()


# ---------------------------------------------------------------- the workloads

def envelope_tasks_100k(duration_s: float) -> Rows:
    """100,000 no-op tasks submitted at once by one driver, then one ray.get of them all; the driver's and the
    raylet's peak RSS (VmHWM) over the whole run."""
    n = scaled(100_000, 1000)
    defs = _defs()
    ray.init()
    ray.get(defs.noop.remote())
    raylets = _runtime_pids("raylet")
    driver_before = _mib(os.getpid(), "VmRSS")
    start = time.perf_counter()
    refs = [defs.noop.remote() for _ in range(n)]
    submitted = time.perf_counter()
    results = ray.get(refs)
    finished = time.perf_counter()
    if len(results) != n or any(results):
        raise AssertionError("unexpected task results")
    driver_peak = _mib(os.getpid(), "VmHWM")
    raylet_peak = max((_mib(pid, "VmHWM") or 0.0) for pid in raylets) if raylets else None
    common = {"tasks": n, "scale": scale()}
    rows = one_row("envelope_tasks_100k_submit", submitted - start, **common)
    rows.update(one_row("envelope_tasks_100k_finish", finished - start, submit_s=round(submitted - start, 3),
                        tasks_per_s=round(n / (finished - start), 1), **common))
    rows.update(one_row("envelope_tasks_100k_driver_rss", driver_peak, driver_rss_before_mib=driver_before,
                        driver_rss_after_mib=_mib(os.getpid(), "VmRSS"), **common))
    if raylet_peak is not None:
        rows.update(one_row("envelope_tasks_100k_raylet_rss", raylet_peak, raylet_pids=raylets, **common))
    return rows


def envelope_objects_1m(duration_s: float) -> Rows:
    """1,000,000 `ray.put` of a small int, every ref held by the driver: the time to create them, and the driver's
    (the owner's) RSS growth per ref."""
    n = scaled(1_000_000, 10_000)
    ray.init()
    ray.get(ray.put(0))
    gc.collect()
    before = _status_kib(os.getpid(), "VmRSS") or 0
    start = time.perf_counter()
    refs = [ray.put(i) for i in range(n)]
    elapsed = time.perf_counter() - start
    after = _status_kib(os.getpid(), "VmRSS") or 0
    if ray.get(refs[-1]) != n - 1:
        raise AssertionError("the last ref holds a different value")
    per_ref = (after - before) * 1024 / n
    rows = one_row("envelope_objects_1m_put", elapsed, refs=n, puts_per_s=round(n / elapsed, 1), scale=scale())
    rows.update(one_row("envelope_objects_1m_bytes_per_ref", per_ref, refs=n, driver_rss_before_mib=round(before / 1024, 1),
                        driver_rss_after_mib=round(after / 1024, 1), scale=scale()))
    return rows


def envelope_actors_200(duration_s: float) -> Rows:
    """200 actors created at once and each called once (the time until every answer is back), then the PSS of
    their processes (smaps_rollup) per actor while all are alive."""
    n = scaled(200, 10)
    defs = _defs()
    ray.init()
    ray.get(defs.noop.remote())  # the cluster is ready; only the actors are timed
    start = time.perf_counter()
    actors = [defs.PidActor.remote() for _ in range(n)]
    pids = ray.get([a.pid.remote() for a in actors])
    elapsed = time.perf_counter() - start
    if len(set(pids)) != n:
        raise AssertionError(f"{n} actors answered from {len(set(pids))} processes")
    pss = [_pss_bytes(pid) for pid in pids]
    known = [p for p in pss if p is not None]
    if not known:
        raise RuntimeError("no actor process's smaps_rollup could be read")
    rss = [_status_kib(pid, "VmRSS") or 0 for pid in pids]
    per_actor = sum(known) / len(known) / MIB
    rows = one_row("envelope_actors_200", elapsed, actors=n, scale=scale())
    rows.update(one_row("envelope_actors_200_pss", per_actor, actors=n, pss_read=len(known),
                        rss_per_actor_mib=round(sum(rss) / len(rss) / 1024, 1),
                        pss_total_mib=round(sum(known) / MIB, 1), scale=scale()))
    return rows


def envelope_nodes_20(duration_s: float) -> Rows:
    """20 one-CPU nodes (`cluster_utils`), 20,000 no-op tasks with SPREAD submitted at once: throughput and the GCS's
    CPU seconds over them; then one worker node's raylet gets SIGKILL and the time until `ray.nodes()` says it is
    dead."""
    nodes = max(3, round(20 * min(1.0, scale())))
    n = scaled(20_000, 1000)
    defs = _defs()
    start = time.perf_counter()
    cluster = _start_cluster(nodes, 1, 100 * 10**6)
    started = time.perf_counter() - start
    spread_node_of = defs.node_of.options(scheduling_strategy="SPREAD")
    nodes_used = len(set(ray.get([spread_node_of.remote() for _ in range(4 * nodes)])))
    spread = defs.noop.options(scheduling_strategy="SPREAD")
    ray.get([spread.remote() for _ in range(2 * nodes)])  # every node has a worker by now
    gcs = _node_pid(cluster.head_node, "gcs_server")
    raylets = [_node_pid(node, "raylet") for node in cluster.list_all_nodes()]
    gcs_cpu, raylet_cpu = cpu_seconds(gcs) or 0.0, sum(cpu_seconds(pid) or 0.0 for pid in raylets)
    begin = time.perf_counter()
    results = ray.get([spread.remote() for _ in range(n)])
    elapsed = time.perf_counter() - begin
    gcs_cpu_used = (cpu_seconds(gcs) or 0.0) - gcs_cpu
    raylet_cpu_used = sum(cpu_seconds(pid) or 0.0 for pid in raylets) - raylet_cpu
    if len(results) != n:
        raise AssertionError("missing results")
    memory = {"gcs_rss_mib": _mib(gcs, "VmRSS"),
              "raylets_rss_mib": round(sum(_mib(pid, "VmRSS") or 0.0 for pid in raylets), 1)}
    victim = next(iter(cluster.worker_nodes))
    victim_id = victim.node_id
    os.kill(_node_pid(victim, "raylet"), signal.SIGKILL)
    killed = time.perf_counter()
    polls = 0
    while True:
        polls += 1
        entry = next((x for x in ray.nodes() if x["NodeID"] == victim_id), None)
        if entry is not None and not entry["Alive"]:
            break
        if time.perf_counter() - killed > 300:
            raise TimeoutError(f"ray.nodes() still shows node {victim_id} alive 300 s after its raylet's SIGKILL")
        time.sleep(0.1)
    detected = time.perf_counter() - killed
    common = {"nodes": nodes, "scale": scale()}
    rows = one_row("envelope_nodes_20_spread", n / elapsed, tasks=n, seconds=round(elapsed, 3),
                   nodes_used_by_a_spread_batch=nodes_used, cluster_start_s=round(started, 1), **memory, **common)
    rows.update(one_row("envelope_nodes_20_gcs_cpu", gcs_cpu_used, tasks=n, raylets_cpu_s=round(raylet_cpu_used, 2),
                        **common))
    rows.update(one_row("envelope_nodes_20_detect_dead", detected, polls=polls, **common))
    return rows


def envelope_broadcast_1gib(duration_s: float) -> Rows:
    """A 1 GiB numpy array put on the head, then read by one task on each of 4 other nodes at once (by ref, each
    pinned to its node): 4 GiB moved over the time from submitting the four to the last result. Three rounds, each
    a fresh object; the median. Each node's store holds 1.5x the object (five copies fit in /dev/shm)."""
    import numpy as np
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    size = max(64 * MIB, round(GIB * scale()))
    defs = _defs()
    store = size + max(size // 2, 256 * MIB)
    cluster = _start_cluster(5, 1, store)
    head_id = cluster.head_node.node_id
    readers = [node.node_id for node in cluster.worker_nodes][:4]
    tasks = [defs.read_array.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
             for node_id in readers]
    ray.get([t.remote(np.ones(8, dtype=np.uint8)) for t in tasks])  # a worker on each reader node
    array = np.full(size, 7, dtype=np.uint8)
    rounds: list[float] = []
    puts: list[float] = []
    for _ in range(3):
        begin = time.perf_counter()
        ref = ray.put(array)
        put_done = time.perf_counter()
        got = ray.get([t.remote(ref) for t in tasks])
        elapsed = time.perf_counter() - put_done
        if got != [size + 7] * len(tasks):
            raise AssertionError(f"readers saw {got}")
        puts.append(put_done - begin)
        rounds.append(len(tasks) * size / 1e9 / elapsed)
        del ref
        time.sleep(1.0)  # the copies are freed before the next object
    raylets = [_node_pid(node, "raylet") for node in cluster.list_all_nodes()]
    return one_row("envelope_broadcast_1gib", statistics.median(rounds), rounds_gbs=[round(r, 3) for r in rounds],
                   object_bytes=size, readers=len(tasks), store_bytes_per_node=store, head=head_id,
                   put_s=[round(p, 3) for p in puts],
                   raylet_peak_rss_mib=max((_mib(pid, "VmHWM") or 0.0) for pid in raylets), scale=scale())


def envelope_pg_1000(duration_s: float) -> Rows:
    """1,000 placement groups of one bundle (a custom resource the node has 1,000 of) created at once, every one
    ready, then all removed, until the node's resource is all available again."""
    from ray.util.placement_group import placement_group, remove_placement_group

    n = scaled(1000, 20)
    ray.init(resources={"pg_slot": n})
    start = time.perf_counter()
    groups = [placement_group([{"pg_slot": 1}]) for _ in range(n)]
    ray.get([pg.ready() for pg in groups], timeout=1800)
    ready = time.perf_counter()
    for pg in groups:
        remove_placement_group(pg)
    removed = time.perf_counter()
    while ray.available_resources().get("pg_slot", 0) < n:
        if time.perf_counter() - removed > 300:
            raise TimeoutError(f"pg_slot available {ray.available_resources().get('pg_slot')} of {n} after 300 s")
        time.sleep(0.02)
    back = time.perf_counter()
    return one_row("envelope_pg_1000", back - start, groups=n, create_ready_s=round(ready - start, 3),
                   remove_calls_s=round(removed - ready, 3), until_resources_back_s=round(back - removed, 3),
                   scale=scale())


def envelope_gcs_memory(duration_s: float) -> Rows:
    """The GCS's RSS after 100,000 finished tasks (their task events) and 10,000 finished actors (created and killed
    25 at a time, each called once), once the task events had 5 s to arrive."""
    tasks_n = scaled(100_000, 1000)
    actors_n = scaled(10_000, 50)
    defs = _defs()
    ray.init()
    ray.get(defs.noop.remote())
    gcs_pids = _runtime_pids("gcs")
    if len(gcs_pids) != 1:
        raise RuntimeError(f"expected one GCS process, found {gcs_pids}")
    gcs = gcs_pids[0]
    baseline = _mib(gcs, "VmRSS")
    start = time.perf_counter()
    for done in range(0, tasks_n, 1000):
        ray.get([defs.noop.remote() for _ in range(min(1000, tasks_n - done))])
    tasks_s = time.perf_counter() - start
    after_tasks = _mib(gcs, "VmRSS")
    start = time.perf_counter()
    wave = 25
    for done in range(0, actors_n, wave):
        actors = [defs.PidActor.remote() for _ in range(min(wave, actors_n - done))]
        ray.get([a.pid.remote() for a in actors])
        for actor in actors:
            ray.kill(actor)
        del actors
    actors_s = time.perf_counter() - start
    time.sleep(5.0)
    return one_row("envelope_gcs_memory", _mib(gcs, "VmRSS"), tasks=tasks_n, actors=actors_n,
                   gcs_rss_start_mib=baseline, gcs_rss_after_tasks_mib=after_tasks, gcs_peak_mib=_mib(gcs, "VmHWM"),
                   tasks_s=round(tasks_s, 1), actors_s=round(actors_s, 1), scale=scale())


SCALE_WORKLOADS = {fn.__name__: fn for fn in (envelope_tasks_100k, envelope_objects_1m, envelope_actors_200, envelope_nodes_20,
                                              envelope_broadcast_1gib, envelope_pg_1000, envelope_gcs_memory)}
