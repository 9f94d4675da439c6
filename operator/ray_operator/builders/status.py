"""RayCluster status from what exists: the cluster's pods and its head Service.

Pure and level-based: the same world gives the same status, and timestamps only move when the
thing they stamp changes, so reconciling twice writes nothing the second time.
"""

from __future__ import annotations

import copy
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import replicas, service


def pod_is_running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def pod_is_ready(pod: dict[str, Any]) -> bool:
    return pod_is_running(pod) and _pod_condition(pod, "Ready").get("status") == "True"


def pod_is_terminal(pod: dict[str, Any]) -> bool:
    """Failed / Succeeded pods are replaced by the operator."""
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def node_type(pod: dict[str, Any]) -> str:
    return pod["metadata"].get("labels", {}).get(c.LABEL_NODE_TYPE, "")


def build_cluster_status(
    cluster: dict[str, Any],
    pods: list[dict[str, Any]],
    head_service: dict[str, Any] | None,
    now: str,
    reconcile_error: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The status to write. `reconcile_error` is (reason, message) when creating or deleting pods failed."""
    spec = cluster["spec"]
    old = copy.deepcopy(cluster.get("status") or {})
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    heads = [p for p in live if node_type(p) == c.NODE_TYPE_HEAD]
    workers = [p for p in live if node_type(p) == c.NODE_TYPE_WORKER]
    counts = replicas.worker_counts(spec)
    suspend = bool(spec.get("suspend"))

    status: dict[str, Any] = {**counts, **replicas.desired_resources(spec)}
    status["readyWorkerReplicas"] = sum(1 for p in workers if pod_is_ready(p))
    status["availableWorkerReplicas"] = sum(1 for p in workers if pod_is_running(p))
    status["observedGeneration"] = cluster["metadata"].get("generation", 0)

    head = heads[0] if heads else None
    head_status: dict[str, str] = {}
    if head:
        head_status["podName"] = head["metadata"]["name"]
        if (head.get("status") or {}).get("podIP"):
            head_status["podIP"] = head["status"]["podIP"]
    if head_service:
        head_status["serviceName"] = head_service["metadata"]["name"]
        cluster_ip = (head_service.get("spec") or {}).get("clusterIP")
        # A headless Service has no IP of its own; KubeRay reports the head pod's IP there.
        service_ip = head_status.get("podIP") if cluster_ip in (None, "", "None") else cluster_ip
        if service_ip:
            head_status["serviceIP"] = service_ip
        status["endpoints"] = service.endpoints(head_service)
    if head_status:
        status["head"] = head_status

    all_ready = (
        reconcile_error is None
        and len(heads) == 1
        and len(live) == counts["desiredWorkerReplicas"] + 1
        and all(pod_is_ready(p) for p in live)
    )
    state = old.get("state", "")
    if suspend and not live:
        state = c.STATE_SUSPENDED
    elif all_ready and not suspend:
        state = c.STATE_READY
    elif state == c.STATE_SUSPENDED and not suspend:
        state = ""
    if state:
        status["state"] = state
    old_conditions = {cond["type"]: cond for cond in old.get("conditions") or []}
    conditions = _conditions(old_conditions, head, live, all_ready, suspend, reconcile_error, now)
    status["conditions"] = conditions
    if reconcile_error:
        status["reason"] = reconcile_error[1]

    # Timestamps move only when the rest of the status did.
    comparable_old = {k: v for k, v in old.items() if k not in ("lastUpdateTime", "stateTransitionTimes")}
    transitions = dict(old.get("stateTransitionTimes") or {})
    if state and old.get("state") != state:
        transitions[state] = now
    if transitions:
        status["stateTransitionTimes"] = transitions
    status["lastUpdateTime"] = old.get("lastUpdateTime", now) if comparable_old == _without_times(status) else now
    return status


def _without_times(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k not in ("lastUpdateTime", "stateTransitionTimes")}


def _conditions(
    old: dict[str, dict],
    head: dict | None,
    live: list[dict],
    all_ready: bool,
    suspend: bool,
    reconcile_error: tuple[str, str] | None,
    now: str,
) -> list[dict[str, Any]]:
    result = []

    def put(kind: str, status: bool, reason: str, message: str) -> None:
        previous = old.get(kind) or {}
        text = "True" if status else "False"
        changed = previous.get("status") != text
        result.append(
            {
                "type": kind,
                "status": text,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now),
            }
        )

    if head is None:
        put(c.CONDITION_HEAD_POD_READY, False, "HeadPodNotFound", "the head pod is missing")
    elif pod_is_ready(head):
        put(c.CONDITION_HEAD_POD_READY, True, "HeadPodRunningAndReady", "")
    else:
        ready = _pod_condition(head, "Ready")
        put(
            c.CONDITION_HEAD_POD_READY,
            False,
            ready.get("reason") or "HeadPodNotReady",
            _pod_problem(head) or ready.get("message") or "",
        )

    was_provisioned = (old.get(c.CONDITION_PROVISIONED) or {}).get("status") == "True"
    if suspend:
        put(c.CONDITION_PROVISIONED, False, "RayClusterPodsProvisioning", "the cluster is suspended")
    elif all_ready or was_provisioned:
        put(c.CONDITION_PROVISIONED, True, "AllPodRunningAndReadyFirstTime", "All Ray Pods are ready for the first time")
    else:
        waiting = [p for p in live if not pod_is_ready(p)]
        details = "; ".join(f"{p['metadata'].get('name')}: {_pod_problem(p) or 'not ready'}" for p in waiting[:5])
        put(
            c.CONDITION_PROVISIONED,
            False,
            "RayClusterPodsProvisioning",
            f"{len(waiting)} of {len(live)} pods are not running and ready" + (f" ({details})" if details else ""),
        )

    if reconcile_error:
        put(c.CONDITION_REPLICA_FAILURE, True, reconcile_error[0], reconcile_error[1])
    if suspend:
        put(c.CONDITION_SUSPENDING, bool(live), "RayClusterSuspending", "")
        put(c.CONDITION_SUSPENDED, not live, "RayClusterSuspended", "")
    return result


def _pod_condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return {}


def _pod_problem(pod: dict[str, Any]) -> str:
    """Why a pod is not running, in the scheduler's or kubelet's words (e.g. Insufficient nvidia.com/gpu)."""
    status = pod.get("status") or {}
    scheduled = _pod_condition(pod, "PodScheduled")
    if scheduled.get("status") == "False":
        return f"{status.get('phase', 'Pending')}, {scheduled.get('reason', '')}: {scheduled.get('message', '')}".strip()
    for container in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "PodInitializing", "ContainerCreating"):
            return f"container {container.get('name')}: {waiting.get('reason')} {waiting.get('message', '')}".strip()
    return status.get("phase", "Pending") if status.get("phase") != "Running" else ""
