"""The autoscaler's loop: one `update()` per `AUTOSCALER_UPDATE_INTERVAL_S`.

Each round reads the config (a file, or KubeRay's RayCluster), the GCS's cluster resource state and the
provider's instances; matches Ray nodes to instances (by the instance id a node registered with, or its IP);
runs the bin-packing scheduler (`scheduler.py`); launches through the provider, within `upscaling_speed` and
`AUTOSCALER_MAX_CONCURRENT_LAUNCHES`; and scales down:

- a node idle longer than the idle timeout is drained through the GCS with Ray's IDLE_TERMINATION reason,
  which its raylet refuses if anything arrived since; only an accepted drain leads to its termination, and a
  draining node takes no new work, so no accepted task is lost;
- a node over `max_workers` is drained with PREEMPTION (it takes no new work at once) and terminated once it
  is idle, i.e. its running tasks and actors have finished and it holds no objects;
- an instance whose Ray never registered (after `AUTOSCALER_NODE_START_WAIT_S`) is terminated and reported.

A launch that fails (the provider raised, the instance never appeared, its start-up died) is reported in
`ray status` (Recent failures; the reason with -v), in `monitor.log` and in the autoscaler error that
`ray status` prints, and that node type is not launched again for a back-off that doubles per consecutive
failure (`AUTOSCALER_LAUNCH_BACKOFF_S` up to `AUTOSCALER_LAUNCH_BACKOFF_MAX_S`). A config that cannot be used
is reported the same way and read again each round; the cluster keeps running as it is meanwhile. Demand that
no node type can hold is reported as infeasible and never launched for.

Every round ends with `ReportAutoscalingState` (what `ray status` shows as pending and failed) and the metrics.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray._common import placement_groups as pgs
from ray._common.cluster_status import DEBUG_AUTOSCALING_ERROR
from ray.autoscaler._private import constants, scheduler
from ray.autoscaler._private.config import AutoscalingConfig, ConfigError, parse
from ray.autoscaler._private.metrics import AutoscalerMetrics
from ray.autoscaler._private.providers import CloudInstance, LaunchError, NodeProvider
from ray.protocol import autoscaler_pb2 as apb

logger = logging.getLogger(__name__)
LEARNED_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


@dataclass
class _Failure:
    node_type: str
    reason: str
    start_ts: float
    failed_ts: float


@dataclass
class _Drain:
    node_id: bytes
    node_type: str
    cause: str
    deadline: float


@dataclass
class _Backoff:
    failures: int = 0
    until: float = 0.0
    last_failure: float = 0.0


@dataclass
class RoundSummary:
    """What one round decided (tests and the bench read it)."""

    launched: dict[str, int] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)
    infeasible: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    schedule_s: float = 0.0


def _request_from_proto(req: apb.ResourceRequest, count: int = 1) -> scheduler.Request:
    anti = affinity = ""
    for c in req.placement_constraints:
        if c.HasField("anti_affinity"):
            anti = c.anti_affinity.label_name + "=" + c.anti_affinity.label_value
        if c.HasField("affinity"):
            affinity = c.affinity.label_name + "=" + c.affinity.label_value
    return scheduler.Request({k: v for k, v in req.resources_bundle.items() if v > 0}, count, anti, affinity)


def _fmt_shapes(requests: list[scheduler.Request], limit: int = 20) -> str:
    text = ", ".join(f"{r.shape}" + (f"*{r.count}" if r.count > 1 else "") for r in requests[:limit])
    return text + (f" (and {len(requests) - limit} more shapes)" if len(requests) > limit else "")


class Autoscaler:
    def __init__(self, gcs, config_reader: Callable[[], dict[str, Any]],
                 provider_factory: Callable[[AutoscalingConfig], NodeProvider],
                 metrics: AutoscalerMetrics | None = None, clock: Callable[[], float] = time.time) -> None:
        self.gcs = gcs
        self._read_config = config_reader
        self._provider_factory = provider_factory
        self.provider: NodeProvider | None = None
        self.config: AutoscalingConfig | None = None
        self.metrics = metrics
        self._now = clock
        self._version = 0
        self._requested: dict[str, list[float]] = defaultdict(list)  # node type -> when each launch was asked
        self._seen: dict[str, float] = {}  # instance id -> when it first showed up
        self._draining: dict[str, _Drain] = {}  # instance id -> its drain, until it is terminated
        self._failures: list[_Failure] = []
        self._backoff: dict[str, _Backoff] = defaultdict(_Backoff)
        self._errors: dict[str, str] = {}  # kind -> message: what `ray status` prints after the status
        self._last_error_text: bytes | None = None
        self._last_infeasible = ""
        self._known_types: set[str] = set()
        self._known_resources: set[str] = set()
        self._learned: dict[str, dict[str, float]] = {}  # node type -> resources seen on its nodes
        self._learned_from_worker: set[str] = set()
        self.last = RoundSummary()

    # ------------------------------------------------------------------ one round
    def update(self) -> RoundSummary:
        started = time.monotonic()
        summary = RoundSummary()
        self.last = summary
        try:
            self._update(summary)
        finally:
            self._publish_errors()
            if self.metrics is not None:
                self.metrics.update_time.labels(SessionName=self.metrics.session).observe(time.monotonic() - started)
        return summary

    def _update(self, summary: RoundSummary) -> None:
        now = self._now()
        if not self._load_config(summary):
            return
        config, provider = self.config, self.provider
        state = self.gcs.get_cluster_resource_state()
        provider.observe_ray_nodes([(n.node_ip_address, n.ray_node_type_name) for n in state.node_states
                                    if n.status != apb.DEAD and not n.is_head_node])
        instances = provider.non_terminated()
        for error in provider.poll_errors():
            # A launch that failed before its instance was ever seen is no longer on its way.
            unseen = error.count - sum(1 for i in error.instance_ids if i in self._seen)
            stamps = self._requested.get(error.node_type, [])
            start = stamps[0] if stamps else now
            del stamps[:max(0, unseen)]
            self._launch_failed(error.node_type, error.count, error.reason, start, now)
        self._track_new_instances(instances, now)
        known = provider.pending_launches()
        if known is not None:  # the provider knows its launches in flight: its count wins over ours
            for node_type in set(known) | set(self._requested):
                stamps, k = self._requested[node_type], known.get(node_type, 0)
                if len(stamps) > k:
                    del stamps[:len(stamps) - k]
                elif len(stamps) < k:
                    stamps.extend([now] * (k - len(stamps)))
        self._expire_requests(now, provider)

        alive = [n for n in state.node_states if n.status != apb.DEAD]
        by_instance = {n.instance_id: n for n in alive if n.instance_id}
        by_ip = {n.node_ip_address: n for n in alive} if provider.match_by_ip else {}

        def ray_node(inst: CloudInstance):
            return by_instance.get(inst.instance_id) or (by_ip.get(inst.ip) if inst.ip else None)

        self._finish_drains(instances, ray_node, now, summary)
        self._learn_resources(config, instances, ray_node)

        nodes: list[scheduler.Node] = []
        matched: set[bytes] = set()
        pending: list[tuple[CloudInstance, str]] = []  # instances up, Ray not yet
        for inst in instances.values():
            if inst.instance_id in self._draining or inst.instance_id in summary.terminated:
                continue
            node = ray_node(inst)
            if node is not None:
                matched.add(node.node_id)
                if node.status == apb.DRAINING:
                    # Someone drains it (`ray stop` in a pod being deleted; this autoscaler before a restart): it
                    # takes no new work, so it goes once its work is done.
                    if not inst.is_head and node.idle_duration_ms > 0:
                        logger.info("Removing 1 node of type %s: it is drained and idle.", inst.node_type)
                        self._terminate(provider, [inst.instance_id], inst.node_type, summary)
                    continue
                backoff = self._backoff.get(inst.node_type)
                if not inst.is_head and backoff and self._seen.get(inst.instance_id, 0) >= backoff.last_failure:
                    # A node of this type launched since its last failure runs Ray: its launches work again.
                    self._backoff.pop(inst.node_type, None)
                    self._errors.pop(f"launch:{inst.node_type}", None)
                nodes.append(scheduler.Node(
                    inst.node_type, dict(node.total_resources), dict(node.available_resources),
                    is_head=inst.is_head, managed=not inst.is_head, instance_id=inst.instance_id,
                    node_id=node.node_id.hex(), idle_ms=node.idle_duration_ms))
                continue
            if inst.is_head:
                continue
            if inst.failed:
                self._launch_failed(inst.node_type, 1, inst.failed + "; it is terminated.",
                                    self._seen.get(inst.instance_id, now), now)
                self._terminate(provider, [inst.instance_id], inst.node_type, summary)
                continue
            waited = now - self._seen.get(inst.instance_id, now)
            if waited > constants.AUTOSCALER_NODE_START_WAIT_S:
                self._launch_failed(inst.node_type, 1, f"Ray did not start on instance {inst.instance_id} within "
                                    f"{constants.AUTOSCALER_NODE_START_WAIT_S:g} s"
                                    + (f" ({inst.details})" if inst.details else "") + "; it is terminated.",
                                    self._seen.get(inst.instance_id, now), now)
                self._terminate(provider, [inst.instance_id], inst.node_type, summary)
                continue
            type_config = config.node_types.get(inst.node_type)
            pending.append((inst, inst.details or "starting ray"))
            capacity = dict(type_config.resources) if type_config and not inst.stuck else {}
            nodes.append(scheduler.Node(inst.node_type, capacity, instance_id=inst.instance_id))
        for node_type, stamps in self._requested.items():
            type_config = config.node_types.get(node_type)
            for _ in stamps:  # launched, not visible yet: capacity on its way
                nodes.append(scheduler.Node(node_type, dict(type_config.resources) if type_config else {}))
        for n in alive:  # Ray nodes no instance accounts for (the head, nodes started by hand): never removed
            if n.node_id not in matched and n.status != apb.DRAINING:
                nodes.append(scheduler.Node(n.ray_node_type_name or f"node_{n.node_id.hex()}",
                                            dict(n.total_resources), dict(n.available_resources),
                                            is_head=n.is_head_node, managed=False, node_id=n.node_id.hex(),
                                            idle_ms=n.idle_duration_ms))

        demands = [_request_from_proto(r.request, r.count) for r in state.pending_resource_requests
                   if not any(pgs.is_group_resource(k) for k in r.request.resources_bundle)]
        # What no node type (nor node) can ever hold is infeasible, reported and never planned for. Of the rest,
        # a round plans for the AUTOSCALER_MAX_RESOURCE_DEMAND_VECTOR_SIZE most wanted shapes (Ray clips its
        # demand vector to that size too): the others are planned once these are on their way.
        totals = [dict(k) for k in {tuple(sorted(t.items())) for t in
                                    [t.resources for t in config.node_types.values()] + [n.total for n in nodes]}]
        never, planned = [], []
        for d in demands:
            fits = any(all(t.get(k, 0.0) + 1e-9 >= v for k, v in d.shape.items()) for t in totals)
            (planned if fits else never).append(d)
        planned.sort(key=lambda d: d.count, reverse=True)
        planned = planned[:constants.AUTOSCALER_MAX_RESOURCE_DEMAND_VECTOR_SIZE]
        gangs = [scheduler.Gang([_request_from_proto(r) for r in g.requests], g.details)
                 for g in state.pending_gang_resource_requests]
        constraint = [_request_from_proto(r.request, r.count) for c in state.cluster_resource_constraints
                      for r in c.resource_requests]
        backing_off = {t for t, b in self._backoff.items() if b.until > now}
        if not provider.launches:
            backing_off |= set(config.node_types)
        t0 = time.perf_counter()
        in_flight = len(pending) + sum(len(s) for s in self._requested.values())
        result = scheduler.schedule(config.node_types, nodes, config.max_workers, planned, gangs, constraint,
                                    config.idle_timeout_s, backing_off,
                                    bool(constants.AUTOSCALER_CONSERVE_GPU_NODES),
                                    max(0, constants.AUTOSCALER_MAX_CONCURRENT_LAUNCHES - in_flight))
        summary.schedule_s = time.perf_counter() - t0

        result.infeasible = never + result.infeasible
        self._report_infeasible(result, summary)
        self._launch(result, nodes, pending, provider, now, summary)
        for node in result.to_terminate:
            self._scale_down(node, provider, now, summary)
        self._flush_terminations(provider, summary)
        self._report_state(state, instances, pending, now)
        self._update_metrics(state, instances, pending, demands)

    def _learn_resources(self, config: AutoscalingConfig, instances: dict[str, CloudInstance], ray_node) -> None:
        """Ray's `_update_node_resources_from_runtime`: a node type configured without resources (the local
        provider's: Ray detects them on each node) takes CPU, GPU, memory and object_store_memory from a node of
        that type that runs Ray (a worker's for good; the head's until a worker of the type is seen)."""
        unsized = {name for name, t in config.node_types.items() if not t.resources}
        for inst in instances.values():
            if inst.node_type not in unsized or inst.node_type in self._learned_from_worker:
                continue
            node = ray_node(inst)
            if node is None:
                continue
            learned = {k: v for k, v in node.total_resources.items() if k in LEARNED_RESOURCES}
            if learned:
                self._learned[inst.node_type] = learned
                if not inst.is_head:
                    self._learned_from_worker.add(inst.node_type)
        for name in unsized:
            if name in self._learned:
                config.node_types[name].resources = dict(self._learned[name])

    # ------------------------------------------------------------------ config and provider
    def _load_config(self, summary: RoundSummary) -> bool:
        try:
            raw = self._read_config()
        except Exception as e:  # noqa: BLE001 - a file or a RayCluster that cannot be read now: reported, retried
            self._set_error("config", f"Cannot read the autoscaling config: {e} The autoscaler keeps the cluster as "
                            "it is and tries again every round.")
            summary.errors.append(str(e))
            return False
        try:
            config = parse(raw)
        except (ConfigError, ValueError) as e:
            self._set_error("config", f"The autoscaling config is invalid: {e} The autoscaler keeps the cluster as "
                            "it is and reads the config again every round.")
            summary.errors.append(str(e))
            return False
        self._errors.pop("config", None)
        if self.config is None or config.provider != self.config.provider:
            if self.provider is not None:
                self.provider.close()
            try:
                self.provider = self._provider_factory(config)
            except (ValueError, KeyError) as e:
                self.provider = None
                self._set_error("config", f"The autoscaling config's provider cannot be used: {e} The autoscaler "
                                "keeps the cluster as it is and reads the config again every round.")
                summary.errors.append(str(e))
                return False
        self.provider.set_config(config)
        self.config = config
        return True

    def _set_error(self, kind: str, message: str) -> None:
        if self._errors.get(kind) != message:
            logger.error("%s", message)
        self._errors[kind] = message

    def _publish_errors(self) -> None:
        text = "\n".join(self._errors[k] for k in sorted(self._errors)).encode()
        if text == self._last_error_text:
            return
        try:
            if text:
                self.gcs.internal_kv_put(DEBUG_AUTOSCALING_ERROR, text, True)
            else:
                self.gcs.internal_kv_del(DEBUG_AUTOSCALING_ERROR)
            self._last_error_text = text
        except (ConnectionError, ValueError) as e:
            logger.warning("Could not write the autoscaler's error to the GCS: %s", e)

    # ------------------------------------------------------------------ launches
    def _track_new_instances(self, instances: dict[str, CloudInstance], now: float) -> None:
        for inst in instances.values():
            if inst.instance_id in self._seen:
                continue
            stamps = self._requested.get(inst.node_type)
            # The oldest launch of its type has shown up: the instance's start counts from that request.
            self._seen[inst.instance_id] = stamps.pop(0) if stamps and not inst.is_head else now
        for gone in set(self._seen) - set(instances):
            del self._seen[gone]

    def _expire_requests(self, now: float, provider: NodeProvider) -> None:
        timeout = constants.AUTOSCALER_REQUESTED_INSTANCE_TIMEOUT_S
        for node_type, stamps in self._requested.items():
            stale = [t for t in stamps if now - t > timeout]
            if not stale:
                continue
            stamps[:] = [t for t in stamps if now - t <= timeout]
            provider.cancel_launches(node_type, len(stale))
            self._launch_failed(node_type, len(stale), f"No instance appeared within {timeout:g} s of the launch "
                                "request; it was taken back.", min(stale), now)

    def _launch_failed(self, node_type: str, count: int, reason: str, start_ts: float, now: float) -> None:
        backoff = self._backoff[node_type]
        backoff.failures += 1
        delay = min(constants.AUTOSCALER_LAUNCH_BACKOFF_S * 2 ** (backoff.failures - 1),
                    constants.AUTOSCALER_LAUNCH_BACKOFF_MAX_S)
        backoff.until = now + delay
        backoff.last_failure = now
        for _ in range(count):
            self._failures.append(_Failure(node_type, reason, start_ts, now))
        self._failures = self._failures[-constants.AUTOSCALER_MAX_FAILURES_DISPLAYED:]
        message = (f"Failed to launch {count} node(s) of type {node_type}: {reason} Retrying in {delay:g} s "
                   f"(attempt {backoff.failures}).")
        self._set_error(f"launch:{node_type}", message)
        if self.metrics is not None:
            self.metrics.failed_create_nodes.labels(SessionName=self.metrics.session).inc(count)

    def _launch(self, result: scheduler.Result, nodes: list[scheduler.Node], pending, provider: NodeProvider,
                now: float, summary: RoundSummary) -> None:
        """Ray's limit on launches for demand: a node type has at most max(5, upscaling_speed x its running
        nodes) launches in flight; launches for min_workers, request_resources() and placement groups are not
        limited by it. All launches together: at most AUTOSCALER_MAX_CONCURRENT_LAUNCHES in flight."""
        running_by_type: dict[str, int] = defaultdict(int)
        for n in nodes:
            if n.running_ray and n.managed:
                running_by_type[n.node_type] += 1
        pending_by_type: dict[str, int] = defaultdict(int)
        for inst, _ in pending:
            pending_by_type[inst.node_type] += 1
        for node_type, stamps in self._requested.items():
            pending_by_type[node_type] += len(stamps)
        in_flight = sum(pending_by_type.values())
        for node_type, count in sorted(result.to_launch.items()):
            if self._backoff[node_type].until > now:
                continue
            speed_cap = max(constants.UPSCALING_INITIAL_NUM_NODES,
                            int(self.config.upscaling_speed * max(running_by_type[node_type], 1)))
            allowed = max(speed_cap - pending_by_type[node_type], result.to_launch_unlimited.get(node_type, 0))
            count = min(count, allowed, constants.AUTOSCALER_MAX_CONCURRENT_LAUNCHES - in_flight)
            if count <= 0:
                continue
            try:
                provider.launch(node_type, count)
            except LaunchError as e:
                self._launch_failed(node_type, count, e.reason, now, now)
                continue
            except Exception as e:  # noqa: BLE001 - a provider's own error is a failed launch too
                logger.exception("Launching %d node(s) of type %s failed.", count, node_type)
                if self.metrics is not None:
                    self.metrics.node_launch_exceptions.labels(SessionName=self.metrics.session).inc()
                self._launch_failed(node_type, count, f"{type(e).__name__}: {e}", now, now)
                continue
            self._requested[node_type].extend([now] * count)
            in_flight += count
            pending_by_type[node_type] += count
            summary.launched[node_type] = summary.launched.get(node_type, 0) + count
            logger.info("Adding %d node(s) of type %s.", count, node_type)
            if self.metrics is not None:
                self.metrics.started_nodes.labels(SessionName=self.metrics.session).inc(count)

    def _report_infeasible(self, result: scheduler.Result, summary: RoundSummary) -> None:
        never = [r for r in result.infeasible]
        never_gangs = result.infeasible_gangs
        summary.infeasible = [r.shape for r in never]
        lines = []
        if never:
            lines.append(f"No available node types can fulfill resource requests {_fmt_shapes(never)}. Add suitable "
                         "node types to this cluster to resolve this issue.")
        for g in never_gangs:
            lines.append(f"No available node types can fulfill placement group requests {_fmt_shapes(g.requests)} "
                         f"({g.details}). Add suitable node types to this cluster to resolve this issue.")
        text = "\n".join(lines)
        if text != self._last_infeasible and text:
            logger.warning("%s", text)
        self._last_infeasible = text
        if text:
            self._errors["infeasible"] = "Warning: " + text.replace("\n", "\nWarning: ")
        else:
            self._errors.pop("infeasible", None)

    # ------------------------------------------------------------------ scale down
    def _terminate(self, provider: NodeProvider, ids: list[str], node_type: str, summary: RoundSummary) -> None:
        """Queued: one provider call at the end of the round terminates them all (for KubeRay, one patch of
        `replicas` and `workersToDelete`)."""
        for i in ids:
            if i not in summary.terminated:
                summary.terminated.append(i)

    def _flush_terminations(self, provider: NodeProvider, summary: RoundSummary) -> None:
        ids = list(summary.terminated)
        if not ids:
            return
        try:
            provider.terminate(ids)
        except Exception as e:  # noqa: BLE001 - drained nodes are tried again next round (_finish_drains)
            logger.warning("Terminating %s failed: %s; trying again next round.", ids, e)
            summary.terminated.clear()
            return
        for i in ids:
            self._draining.pop(i, None)
            self._seen.pop(i, None)
        if self.metrics is not None:
            self.metrics.stopped_nodes.labels(SessionName=self.metrics.session).inc(len(ids))

    def _scale_down(self, node: scheduler.Node, provider: NodeProvider, now: float, summary: RoundSummary) -> None:
        """Drain, then terminate. An idle node is drained with IDLE_TERMINATION, which its raylet refuses if work
        arrived since; other causes (over max_workers) drain with PREEMPTION and the node goes once idle."""
        cause, details = node.termination
        if not node.instance_id:  # a launch not visible yet: nothing to terminate (over max: it will be later)
            return
        if not node.running_ray:
            logger.info("Removing 1 node of type %s (%s: %s).", node.node_type, cause, details)
            self._terminate(provider, [node.instance_id], node.node_type, summary)
            return
        node_id = bytes.fromhex(node.node_id)
        idle = cause == scheduler.IDLE
        reason = apb.DRAIN_NODE_REASON_IDLE_TERMINATION if idle else apb.DRAIN_NODE_REASON_PREEMPTION
        deadline = 0 if idle else int((now + constants.AUTOSCALER_NODE_START_WAIT_S) * 1000)
        try:
            reply = self.gcs.drain_node(node_id, reason, f"Terminated by the autoscaler: {details}", deadline,
                                        timeout_s=30)
        except ConnectionError as e:
            logger.warning("Draining node %s failed: %s", node.node_id, e)
            return
        if not reply.is_accepted:
            logger.info("Node %s of type %s is busy again; it stays (%s).", node.node_id, node.node_type,
                        reply.rejection_reason_message)
            return
        # From here the node takes no new work; it is terminated now (idle) or once idle (_finish_drains), and
        # again next round if the provider failed to.
        self._draining[node.instance_id] = _Drain(node_id, node.node_type, cause,
                                                  now + constants.AUTOSCALER_NODE_START_WAIT_S)
        if idle:
            logger.info("Removing 1 node of type %s (%s).", node.node_type, details)
            self._terminate(provider, [node.instance_id], node.node_type, summary)
        else:
            logger.info("Draining 1 node of type %s before removing it (%s: %s).", node.node_type, cause, details)

    def _finish_drains(self, instances, ray_node, now: float, summary: RoundSummary) -> None:
        """Drained nodes go once they are idle (their work done, their objects freed) or their Ray is gone."""
        for instance_id, drain in list(self._draining.items()):
            inst = instances.get(instance_id)
            if inst is None:
                self._draining.pop(instance_id)
                continue
            node = ray_node(inst)
            if node is None or node.idle_duration_ms > 0 or now > drain.deadline:
                logger.info("Removing 1 node of type %s (%s): it is drained.", drain.node_type, drain.cause)
                self._terminate(self.provider, [instance_id], drain.node_type, summary)

    # ------------------------------------------------------------------ reporting
    def _report_state(self, state: apb.ClusterResourceState, instances, pending, now: float) -> None:
        self._version += 1
        horizon = now - constants.AUTOSCALER_FAILURE_DISPLAY_S
        self._failures = [f for f in self._failures if f.failed_ts >= horizon]
        failing = {f.node_type for f in self._failures}
        for key in [k for k in self._errors if k.startswith("launch:") and k[len("launch:"):] not in failing]:
            del self._errors[key]
        report = apb.AutoscalingState(
            last_seen_cluster_resource_state_version=state.cluster_resource_state_version,
            autoscaler_state_version=self._version)
        for node_type, stamps in self._requested.items():
            for t in stamps:  # one per instance: `ray status` counts the entries
                report.pending_instance_requests.append(apb.PendingInstanceRequest(
                    instance_type_name=node_type, ray_node_type_name=node_type, count=1, request_ts=int(t)))
        for inst, details in pending:
            report.pending_instances.append(apb.PendingInstance(
                instance_type_name=inst.node_type, ray_node_type_name=inst.node_type, instance_id=inst.instance_id,
                ip_address=inst.ip, details=details))
        for f in self._failures:
            report.failed_instance_requests.append(apb.FailedInstanceRequest(
                instance_type_name=f.node_type, ray_node_type_name=f.node_type, count=1, reason=f.reason,
                start_ts=int(f.start_ts), failed_ts=int(f.failed_ts)))
        for shape in self.last.infeasible:
            report.infeasible_resource_requests.append(apb.ResourceRequest(resources_bundle=shape))
        try:
            self.gcs.report_autoscaling_state(report, timeout_s=10)
        except ConnectionError as e:
            logger.warning("Could not report the autoscaler's state to the GCS: %s", e)

    def _update_metrics(self, state, instances, pending, demands) -> None:
        m = self.metrics
        if m is None:
            return
        active: dict[str, int] = defaultdict(int)
        for n in state.node_states:
            if n.status != apb.DEAD:
                active[n.ray_node_type_name or "unknown"] += 1
        pending_by_type: dict[str, int] = defaultdict(int)
        for inst, _ in pending:
            pending_by_type[inst.node_type] += 1
        for node_type, stamps in self._requested.items():
            pending_by_type[node_type] += len(stamps)
        failed: dict[str, int] = defaultdict(int)
        for f in self._failures:
            failed[f.node_type] += 1
        self._known_types |= set(active) | set(pending_by_type) | set(failed)
        m.set_by_type(m.active_nodes, active, self._known_types)
        m.set_by_type(m.pending_nodes, pending_by_type, self._known_types)
        m.set_by_type(m.recently_failed_nodes, failed, self._known_types)
        m.running_workers.labels(SessionName=m.session).set(
            sum(1 for i in instances.values() if not i.is_head) - len(pending))
        totals: dict[str, float] = defaultdict(float)
        for n in state.node_states:
            if n.status != apb.DEAD:
                for k, v in n.total_resources.items():
                    if not k.startswith("node:") and not pgs.is_group_resource(k):
                        totals[k] += v
        wanted: dict[str, float] = defaultdict(float)
        for r in demands:
            for k, v in r.shape.items():
                wanted[k] += v * r.count
        self._known_resources |= set(totals) | set(wanted)
        m.set_resources(m.cluster_resources, totals, self._known_resources)
        m.set_resources(m.pending_resources, wanted, self._known_resources)

    def close(self) -> None:
        if self.provider is not None:
            self.provider.close()
