"""The benchmark workloads. One workload runs per fresh interpreter:

    <python> bench/workloads.py WORKLOAD --duration SECONDS --out RESULT.json

The same file runs under OpenRay and under the real Ray, so it only uses Ray's public API
(plus numpy and psutil). It writes {"rows": {row_key: {"value": float, "details": {...}}}}
or {"error": "...", "traceback": "..."} to --out, before ray.shutdown() so a slow shutdown
never loses a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import ray
import workloads_ft  # sibling modules: bench/ is sys.path[0]
import workloads_obs
from procs import TOKEN_ENV, proc_info, processes_of_run, terminate
from workloads_scale import SCALE_WORKLOADS  # issue 16's scale rows
from workloads_scale import shutdown as shutdown_scale_cluster

Rows = dict[str, dict[str, Any]]
BATCH = 1000
PIP_PACKAGE = "emoji"  # small, pure Python, installed in neither runtime's environment
MIB = 1024 * 1024
AGENT_PORT = 52365  # --dashboard-agent-listen-port's default, in Ray and in OpenRay
PROFILE_ENV = "OPENRAY_BENCH_PROFILE"  # set by run.py --profile: where the driver's profile goes
_STARTED_HEAD_WITH_CLI = False  # set when a workload started its cluster with `ray start --head`
_CLUSTER: Any = None  # a ray.cluster_utils.Cluster a workload started, shut down after its figures are written
_AUTOSCALING: Any = None  # likewise, a ray.cluster_utils.AutoscalingCluster


@ray.remote
def noop() -> int:
    return 0


@ray.remote
def node_of() -> str:
    return ray.get_runtime_context().get_node_id()


@ray.remote
class Actor:
    def small_value(self) -> bytes:
        return b"ok"


@ray.remote
class AsyncActor:
    async def small_value(self) -> bytes:
        return b"ok"


def measure_rate(call: Callable[[], None], ops_per_call: float, duration_s: float,
                 trials: int = 3) -> tuple[float, dict[str, Any]]:
    """Ops/s of `call`: a short warm-up, then `trials` back-to-back trials sharing `duration_s`.
    The figure is the mean of the trial rates, as `ray microbenchmark` reports it."""
    warm_until = time.perf_counter() + min(1.0, duration_s / 10)
    call()
    while time.perf_counter() < warm_until:
        call()
    rates = []
    per_trial = duration_s / trials
    calls = 0
    cpu_start = time.process_time()
    for _ in range(trials):
        count = 0
        start = time.perf_counter()
        while True:
            call()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= per_trial:
                break
        calls += count
        rates.append(count * ops_per_call / elapsed)
    cpu_s = time.process_time() - cpu_start
    details = {"trials": [round(r, 3) for r in rates], "std": round(statistics.pstdev(rates), 3),
               "calls": calls,
               # The driver's own CPU (all its threads) per 10,000 operations: what task events cost it.
               "driver_cpu_s_per_10k_ops": round(cpu_s * 10_000 / max(1.0, calls * ops_per_call), 4)}
    return statistics.fmean(rates), details


def one_row(key: str, value: float, **details: Any) -> Rows:
    return {key: {"value": value, "details": details}}


# ---------------------------------------------------------------- startup and memory

def init_ready(duration_s: float) -> Rows:
    start = time.perf_counter()
    ray.init()
    initialized = time.perf_counter()
    ray.get(noop.remote())
    ready = time.perf_counter()
    return one_row("init_ready", ready - start, init_s=round(initialized - start, 3),
                   first_task_s=round(ready - initialized, 3))


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _wait_port_free(port: int, timeout_s: float) -> float | str:
    """Seconds waited until `port` could be bound, or 'still busy' after `timeout_s`."""
    start = time.monotonic()
    while not _port_free(port):
        if time.monotonic() - start > timeout_s:
            return "still busy"
        time.sleep(0.5)
    return round(time.monotonic() - start, 1)


def idle_memory(duration_s: float) -> Rows:
    """RSS of the runtime's processes once the idle cluster stops starting new ones: at least 20 s
    after ray.init (both runtimes start their node agents and prestarted workers some seconds after
    init returns, 7-10 s on this loaded machine), then until the set of processes is the same five
    samples in a row (at most 60 s)."""
    # Both runtimes' node agents listen on 52365 by default and ray.init cannot move it; when some
    # other cluster on this shared machine holds it, Ray's agent fails and the figure is short of it.
    port_wait = _wait_port_free(AGENT_PORT, timeout_s=20)
    context = ray.init()
    address_info = getattr(context, "address_info", None) or {}
    markers = [m for m in (address_info.get("session_dir"), os.environ.get("OPENRAY_BENCH_TMP")) if m]
    start = time.monotonic()
    history: list[frozenset[int]] = []
    while True:
        time.sleep(1.0)
        procs = processes_of_run(os.environ.get(TOKEN_ENV), markers, root_pid=os.getpid())
        history.append(frozenset(p.pid for p in procs))
        waited = time.monotonic() - start
        settled = len(history) >= 5 and len(set(history[-5:])) == 1
        if (waited >= 20.0 and settled) or waited >= 60.0:
            break
    by_name: dict[str, list[int]] = {}
    for proc in procs:
        by_name.setdefault(proc.short_name, []).append(proc.rss_bytes)
    total = sum(proc.rss_bytes for proc in procs)
    breakdown = {name: {"count": len(v), "mib": round(sum(v) / MIB, 1)}
                 for name, v in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))}
    driver = proc_info(os.getpid())
    return one_row("idle_memory", total / MIB, processes=len(procs), settled_after_s=round(waited, 1),
                   agent_port_wait_s=port_wait,
                   driver_mib=round(driver.rss_bytes / MIB, 1) if driver else None, by_process=breakdown)


# ---------------------------------------------------------------- tasks

def tasks_sync(duration_s: float) -> Rows:
    ray.init()
    value, details = measure_rate(lambda: ray.get(noop.remote()), 1, duration_s)
    return one_row("tasks_sync", value, **details)


def tasks_async(duration_s: float) -> Rows:
    ray.init()
    value, details = measure_rate(lambda: ray.get([noop.remote() for _ in range(BATCH)]), BATCH, duration_s)
    return one_row("tasks_async", value, **details)


def _three_node_cluster() -> Any:
    """Three nodes of 2 CPUs on this machine (`ray.cluster_utils.Cluster`, the same public test API in both
    runtimes), with this driver connected to the head."""
    global _CLUSTER
    from ray.cluster_utils import Cluster

    # The runner sets RAY_AUTH_MODE=token (Ray 2.60's default for the clusters ray.init and `ray start` create;
    # they also write ~/.ray/auth_token on first use). cluster_utils writes none, and on a machine without that
    # file Ray's GCS exits ("Token authentication is enabled but Ray couldn't find an authentication token").
    # OpenRay has no token auth and ignores both.
    os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex)
    _CLUSTER = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    for _ in range(2):
        _CLUSTER.add_node(num_cpus=2, include_dashboard=False)
    _CLUSTER.wait_for_nodes()
    ray.init(address=_CLUSTER.address)
    return _CLUSTER


def tasks_spread_3_nodes(duration_s: float) -> Rows:
    """Batches of 1000 no-op tasks with scheduling_strategy="SPREAD" on three nodes; the JSON also has the
    same batches with the default strategy on the same cluster, and on how many nodes a SPREAD batch ran."""
    _three_node_cluster()
    spread = noop.options(scheduling_strategy="SPREAD")
    nodes_used = len(set(ray.get([node_of.options(scheduling_strategy="SPREAD").remote() for _ in range(BATCH)])))
    # A fresh cluster: workers still start on the other nodes. Warm both strategies up alike, so that the
    # first one measured is not the one that pays for it.
    for _ in range(3):
        ray.get([spread.remote() for _ in range(BATCH)])
        ray.get([noop.remote() for _ in range(BATCH)])
    value, details = measure_rate(lambda: ray.get([spread.remote() for _ in range(BATCH)]), BATCH, duration_s)
    default, default_details = measure_rate(lambda: ray.get([noop.remote() for _ in range(BATCH)]), BATCH,
                                            duration_s)
    return one_row("tasks_spread_3_nodes", value, nodes_used_by_a_spread_batch=nodes_used,
                   default_strategy_tasks_per_s=round(default, 1), default_strategy_trials=default_details["trials"],
                   spread_vs_default=round(value / default, 3), **details)


def wait_1k_refs(duration_s: float) -> Rows:
    ray.init()

    def one_round() -> None:
        not_ready = [noop.remote() for _ in range(BATCH)]
        for _ in range(BATCH):
            _ready, not_ready = ray.wait(not_ready)

    value, details = measure_rate(one_round, 1, duration_s)
    return one_row("wait_1k_refs", value, **details)


# ---------------------------------------------------------------- placement groups (issue 12)

def _placement_group_rate(bundles: list[dict], strategy: str, duration_s: float) -> tuple[float, dict]:
    from ray.util.placement_group import placement_group, remove_placement_group

    def create_ready_remove() -> None:
        pg = placement_group(bundles, strategy=strategy)
        ray.get(pg.ready())
        remove_placement_group(pg)

    return measure_rate(create_ready_remove, 1, duration_s)


def pg_create_one_bundle(duration_s: float) -> Rows:
    ray.init()
    value, details = _placement_group_rate([{"CPU": 1}], "PACK", duration_s)
    return one_row("pg_create_one_bundle", value, **details)


def pg_create_strict_spread_4_nodes(duration_s: float) -> Rows:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for _ in range(3):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        value, details = _placement_group_rate([{"CPU": 1}] * 4, "STRICT_SPREAD", duration_s)
        nodes = sum(1 for n in ray.nodes() if n["Alive"])
        ray.shutdown()
    finally:
        cluster.shutdown()
    return one_row("pg_create_strict_spread_4_nodes", value, nodes=nodes, **details)


def pg_tasks_async(duration_s: float) -> Rows:
    """`tasks async` with every task in a group that holds all the node's CPUs (any bundle)."""
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray.init()
    cpus = int(ray.cluster_resources()["CPU"])
    pg = placement_group([{"CPU": 1}] * cpus, strategy="PACK")
    ray.get(pg.ready())
    in_group = noop.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg))
    value, details = measure_rate(lambda: ray.get([in_group.remote() for _ in range(BATCH)]), BATCH, duration_s)
    return one_row("pg_tasks_async", value, bundles=cpus, **details)


# ---------------------------------------------------------------- actors

def _actor_rows(key: str, actor_class: Any, batched: bool, duration_s: float) -> Rows:
    ray.init()
    actor = actor_class.remote()
    ray.get(actor.small_value.remote())
    if batched:
        value, details = measure_rate(
            lambda: ray.get([actor.small_value.remote() for _ in range(BATCH)]), BATCH, duration_s)
    else:
        value, details = measure_rate(lambda: ray.get(actor.small_value.remote()), 1, duration_s)
    return one_row(key, value, **details)


def actor_calls_sync(duration_s: float) -> Rows:
    return _actor_rows("actor_calls_sync", Actor, False, duration_s)


def actor_calls_async(duration_s: float) -> Rows:
    return _actor_rows("actor_calls_async", Actor, True, duration_s)


def async_actor_calls_sync(duration_s: float) -> Rows:
    return _actor_rows("async_actor_calls_sync", AsyncActor, False, duration_s)


def async_actor_calls_async(duration_s: float) -> Rows:
    return _actor_rows("async_actor_calls_async", AsyncActor, True, duration_s)


def actors_100(duration_s: float) -> Rows:
    ray.init()
    ray.get(noop.remote())  # the cluster is ready; only actor creation is timed
    start = time.perf_counter()
    actors = [Actor.remote() for _ in range(100)]
    first = ray.get(actors[0].small_value.remote())
    first_s = time.perf_counter() - start
    results = ray.get([a.small_value.remote() for a in actors])
    total = time.perf_counter() - start
    if first != b"ok" or results != [b"ok"] * 100:
        raise AssertionError(f"unexpected actor results: {results[:3]}...")
    return one_row("actors_100", total, first_actor_s=round(first_s, 3))


# ---------------------------------------------------------------- objects

def put_small(duration_s: float) -> Rows:
    ray.init()
    value, details = measure_rate(lambda: ray.put(0), 1, duration_s)
    return one_row("put_small", value, **details)


def get_small(duration_s: float) -> Rows:
    ray.init()
    ref = ray.put(0)
    value, details = measure_rate(lambda: ray.get(ref), 1, duration_s)
    return one_row("get_small", value, **details)


def put_get_100mib(duration_s: float) -> Rows:
    import numpy as np

    ray.init()
    array = np.random.default_rng(0).integers(0, 255, size=100 * MIB, dtype=np.uint8)
    put_times: list[float] = []
    get_times: list[float] = []

    def put_then_get() -> None:
        start = time.perf_counter()
        ref = ray.put(array)
        put_done = time.perf_counter()
        out = ray.get(ref)
        got = time.perf_counter()
        if out.nbytes != array.nbytes or out[12345] != array[12345]:
            raise AssertionError("ray.get returned a different array")
        put_times.append(put_done - start)
        get_times.append(got - put_done)
        del out, ref

    value, details = measure_rate(put_then_get, array.nbytes / 1e9, duration_s)
    details.update(put_ms=round(1000 * statistics.median(put_times), 2),
                   get_ms=round(1000 * statistics.median(get_times), 2))
    return one_row("put_get_100mib", value, **details)


def _memcpy_gbs(array: Any) -> float:
    """This machine's single-threaded copy of `array` into memory already faulted in (GB/s), for scale."""
    import numpy as np

    target = np.empty_like(array)
    np.copyto(target, array)
    best = min(_timed(lambda: np.copyto(target, array)) for _ in range(5))
    return array.nbytes / 1e9 / best


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def large_objects(duration_s: float) -> Rows:
    """Issue 16's large-object rows: 100 MiB numpy and bytes through put/get, and as a task argument and
    result; each with its fraction of this machine's memcpy in the details."""
    import numpy as np

    ray.init()
    array = np.random.default_rng(0).integers(0, 255, size=100 * MIB, dtype=np.uint8)
    blob = array.tobytes()
    memcpy = _memcpy_gbs(array)
    gb = array.nbytes / 1e9
    rows: Rows = {}

    def add(key: str, call: Callable[[], None]) -> None:
        value, details = measure_rate(call, gb, duration_s / 5)
        details["fraction_of_memcpy"] = round(value / memcpy, 3)
        details["memcpy_gbs"] = round(memcpy, 2)
        rows.update(one_row(key, value, **details))

    add("put_100mib_numpy", lambda: ray.put(array))
    add("put_100mib_bytes", lambda: ray.put(blob))
    blob_ref = ray.put(blob)
    add("get_100mib_bytes", lambda: ray.get(blob_ref))
    add("put_get_100mib_bytes", lambda: ray.get(ray.put(blob)))

    @ray.remote
    def nbytes(value: Any) -> int:
        return len(value)

    @ray.remote
    def make_blob(n: int) -> bytes:
        return b"x" * n

    @ray.remote
    class Holder:
        def nbytes(self, value: Any) -> int:
            return len(value)

        def make_blob(self, n: int) -> bytes:
            return b"x" * n

    ray.get(nbytes.remote(b"warm"))
    add("task_arg_100mib_numpy_by_value", lambda: ray.get(nbytes.remote(array)))
    array_ref = ray.put(array)
    add("task_arg_100mib_numpy_by_ref", lambda: ray.get(nbytes.remote(array_ref)))
    add("task_return_100mib_bytes", lambda: ray.get(make_blob.remote(100 * MIB)))
    holder = Holder.remote()
    ray.get(holder.nbytes.remote(b"warm"))
    add("actor_arg_100mib_numpy_by_value", lambda: ray.get(holder.nbytes.remote(array)))
    add("actor_arg_100mib_numpy_by_ref", lambda: ray.get(holder.nbytes.remote(array_ref)))
    add("actor_return_100mib_bytes", lambda: ray.get(holder.make_blob.remote(100 * MIB)))
    return rows


# ---------------------------------------------------------------- jobs and runtime environments

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _job_client(address: str, deadline: float) -> Any:
    from ray.job_submission import JobSubmissionClient

    while True:
        try:
            return JobSubmissionClient(address)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _submit_until_running(client: Any, entrypoint: str, timeout_s: float,
                          **submit_kwargs: Any) -> tuple[str, float, float]:
    """Submits a job and polls (every 5 ms) until RUNNING: (job id, submit call s, submit -> RUNNING s)."""
    from ray.job_submission import JobStatus

    start = time.perf_counter()
    while True:
        try:
            job_id = client.submit_job(entrypoint=entrypoint, **submit_kwargs)
            break
        except RuntimeError as exc:
            # Ray answers 500 "No available agent to submit job, please try again later" until its
            # node agent registered; a user retries, and the time until it works counts.
            if "try again later" not in str(exc) or time.perf_counter() - start > 60:
                raise
            time.sleep(0.2)
    submit_call = time.perf_counter() - start
    deadline = time.monotonic() + timeout_s
    while (status := client.get_job_status(job_id)) != JobStatus.RUNNING:
        if status.is_terminal():
            raise RuntimeError(f"job {job_id} ended {status} before RUNNING: "
                               f"{client.get_job_info(job_id).message} {client.get_job_logs(job_id)[-500:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {status} after {timeout_s:.0f} s")
        time.sleep(0.005)
    return job_id, submit_call, time.perf_counter() - start


def _stop_and_wait(client: Any, job_id: str) -> None:
    client.stop_job(job_id)
    deadline = time.monotonic() + 60
    while not client.get_job_status(job_id).is_terminal() and time.monotonic() < deadline:
        time.sleep(0.05)


def _start_head_with_cli() -> Any:
    """A head node started the way a cluster is (`ray start --head`, as KubeRay does), with every
    port it listens on chosen free here: the node agent's default port (52365) is often held by
    other clusters on this shared machine, and ray.init cannot move it. Returns a
    JobSubmissionClient for its dashboard. Its processes carry this run's token, so the end of the
    workload (and the runner, after a crash) stops them without `ray stop`, which would stop every
    Ray process on the machine."""
    global _STARTED_HEAD_WITH_CLI
    gcs_port, dashboard_port, agent_port = _free_port(), _free_port(), _free_port()
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    _STARTED_HEAD_WITH_CLI = True
    done = subprocess.run(
        [ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
         f"--dashboard-agent-listen-port={agent_port}", "--disable-usage-stats"],
        capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ray start --head failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}")
    return _job_client(f"http://127.0.0.1:{dashboard_port}", time.monotonic() + 120)


def client_round_trip(duration_s: float) -> Rows:
    """Ray Client: `ray.get(f.remote())` of a trivial task through `ray://` to a `ray start --head`."""
    global _STARTED_HEAD_WITH_CLI
    gcs_port, client_port = _free_port(), _free_port()
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    _STARTED_HEAD_WITH_CLI = True
    done = subprocess.run(
        [ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}", "--include-dashboard=false",
         f"--ray-client-server-port={client_port}", "--disable-usage-stats"],
        capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ray start --head failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}")
    start = time.perf_counter()
    ray.init(f"ray://127.0.0.1:{client_port}")
    connect_s = time.perf_counter() - start
    value, details = measure_rate(lambda: ray.get(noop.remote()), 1, duration_s)
    return one_row("client_round_trip", value, connect_s=round(connect_s, 3), **details)


def launcher_up(duration_s: float) -> Rows:
    """`ray up` of a head and 2 workers, from nothing to `ray status` (through `ray exec`) showing 3 nodes.
    The hosts are the launcher tests' (tests/integration/launcher/ssh_hosts.py): network namespaces with a
    real sshd each; needs root. Setup commands empty, Ray's default start commands."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        import ray.autoscaler._private.launcher  # noqa: F401  (OpenRay's)
        openray = True
    except ImportError:
        # The real Ray: its `ray stop` (the default start commands begin with it) kills every Ray process it can
        # see, so each host gets a PID namespace of its own.
        openray = False
    sys.path[:0] = [os.path.join(repo, "tests", "integration"), os.path.join(repo, "tests", "integration", "launcher")]
    import yaml
    from ssh_hosts import SSHHosts, ensure_packages

    ensure_packages()
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    with SSHHosts(hosts=3, pid_namespace=not openray) as hosts:
        cfg = os.path.join(hosts.root, "cluster.yaml")
        with open(cfg, "w") as f:
            yaml.safe_dump({"cluster_name": "bench", "provider": {"type": "local", "head_ip": hosts.ips[0],
                                                                  "worker_ips": hosts.ips[1:]},
                            "auth": {"ssh_user": "root", "ssh_private_key": str(hosts.key)}}, f)
        env = dict(os.environ, TMPDIR=str(hosts.root), RAY_TMPDIR=str(hosts.root))
        env.pop("RAY_ADDRESS", None)
        start = time.perf_counter()
        up = subprocess.run([ray_cli, "up", cfg, "-y"], capture_output=True, text=True, env=env, timeout=400)
        if up.returncode != 0:
            raise RuntimeError(f"ray up failed: {(up.stdout + up.stderr)[-800:]}")
        up_s = time.perf_counter() - start
        polls = 0
        while True:
            polls += 1
            status = subprocess.run([ray_cli, "exec", cfg, "ray status"], capture_output=True, text=True, env=env,
                                    timeout=120)
            if _active_nodes(status.stdout) == 3:
                break
            if time.perf_counter() - start > 400:
                raise RuntimeError(f"ray status did not show 3 nodes: {status.stdout[-800:]}{status.stderr[-400:]}")
            time.sleep(0.5)
        total = time.perf_counter() - start
        subprocess.run([ray_cli, "down", cfg, "-y"], capture_output=True, env=env, timeout=200)
    return one_row("launcher_up", total, ray_up_s=round(up_s, 3), status_polls=polls)


def _active_nodes(status: str) -> int:
    """The nodes `ray status` lists as Active or Idle (` 1 node_<id>` each, or ` 3 local.cluster.node` by type;
    Ray 2.60 lists idle nodes apart)."""
    active = status.split("Active:", 1)[1].split("Pending:", 1)[0] if "Active:" in status else ""
    active = active.replace("Idle:", "")
    return sum(int(n) for n in re.findall(r"^ +(\d+) \S+$", active, re.M))


def _stop_head_started_with_cli() -> None:
    if _STARTED_HEAD_WITH_CLI or workloads_ft.started_processes():
        terminate([p.pid for p in processes_of_run(os.environ.get(TOKEN_ENV), None)])
    workloads_ft.stop_redis()


def _shutdown_cluster() -> None:
    if _CLUSTER is not None:
        _CLUSTER.shutdown()
    if _AUTOSCALING is not None:
        _AUTOSCALING.shutdown()
    shutdown_scale_cluster()


def job_submit_running(duration_s: float) -> Rows:
    client = _start_head_with_cli()
    latencies: list[float] = []
    submit_calls: list[float] = []
    for _ in range(3 if duration_s >= 3 else 1):
        job_id, submit_call, latency = _submit_until_running(
            client, 'python -c "import time; time.sleep(600)"', timeout_s=120)
        submit_calls.append(submit_call)
        latencies.append(latency)
        _stop_and_wait(client, job_id)
    return one_row("job_submit_running", statistics.median(latencies),
                   all_s=[round(x, 3) for x in latencies],
                   submit_call_s=[round(x, 3) for x in submit_calls])


@ray.remote
def pip_package_version() -> str:
    return __import__(PIP_PACKAGE).__version__


@ray.remote
class PipProbe:
    def version(self) -> str:
        return __import__(PIP_PACKAGE).__version__


def pip_env(duration_s: float) -> Rows:
    ray.init()
    ray.get(noop.remote())
    env = {"pip": [PIP_PACKAGE]}
    start = time.perf_counter()
    version = ray.get(pip_package_version.options(runtime_env=env).remote())
    first = time.perf_counter() - start
    start = time.perf_counter()
    ray.get(pip_package_version.options(runtime_env=env).remote())
    second = time.perf_counter() - start
    start = time.perf_counter()
    probe = PipProbe.options(runtime_env=env).remote()
    ray.get(probe.version.remote())
    actor = time.perf_counter() - start
    return {
        "pip_env_second_task": {"value": second, "details": {"first_task_s": round(first, 3),
                                                             "package": f"{PIP_PACKAGE}=={version}"}},
        "pip_env_cached_actor": {"value": actor, "details": {}},
    }


def pip_env_job(duration_s: float) -> Rows:
    """Two jobs with the same pip runtime env on a `ray start` head, one after the other: the second one's env must come
    from the node's cache. The entrypoint prints the package's version, which shows the env is real."""
    client = _start_head_with_cli()
    env = {"pip": [PIP_PACKAGE]}
    entrypoint = (f'python -c "import time, {PIP_PACKAGE}; print(\'version\', {PIP_PACKAGE}.__version__, '
                  f'flush=True); time.sleep(600)"')
    latencies = []
    for _ in range(2):
        job_id, _call, latency = _submit_until_running(client, entrypoint, timeout_s=400, runtime_env=env)
        latencies.append(latency)
        deadline = time.monotonic() + 60
        while not re.search(r"\bversion \d", logs := client.get_job_logs(job_id)):
            if client.get_job_status(job_id).is_terminal() or time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} never printed the package version; logs: {logs[-500:]}")
            time.sleep(0.1)
        _stop_and_wait(client, job_id)
    printed = [line for line in logs.splitlines() if re.search(r"\bversion \d", line)]
    return one_row("pip_env_second_job", latencies[1], first_job_s=round(latencies[0], 3),
                   printed=printed[-1][:80] if printed else None)


# ---------------------------------------------------------------- autoscaling (issue 13)

# Ray's python/ray/autoscaler/_private/fake_multi_node/example.yaml, which its AutoscalingCluster starts from;
# the Ray 2.60 wheel does not ship that file, so the same config is built here when it is missing.
_FAKE_MULTINODE_EXAMPLE: dict[str, Any] = {
    "cluster_name": "fake_multinode", "max_workers": 8,
    "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                 "disable_launch_config_check": True},
    "available_node_types": {},
    "head_node_type": "ray.head.default", "auth": {}, "upscaling_speed": 1.0, "idle_timeout_minutes": 0.1,
    "docker": {}, "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
    "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [], "file_mounts": {},
    "cluster_synced_files": [], "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
}


def _autoscaling_cluster(head_resources: dict, worker_node_types: dict, **config: Any) -> Any:
    """`ray.cluster_utils.AutoscalingCluster`, the public test API of both runtimes (only its config's
    starting point is supplied when the runtime's own file is missing)."""
    import copy

    from ray.cluster_utils import AutoscalingCluster

    class Cluster(AutoscalingCluster):
        def _generate_config(self, head_resources, worker_node_types, autoscaler_v2=False, **config_kwargs):
            try:
                return super()._generate_config(head_resources, worker_node_types, autoscaler_v2, **config_kwargs)
            except FileNotFoundError:
                custom = copy.deepcopy(_FAKE_MULTINODE_EXAMPLE)
                custom["available_node_types"] = copy.deepcopy(worker_node_types)
                custom["available_node_types"]["ray.head.default"] = {
                    "resources": head_resources, "node_config": {}, "max_workers": 0}
                custom.update(config_kwargs)
                return custom

    return Cluster(head_resources, worker_node_types, **config)


def _monitor_process() -> Any:
    """The autoscaler's process: Ray's `.../autoscaler/_private/monitor.py`, OpenRay's
    `ray.autoscaler._private.monitor`."""
    for info in processes_of_run(os.environ.get(TOKEN_ENV), [os.environ.get("OPENRAY_BENCH_TMP", "/nonexistent")]):
        text = " ".join(info.cmdline)
        if "autoscaler/_private/monitor.py" in text or "ray.autoscaler._private.monitor" in text:
            return info
    return None


def autoscale_first_task(duration_s: float) -> Rows:
    """AutoscalingCluster with a 0-CPU head and three one-node types (w0, w1, w2: 1 CPU and a resource of
    its own each), the autoscaler's 1 s rounds. After 15 s of idling (the autoscaler's RSS is read then), one task
    per type: the time from submitting it to its result, which needs a node the autoscaler adds (median of 3)."""
    global _AUTOSCALING
    types = {f"w{i}": {"resources": {"CPU": 1, f"w{i}": 1}, "node_config": {}, "min_workers": 0, "max_workers": 1}
             for i in range(3)}
    cluster = _autoscaling_cluster({"CPU": 0}, types, max_workers=3, idle_timeout_minutes=10)
    _AUTOSCALING = cluster
    cluster.start()
    ray.init("auto")
    time.sleep(15)
    monitor = _monitor_process()
    samples = []
    for i in range(3):
        start = time.perf_counter()
        ray.get(node_of.options(num_cpus=1, resources={f"w{i}": 1}).remote(), timeout=300)
        samples.append(time.perf_counter() - start)
    rows = one_row("autoscale_first_task", statistics.median(samples), all_s=[round(x, 3) for x in samples])
    if monitor is not None:
        rows.update(one_row("autoscaler_idle_memory", monitor.rss_bytes / MIB, pid=monitor.pid,
                            cmdline=" ".join(monitor.cmdline)[:160]))
    return rows


def autoscaler_round(duration_s: float) -> Rows:
    """OpenRay only (Ray has no separable counterpart): one `Autoscaler.update()` — read the cluster state, plan,
    launch, report — on a state of 20 nodes of 10 node types, 10,000 queued tasks of 100 shapes and 10 pending
    placement groups, against an in-memory GCS and provider (the round's own cost, no I/O). The median of 20
    rounds; the JSON also has the worst case of 10,000 distinct shapes."""
    import copy

    from ray.autoscaler._private.autoscaler import Autoscaler
    from ray.autoscaler._private.providers import CloudInstance, NodeProvider
    from ray.protocol import autoscaler_pb2 as apb

    types = {f"t{i}": {"resources": {"CPU": float(2 ** (i % 4 + 1)), "memory": float(2 ** 34),
                                     **({"GPU": float(1 + i % 2)} if i >= 7 else {}), f"zone{i % 3}": 1.0},
                       "min_workers": 0, "max_workers": 100} for i in range(10)}
    config = {"cluster_name": "bench", "provider": {"type": "readonly"}, "head_node_type": "head",
              "max_workers": 1000, "upscaling_speed": 1.0, "idle_timeout_minutes": 5,
              "available_node_types": {"head": {"resources": {"CPU": 0}, "max_workers": 0}, **types}}

    class Provider(NodeProvider):
        def __init__(self, instances):
            self.instances = instances

        def non_terminated(self):
            return dict(self.instances)

        def launch(self, node_type, count):
            pass

        def terminate(self, ids):
            pass

    def state(distinct: int) -> tuple[apb.ClusterResourceState, dict]:
        s = apb.ClusterResourceState(cluster_resource_state_version=1)
        instances = {"head": CloudInstance("head", "head", is_head=True)}
        s.node_states.append(apb.NodeState(node_id=b"\x00" * 28, instance_id="head", ray_node_type_name="head",
                                           total_resources={"CPU": 0.0}, status=apb.IDLE, idle_duration_ms=5))
        for n in range(20):
            name = f"t{n % 10}"
            total = types[name]["resources"]
            s.node_states.append(apb.NodeState(
                node_id=(n + 1).to_bytes(28, "big"), instance_id=f"i{n}", ray_node_type_name=name,
                total_resources=total, available_resources={**total, "CPU": total["CPU"] / 2},
                status=apb.RUNNING))
            instances[f"i{n}"] = CloudInstance(f"i{n}", name)
        for k in range(distinct):
            shape = {"CPU": 0.25 * (1 + k % 16), f"zone{k % 3}": 0.001}
            if k % 10 == 0:
                shape["GPU"] = 1.0
            if distinct > 100:
                shape["memory"] = float(1 + k)  # every shape its own
            s.pending_resource_requests.append(apb.ResourceRequestByCount(
                request=apb.ResourceRequest(resources_bundle=shape), count=10_000 // distinct))
        for g in range(10):
            label = apb.PlacementConstraint()
            label.anti_affinity.label_name = f"_PG_{g}"
            s.pending_gang_resource_requests.append(apb.GangResourceRequest(
                requests=[apb.ResourceRequest(resources_bundle={"CPU": 1.0}, placement_constraints=[label])] * 4,
                details=f"{g:036x}:STRICT_SPREAD|PENDING"))
        return s, instances

    class Gcs:
        def __init__(self, s):
            self.s = s

        def get_cluster_resource_state(self, timeout_s=None):
            return self.s

        def report_autoscaling_state(self, state, timeout_s=None):
            pass

        def internal_kv_put(self, *args, **kwargs):
            pass

        def internal_kv_del(self, *args, **kwargs):
            pass

    def rounds(distinct: int, n: int) -> list[float]:
        s, instances = state(distinct)
        provider = Provider(instances)
        provider.launches = True
        autoscaler = Autoscaler(Gcs(s), lambda: copy.deepcopy(config), lambda cfg: provider)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            autoscaler.update()
            times.append(time.perf_counter() - start)
            autoscaler._requested.clear()  # every round plans from the same state
        return times

    typical = rounds(100, 20)
    worst = rounds(10_000, 3)
    return one_row("autoscaler_round", statistics.median(typical), all_s=[round(x, 4) for x in typical],
                   distinct_10000_shapes_s=[round(x, 4) for x in worst])


WORKLOADS: dict[str, Callable[[float], Rows]] = {
    fn.__name__: fn for fn in (
        tasks_spread_3_nodes,
        init_ready, tasks_sync, tasks_async, actor_calls_sync, actor_calls_async, async_actor_calls_sync,
        async_actor_calls_async, put_small, get_small, put_get_100mib, large_objects, wait_1k_refs, actors_100,
        idle_memory, job_submit_running, pip_env, pip_env_job, pg_create_one_bundle,
        pg_create_strict_spread_4_nodes, pg_tasks_async, client_round_trip, launcher_up, autoscale_first_task,
        autoscaler_round, workloads_ft.gcs_restart,
    )
} | workloads_obs.WORKLOADS
WORKLOADS.update(SCALE_WORKLOADS)


def run_maybe_profiled(workload: Callable[[float], Rows], duration_s: float) -> Rows:
    """Runs the workload; with PROFILE_ENV set, under cProfile, writing the driver's hottest
    functions (by own and by cumulative time) to that path."""
    path = os.environ.get(PROFILE_ENV)
    if not path:
        return workload(duration_s)
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(workload, duration_s)
    finally:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(30)
        with open(path, "w") as fh:
            fh.write(text.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput row")
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    args = parser.parse_args()
    try:
        result: dict[str, Any] = {"rows": run_maybe_profiled(WORKLOADS[args.workload], args.duration)}
    except BaseException as exc:  # any failure becomes a result the table can show
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    result["ray_version"] = getattr(ray, "__version__", "?")
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    start = time.perf_counter()
    try:
        ray.shutdown()
        _shutdown_cluster()
        _stop_head_started_with_cli()
        workloads_obs.cleanup()
    finally:
        print(f"ray.shutdown took {time.perf_counter() - start:.2f}s", file=sys.stderr)
    return 0 if "rows" in result else 1


if __name__ == "__main__":
    sys.exit(main())
