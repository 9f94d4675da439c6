"""`ray status` text, as Ray 2.60 prints it with its autoscaler v2 (`ClusterStatusFormatter` in
python/ray/autoscaler/v2/utils.py), built from the GCS's `GetClusterStatusReply` (autoscaler.proto).

Shared by the `ray status` command and the dashboard's `/api/cluster_status`. Pure: no I/O.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from ray.protocol import autoscaler_pb2 as apb

# GCS KV keys (default namespace) Ray's autoscaler writes: its errors, appended to `ray status`, and its status.
DEBUG_AUTOSCALING_ERROR = b"__autoscaling_error"
DEBUG_AUTOSCALING_STATUS = b"__autoscaling_status"
AUTOSCALER_MAX_FAILURES_DISPLAYED = 20
NODE_DEATH_CAUSE_RAYLET_DIED = "NodeTerminated"
NO_STATUS = "No cluster status. It may take a few seconds for the Ray internal services to start up."

# Ray's placement group resource names: `<name>_group_<index>_<pg hex>` and `<name>_group_<pg hex>`.
_INDEXED = re.compile(r"^(.+)_group_(\d+)_([0-9a-zA-Z]+)$")
_WILDCARD = re.compile(r"^(.+)_group_([0-9a-zA-Z]+)$")
_MEMORY_SUFFIXES = [("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)]
_BUNDLE = "bundle"


def format_memory(mem_bytes: float) -> str:
    for suffix, unit in _MEMORY_SUFFIXES:
        if mem_bytes >= unit:
            return f"{mem_bytes / unit:.2f}{suffix}"
    return f"{int(mem_bytes)}B"


def parse_pg_resource(name: str) -> tuple[str, str | None, bool]:
    """(resource, placement group or None, counts): indexed bundle resources repeat the wildcard ones."""
    m = _INDEXED.match(name)
    if m:
        return m.group(1), m.group(3), False
    m = _WILDCARD.match(name)
    if m:
        return m.group(1), m.group(2), True
    return name, None, True


def parse_usage(usage: dict[str, tuple[float, float]], verbose: bool) -> list[str]:
    """One line per resource (`used/total name`), placement-group reservations shown beside what they hold."""
    pg_used: dict[str, float] = {}
    pg_total: dict[str, float] = defaultdict(float)
    for resource, (used, total) in usage.items():
        name, pg, countable = parse_pg_resource(resource)
        if pg:
            pg_used.setdefault(name, 0)
            if countable:
                pg_used[name] += used
                pg_total[name] += total
    lines = []
    for resource, (used, total) in sorted(usage.items()):
        if "node:" in resource:
            continue
        if parse_pg_resource(resource)[1]:
            continue
        in_pg = resource in pg_used
        if in_pg:
            used = used - pg_total[resource] + pg_used[resource]
        if resource in ("memory", "object_store_memory"):
            line = f"{format_memory(used)}/{format_memory(total)} {resource}"
            if in_pg:
                line += (f" ({format_memory(pg_used[resource])} used of {format_memory(pg_total[resource])} "
                         "reserved in placement groups)")
            lines.append(line)
        elif resource.startswith("accelerator_type:") and not verbose:
            pass
        else:
            line = f"{used}/{total} {resource}"
            if in_pg:
                line += f" ({pg_used[resource]} used of {pg_total[resource]} reserved in placement groups)"
            lines.append(line)
    return lines


def format_resource_demand_summary(demand: Iterable[tuple[dict[str, float], int]]) -> list[str]:
    bundles: Counter = Counter()
    in_pgs: Counter = Counter()
    for bundle, count in demand:
        filtered: dict[str, float] = {}
        uses_pg = False
        for resource, amount in bundle.items():
            name, pg, _ = parse_pg_resource(resource)
            filtered[name] = amount
            uses_pg = uses_pg or pg is not None
        if uses_pg:
            filtered.pop(_BUNDLE, None)
        if not filtered:
            continue
        key = tuple(sorted(filtered.items()))
        bundles[key] += count
        if uses_pg:
            in_pgs[key] += count
    lines = []
    for key, count in bundles.items():
        line = f" {dict(key)}: {count}+ pending tasks/actors"
        if key in in_pgs:
            line += f" ({in_pgs[key]}+ using placement groups)"
        lines.append(line)
    return lines


def _type_name(node: apb.NodeState) -> str:
    return node.ray_node_type_name or f"node_{node.node_id.hex()}"


def _node_usage(node: apb.NodeState) -> dict[str, list[float]]:
    d: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for name, total in node.total_resources.items():
        d[name][1] += total
        d[name][0] += total
    for name, available in node.available_resources.items():
        d[name][0] -= available
    return d


def _count_by_type(nodes: list[apb.NodeState]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for node in nodes:
        counts[_type_name(node)] += 1
    return counts


def _pg_details(details: str) -> tuple[str | None, str | None]:
    """`<pg id>:<strategy>|<state>` -> (strategy, state)."""
    if not re.match(r"^.*:.*\|.*$", details):
        return None, None
    _, rest = details.split(":")
    strategy, state = rest.split("|")
    return strategy, state


def format_cluster_status(reply: apb.GetClusterStatusReply, verbose: bool = False,
                          request_ts_s: float | None = None, gcs_request_time_s: float | None = None) -> str:
    """Ray 2.60's `ray status` text for one `GetClusterStatusReply` (read at `request_ts_s`)."""
    state = reply.cluster_resource_state
    scaling = reply.autoscaling_state
    active, idle, dead = [], [], []
    for node in state.node_states:
        if node.status == apb.DEAD:
            dead.append(node)
        elif node.status == apb.IDLE:
            idle.append(node)
        else:
            active.append(node)

    when = datetime.datetime.fromtimestamp(request_ts_s) if request_ts_s else datetime.datetime.now()
    header = "=" * 8 + f" Autoscaler status: {when} " + "=" * 8
    separator = "-" * len(header)
    if verbose and gcs_request_time_s:
        header += "\n" + f"GCS request time: {gcs_request_time_s:3f}s" + "\n"

    active_counts = _count_by_type(active)
    idle_counts = _count_by_type(idle)
    active_report = "\n".join(f" {n} {t}" for t, n in active_counts.items()) or " (no active nodes)"
    idle_report = "\n".join(f" {n} {t}" for t, n in idle_counts.items()) or " (no idle nodes)"

    pending_lines = []
    launching: dict[str, int] = defaultdict(int)
    for req in scaling.pending_instance_requests:
        launching[req.ray_node_type_name] += 1
    pending_lines += [f" {t}, {n} launching" for t, n in launching.items()]
    pending_lines += [f" {p.instance_id}: {p.ray_node_type_name}, {p.details.lower()}"
                      for p in scaling.pending_instances]
    pending_report = "\n".join(pending_lines) or " (no pending nodes)"

    failures = []
    for failed in sorted(scaling.failed_instance_requests, key=lambda f: f.start_ts, reverse=True):
        t = datetime.datetime.fromtimestamp(failed.start_ts)
        line = (f" {failed.ray_node_type_name}: LaunchFailed "
                f"(latest_attempt: {t.hour:02d}:{t.minute:02d}:{t.second:02d})")
        if verbose:
            line += f" - {failed.reason}"
        failures.append(line)
    failures += [f" {_type_name(n)}: {NODE_DEATH_CAUSE_RAYLET_DIED} (instance_id: {n.instance_id})" for n in dead]
    failures = failures[:AUTOSCALER_MAX_FAILURES_DISPLAYED]
    failure_report = "Recent failures:\n" + ("\n".join(failures) if failures else " (no failures)")

    usage: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for node in active + idle:
        for name, (used, total) in _node_usage(node).items():
            usage[name][0] += used
            usage[name][1] += total
    usage_report = "\n".join([f" {line}" for line in parse_usage({k: (u, t) for k, (u, t) in usage.items()}, verbose)]
                             + [""])

    constraint_lines = [f" {dict(r.request.resources_bundle.items())}: {r.count} from request_resources()"
                        for c in state.cluster_resource_constraints for r in c.resource_requests]
    constraint_report = "\n".join(constraint_lines) or " (none)"

    demand_lines = format_resource_demand_summary(
        (dict(r.request.resources_bundle), r.count) for r in state.pending_resource_requests)
    pg_keys: Counter = Counter()
    pg_bundles: dict[str, tuple[str, list[tuple[dict, int]]]] = {}
    for gang in state.pending_gang_resource_requests:
        strategy, pg_state = _pg_details(gang.details)
        key = f"{strategy}|{pg_state}"
        pg_keys[key] += 1
        shapes: Counter = Counter(tuple(sorted(r.resources_bundle.items())) for r in gang.requests)
        pg_bundles[key] = (strategy, [(dict(shape), n) for shape, n in shapes.items()])
    for key, count in pg_keys.items():
        strategy, bundles = pg_bundles[key]
        shapes = ", ".join(f"{bundle} * {n}" for bundle, n in bundles)
        demand_lines.append(f" {shapes} ({strategy}): {count}+ pending placement groups")
    demand_report = "\n".join(demand_lines) or " (no resource demands)"

    node_report = _node_usage_report(active + idle) if verbose else ""
    lines = [header, "Node status", separator, "Active:", active_report, "Idle:", idle_report, "Pending:",
             pending_report, failure_report, "", "Resources", separator, "Total Usage:", usage_report,
             "From request_resources:", constraint_report, "Pending Demands:", demand_report, node_report]
    return "\n".join(lines).strip()


def status_text(gcs, verbose: bool = False) -> str:
    """What `ray status` prints, read from the GCS through a `GcsClient`: the status, then the autoscaler's
    error if it reported one (Ray's debug_status)."""
    import time

    started = time.time()
    reply = gcs.get_cluster_status()
    text = format_cluster_status(reply, verbose, started, time.time() - started)
    error = gcs.internal_kv_get(DEBUG_AUTOSCALING_ERROR)
    if error:
        text += "\n" + error.decode("utf-8", "replace")
    return text


def _node_usage_report(nodes: list[apb.NodeState]) -> str:
    lines = []
    for node in nodes:
        lines.append("")
        lines.append(f"Node: {node.instance_id} ({_type_name(node)})")
        lines.append(f" Id: {node.node_id.hex()}")
        if node.status == apb.IDLE and node.idle_duration_ms > 0:
            lines.append(f" Idle: {node.idle_duration_ms} ms")
        lines.append(" Usage:")
        lines += [f"  {line}" for line in parse_usage({k: (u, t) for k, (u, t) in _node_usage(node).items()}, True)]
        lines.append(" Activity:")
        lines += [f"  {a}" for a in node.node_activity] or ["  (no activity)"]
    return "\n".join(lines)
