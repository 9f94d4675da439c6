"""The state API's schemas (Ray 2.60's `ray.util.state.common` names): one row dataclass per resource, the
list and summary envelopes, and the filter rules the dashboard applies and the SDK checks.

Rows travel as JSON objects with these field names (snake_case); a list without `detail` carries only the
base columns (those not marked `detail`). `ray.util.state` re-exports the classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_LIMIT = 100
DEFAULT_RPC_TIMEOUT = 30
RAY_MAX_LIMIT_FROM_API_SERVER = 10000  # env RAY_MAX_LIMIT_FROM_API_SERVER
RAY_MAX_LIMIT_FROM_DATA_SOURCE = 10000  # env RAY_MAX_LIMIT_FROM_DATA_SOURCE
DEFAULT_LOG_LIMIT = 1000
DRIVER_TASK_ID_PREFIX = "ffffffffffffffffffffffffffffffffffffffff"
PREDICATES = ("=", "!=")
RESOURCES = ("actors", "jobs", "placement_groups", "nodes", "workers", "tasks", "objects", "runtime_envs",
             "cluster_events")


def state_column(*, filterable: bool, detail: bool = False, **kwargs: Any) -> Any:
    """A dataclass field with the state API's metadata (Ray's `state_column`)."""
    kwargs.setdefault("default", None)
    return field(metadata={"filterable": filterable, "detail": detail}, **kwargs)


class StateSchema:
    """Base of the row classes: which columns exist, which are filterable, which are detail-only."""

    @classmethod
    def list_columns(cls, detail: bool = True) -> list[str]:
        return [f.name for f in fields(cls) if detail or not f.metadata.get("detail", False)]

    @classmethod
    def columns(cls) -> set[str]:
        return set(cls.list_columns(detail=True))

    @classmethod
    def filterable_columns(cls) -> set[str]:
        return {f.name for f in fields(cls) if f.metadata.get("filterable", False)}

    @classmethod
    def base_columns(cls) -> set[str]:
        return set(cls.list_columns(detail=False))

    @classmethod
    def detail_columns(cls) -> set[str]:
        return set(cls.list_columns(detail=True))

    @classmethod
    def column_types(cls) -> dict[str, str]:
        return {f.name: str(f.type) for f in fields(cls)}

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ActorState(StateSchema):
    actor_id: str = state_column(filterable=True)
    class_name: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    name: str | None = state_column(filterable=True)
    node_id: str | None = state_column(filterable=True)
    pid: int | None = state_column(filterable=True)
    ray_namespace: str | None = state_column(filterable=True)
    serialized_runtime_env: str | None = state_column(filterable=False, detail=True)
    required_resources: dict | None = state_column(filterable=False, detail=True)
    death_cause: dict | None = state_column(filterable=False, detail=True)
    is_detached: bool | None = state_column(filterable=False, detail=True)
    placement_group_id: str | None = state_column(detail=True, filterable=True)
    repr_name: str | None = state_column(detail=True, filterable=True)
    num_restarts: int | None = state_column(filterable=False, detail=True)
    num_restarts_due_to_lineage_reconstruction: int | None = state_column(filterable=False, detail=True)
    num_restarts_due_to_node_preemption: int | None = state_column(filterable=False, detail=True)
    call_site: str | None = state_column(detail=True, filterable=False)
    label_selector: dict | None = state_column(detail=True, filterable=False)
    fallback_strategy: dict | None = state_column(detail=True, filterable=False)


@dataclass
class PlacementGroupState(StateSchema):
    placement_group_id: str = state_column(filterable=True)
    name: str = state_column(filterable=True)
    creator_job_id: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    bundles: list | None = state_column(filterable=False, detail=True)
    is_detached: bool | None = state_column(filterable=True, detail=True)
    stats: dict | None = state_column(filterable=False, detail=True)
    topology_strategy: dict | None = state_column(filterable=False, detail=True)
    topology_assignments: dict | None = state_column(filterable=False, detail=True)


@dataclass
class NodeState(StateSchema):
    node_id: str = state_column(filterable=True)
    node_ip: str = state_column(filterable=True)
    is_head_node: bool = state_column(filterable=True)
    state: str = state_column(filterable=True)
    state_message: str | None = state_column(filterable=False)
    node_name: str = state_column(filterable=True)
    resources_total: dict = state_column(filterable=False)
    labels: dict = state_column(filterable=False)
    start_time_ms: int | None = state_column(filterable=False, detail=True)
    end_time_ms: int | None = state_column(filterable=False, detail=True)


@dataclass
class JobState(StateSchema):
    """A job as `ray list jobs` shows it (Ray's JobDetails fields)."""

    job_id: str | None = state_column(filterable=True)
    submission_id: str | None = state_column(filterable=True)
    entrypoint: str | None = state_column(filterable=True)
    type: str | None = state_column(filterable=True)
    status: str | None = state_column(filterable=True)
    message: str | None = state_column(filterable=True)
    error_type: str | None = state_column(filterable=True)
    driver_info: dict | None = state_column(filterable=False)
    start_time: int | None = state_column(filterable=True)
    end_time: int | None = state_column(filterable=True)
    metadata: dict | None = state_column(filterable=False)
    runtime_env: dict | None = state_column(filterable=False)
    driver_agent_http_address: str | None = state_column(filterable=True)
    driver_node_id: str | None = state_column(filterable=True)
    driver_exit_code: int | None = state_column(filterable=True)


@dataclass
class WorkerState(StateSchema):
    worker_id: str = state_column(filterable=True)
    is_alive: bool = state_column(filterable=True)
    worker_type: str = state_column(filterable=True)
    exit_type: str | None = state_column(filterable=True)
    node_id: str = state_column(filterable=True)
    ip: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    exit_detail: str | None = state_column(detail=True, filterable=False)
    worker_launch_time_ms: int | None = state_column(filterable=False, detail=True)
    worker_launched_time_ms: int | None = state_column(filterable=False, detail=True)
    start_time_ms: int | None = state_column(filterable=False, detail=True)
    end_time_ms: int | None = state_column(filterable=False, detail=True)
    debugger_port: int | None = state_column(filterable=True, detail=True)
    num_paused_threads: int | None = state_column(filterable=True, detail=True)


@dataclass
class TaskState(StateSchema):
    task_id: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    name: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    actor_id: str | None = state_column(filterable=True)
    type: str = state_column(filterable=True)
    func_or_class_name: str = state_column(filterable=True)
    parent_task_id: str = state_column(filterable=True)
    node_id: str | None = state_column(filterable=True)
    worker_id: str | None = state_column(filterable=True)
    worker_pid: int | None = state_column(filterable=True)
    error_type: str | None = state_column(filterable=True)
    language: str | None = state_column(detail=True, filterable=True)
    required_resources: dict | None = state_column(detail=True, filterable=False)
    runtime_env_info: dict | None = state_column(detail=True, filterable=False)
    placement_group_id: str | None = state_column(detail=True, filterable=True)
    events: list | None = state_column(detail=True, filterable=False)
    profiling_data: dict | None = state_column(detail=True, filterable=False)
    creation_time_ms: int | None = state_column(detail=True, filterable=False)
    start_time_ms: int | None = state_column(detail=True, filterable=False)
    end_time_ms: int | None = state_column(detail=True, filterable=False)
    task_log_info: dict | None = state_column(detail=True, filterable=False)
    error_message: str | None = state_column(detail=True, filterable=False)
    is_debugger_paused: bool | None = state_column(detail=True, filterable=True)
    call_site: str | None = state_column(detail=True, filterable=False)
    label_selector: dict | None = state_column(detail=True, filterable=False)
    fallback_strategy: dict | None = state_column(detail=True, filterable=False)


@dataclass
class ObjectState(StateSchema):
    object_id: str = state_column(filterable=True)
    object_size: int = state_column(filterable=True)
    task_status: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    reference_type: str = state_column(filterable=True)
    call_site: str = state_column(filterable=True)
    type: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    ip: str = state_column(filterable=True)


@dataclass
class RuntimeEnvState(StateSchema):
    runtime_env: dict = state_column(filterable=True)
    success: bool = state_column(filterable=True)
    creation_time_ms: float | None = state_column(filterable=False)
    node_id: str = state_column(filterable=True)
    ref_cnt: int | None = state_column(detail=True, filterable=False)
    error: str | None = state_column(detail=True, filterable=True)


@dataclass
class ClusterEventState(StateSchema):
    severity: str = state_column(filterable=True)
    time: str = state_column(filterable=False)
    source_type: str = state_column(filterable=True)
    message: str = state_column(filterable=False)
    event_id: str = state_column(filterable=True)
    custom_fields: dict | None = state_column(filterable=False, detail=True)


SCHEMA_OF: dict[str, type[StateSchema]] = {
    "actors": ActorState, "jobs": JobState, "placement_groups": PlacementGroupState, "nodes": NodeState,
    "workers": WorkerState, "tasks": TaskState, "objects": ObjectState, "runtime_envs": RuntimeEnvState,
    "cluster_events": ClusterEventState,
}


@dataclass
class ListApiResponse:
    total: int
    num_after_truncation: int
    num_filtered: int
    result: list = field(default_factory=list)
    partial_failure_warning: str | None = ""
    warnings: list[str] | None = None


# ---------------------------------------------------------------------------- filters
def _to_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"{value} cannot be converted to bool.")


def check_filters(filters: list[tuple[str, str, Any]], schema: type[StateSchema]) -> None:
    """Raise ValueError (the API answers 400 with its text) for an unknown column or predicate."""
    filterable = schema.filterable_columns()
    for column, predicate, _ in filters:
        if column.lower() not in filterable:
            raise ValueError(
                f"The given filter column {column} is not supported. Enter filters with --filter key=value or "
                f"--filter key!=value. Supported filter columns: {sorted(filterable)}")
        if predicate not in PREDICATES:
            raise ValueError(f"Unsupported filter predicate {predicate} is given. Available predicates: =, !=.")


def _matches(actual: Any, predicate: str, wanted: Any) -> bool:
    if isinstance(wanted, str):
        if isinstance(actual, bool):
            equal = actual == _to_bool(wanted)
        elif isinstance(actual, int):
            try:
                equal = actual == int(wanted)
            except ValueError:
                equal = False
        elif isinstance(actual, float):
            try:
                equal = actual == float(wanted)
            except ValueError:
                equal = False
        elif isinstance(actual, str):
            equal = actual.lower() == wanted.lower()
        else:
            equal = actual == wanted
    else:
        equal = actual == wanted
    return equal if predicate == "=" else not equal


def apply_filters(rows: list[dict], filters: list[tuple[str, str, Any]], schema: type[StateSchema],
                  detail: bool) -> list[dict]:
    """Rows matching every filter (strings compare case-insensitively, as Ray's), cut to the columns asked for."""
    check_filters(filters, schema)
    for column, _, value in filters:
        # A bool column's filter value must read as a bool (Ray's message).
        if isinstance(value, str) and column.lower() in schema.filterable_columns():
            ftype = schema.column_types().get(column.lower(), "")
            if ftype.startswith("bool"):
                try:
                    _to_bool(value)
                except ValueError:
                    raise ValueError(f"Invalid filter `--filter {column} {value}` for a boolean type column. "
                                     f"Please provide `--filter {column} [True|true|1]` for True or "
                                     f"`--filter {column} [False|false|0]` for False.") from None
    columns = schema.list_columns(detail=detail)
    out = []
    for row in rows:
        if all(column.lower() in row and _matches(row[column.lower()], predicate, value)
               for column, predicate, value in filters):
            out.append({c: row.get(c) for c in columns})
    return out
