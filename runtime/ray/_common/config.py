"""One place for tunables. Every entry can be overridden with a `RAY_<name>` environment variable, as Ray does.

Values are read when a process starts; `_system_config` passed to `ray.init` is exported as environment
variables to the processes it launches so they see the same values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

_TRUE = {"1", "true", "yes", "on"}


@dataclass
class RayConfig:
    # GCS <-> raylet health: the GCS declares a node dead after `health_check_failure_threshold`
    # missed checks `health_check_period_ms` apart (Ray's defaults).
    health_check_period_ms: int = 3000
    health_check_failure_threshold: int = 5
    # Raylets, drivers, workers, the agent and the dashboard wait this long for a GCS that went away to come
    # back (a restarted GCS with Redis, Ray's default) before they give up.
    gcs_rpc_server_reconnect_timeout_s: int = 60
    # The GCS's tables in Redis are kept under this name (RAY<namespace>@<table>): a restarted GCS with the
    # same namespace takes its cluster over; clusters sharing one Redis keep apart (KubeRay sets it to the
    # RayCluster's uid unless gcsFaultToleranceOptions.externalStorageNamespace says otherwise).
    external_storage_namespace: str = "default"
    # How often a raylet reports its resource view to the GCS and receives the cluster's.
    raylet_report_resources_period_ms: int = 100
    # Objects at most this large travel inline with the task reply instead of through the store.
    max_direct_call_object_size: int = 100 * 1024
    # Normal tasks are retried this many times when their worker dies.
    task_max_retries: int = 3
    # Hybrid scheduling (Ray's names and defaults): a node whose critical-resource utilization is under the
    # threshold scores 0, so the local node is preferred until it passes it; then one of the k least-loaded
    # nodes is chosen, k = max(top_k_absolute, int(top_k_fraction * #nodes)); CPU-only requests try nodes
    # without GPUs first.
    scheduler_spread_threshold: float = 0.5
    scheduler_top_k_fraction: float = 0.2
    scheduler_top_k_absolute: int = 1
    scheduler_avoid_gpu_nodes: bool = True
    # An owner asks the raylet of the node holding most of a task's argument bytes for its lease first.
    locality_aware_leasing_enabled: bool = True
    # Normal tasks an owner keeps queued at one leased worker behind the one it runs (Ray 1.x had this knob, at 1),
    # so that the worker never waits a round trip for its next short task. Only retryable tasks (not SPREAD ones)
    # queue, and only at a worker whose last task took under `pipelined_task_max_s`; a task that blocks (ray.get)
    # hands its queue back, and tasks waiting 10x that long behind a long one are handed back to run elsewhere.
    # Ray's default is 1 (nothing queues); ours is 4 because short tasks then never wait a round trip.
    max_tasks_in_flight_per_worker: int = 4
    pipelined_task_max_s: float = 0.002
    # A thread that calls an actor synchronously again and again sends its calls on a connection of its own to the
    # actor's worker and reads each answer itself (core_worker/actor_channels.py). Not a Ray knob: off gives the
    # path every other call takes, through this process's io thread.
    actor_call_channels: bool = True
    # How often each raylet writes its scheduler's state to <session>/logs/debug_state.txt (0: never).
    debug_dump_period_milliseconds: int = 10000
    # Idle workers above the soft limit are killed after this long.
    idle_worker_killing_time_threshold_ms: int = 1000
    num_workers_soft_limit: int = -1
    # Workers the raylet starts for a new driver before its first task (at most one per CPU). Ray starts
    # one per CPU; ours fork from a pre-imported template in milliseconds, so idle ones only cost memory.
    num_prestart_workers: int = 0
    worker_register_timeout_seconds: int = 60
    # A worker the raylet ends (its job or its lease's owner ended, idle too long) is asked to exit, so that it
    # reports its last task events first; one still alive after this long is SIGKILLed (Ray's name and default).
    kill_worker_timeout_milliseconds: int = 5000
    object_spilling_threshold: float = 0.8
    # The largest gRPC message either way (Ray's default; gRPC's own is 4 MiB).
    max_grpc_message_size: int = 512 * 1024 * 1024
    # A value pulled from another node travels in chunks of this size, a few in flight (Ray's name; Ray's
    # default is 5 MiB, ours is larger because each chunk costs a Python round trip).
    object_manager_default_chunk_size: int = 64 * 1024 * 1024
    # A framed connection whose authentication handshake is not done by then is dropped (either side).
    framed_handshake_timeout_s: float = 30.0
    # Workers' malloc asks for transparent huge pages (glibc's `glibc.malloc.hugetlb=1` tunable, set in the
    # worker processes' GLIBC_TUNABLES): a task that builds a 100 MiB value then takes 50 page faults instead
    # of 25,600 (measured here: `b"x" * 100 MiB` 56 ms -> 8.5 ms; an actor's PSS unchanged, 10.4 MiB). THP in
    # `madvise` mode (Debian's default) gives nothing unless asked. 0 keeps glibc's defaults.
    worker_malloc_huge_pages: bool = True
    # Task events (Ray's names and defaults): every core worker buffers its tasks' state changes and sends
    # them to the GCS (through its raylet) every `task_events_report_interval_ms` (0: not at all), keeping at
    # most `task_events_max_num_status_events_buffer_on_worker` between reports (the rest are counted as
    # dropped). The GCS keeps the newest `task_events_max_num_task_in_gcs` task attempts.
    # `enable_task_events` (RAY_enable_task_events=0) turns them off altogether: nothing is recorded on the hot
    # path, the state API's task list and `ray_tasks` stay empty (Ray's switch and default).
    enable_task_events: bool = True
    task_events_report_interval_ms: int = 1000
    task_events_max_num_status_events_buffer_on_worker: int = 100 * 1000
    task_events_max_num_task_in_gcs: int = 100000
    # How many ended actors, nodes and workers the GCS remembers (oldest forgotten first; Ray's names).
    maximum_gcs_destroyed_actor_cached_count: int = 100000
    maximum_gcs_dead_node_cached_count: int = 1000
    maximum_gcs_dead_worker_cached_count: int = 1000

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RayConfig:
        """Build a config where each field may be overridden by `RAY_<field name>`."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"RAY_{f.name}")
            if raw is None:
                continue
            values[f.name] = _parse(f.name, raw, type(getattr(cls, f.name)))
        return cls(**values)


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            return raw.strip().lower() in _TRUE
        return kind(raw)
    except ValueError as e:
        raise ValueError(
            f"Environment variable RAY_{name}={raw!r} is not a valid {kind.__name__}; "
            f"unset it or give a {kind.__name__} value."
        ) from e


def system_config_to_env(system_config: dict[str, Any] | None) -> dict[str, str]:
    """Turn `ray.init(_system_config=...)` into `RAY_<name>` variables, rejecting unknown names."""
    known = {f.name for f in fields(RayConfig)}
    env: dict[str, str] = {}
    for key, value in (system_config or {}).items():
        if key not in known:
            raise ValueError(f"Unknown _system_config entry {key!r}; known entries: {sorted(known)}")
        env[f"RAY_{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


_config: RayConfig | None = None


def config() -> RayConfig:
    """The process-wide config, read from the environment on first use."""
    global _config
    if _config is None:
        _config = RayConfig.from_env()
    return _config
