"""RayCluster reconciler: auth Secret, head Service, head and worker pods, scaling, workersToDelete, suspend,
status."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from ray_operator import constants as c
from ray_operator import events, metrics
from ray_operator.builders import auth, autoscaler, gcs_ft, names, replicas, validation
from ray_operator.builders.pod import build_head_pod, build_worker_pod
from ray_operator.builders.service import build_head_service
from ray_operator.builders.status import build_cluster_status, node_type, pod_is_terminal
from ray_operator.config import OperatorConfig
from ray_operator.handlers import gcs_ft_cleanup
from ray_operator.handlers.common import Result, describe_api_error, write_status
from ray_operator.kube import Kube, now_rfc3339

log = logging.getLogger(__name__)


class _Pass:
    """One reconcile pass: the cluster, its pods, and what went wrong creating or deleting them."""

    def __init__(self, kube: Kube, cfg: OperatorConfig, cluster: dict[str, Any]) -> None:
        self.kube = kube
        self.cfg = cfg
        self.cluster = cluster
        self.namespace = names.cluster_namespace(cluster)
        self.name = names.cluster_name(cluster)
        self.error: tuple[str, str] | None = None
        self.changed = False

    def pods(self) -> list[dict[str, Any]]:
        """The cluster's own pods that are not already on their way out."""
        uid = self.cluster["metadata"]["uid"]
        pods = self.kube.list_pods(self.namespace, f"{c.LABEL_CLUSTER}={self.name}")
        return [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(ref.get("uid") == uid for ref in p["metadata"].get("ownerReferences") or [])
        ]

    def create(self, pod: dict[str, Any], kind: str) -> None:
        try:
            created = self.kube.create_pod(pod)
        except Exception as err:
            reason = events.FAILED_TO_CREATE_HEAD_POD if kind == "head" else events.FAILED_TO_CREATE_WORKER_POD
            message = f"Failed to create {kind} Pod {self.namespace}/{pod['metadata'].get('generateName')}: {describe_api_error(err)}"
            self.error = (reason, message)
            self.kube.event(self.cluster, events.WARNING, reason, message)
            return
        self.changed = True
        reason = events.CREATED_HEAD_POD if kind == "head" else events.CREATED_WORKER_POD
        self.kube.event(
            self.cluster, events.NORMAL, reason, f"Created {kind} Pod {self.namespace}/{created['metadata']['name']}"
        )

    def delete(self, pod: dict[str, Any], why: str) -> None:
        kind = node_type(pod)
        try:
            deleted = self.kube.delete_pod(self.namespace, pod["metadata"]["name"])
        except Exception as err:
            message = f"Failed to delete Pod {self.namespace}/{pod['metadata']['name']}: {describe_api_error(err)}"
            is_worker = kind == c.NODE_TYPE_WORKER
            self.error = (
                c.REPLICA_FAILURE_DELETE_WORKER_POD if is_worker else c.REPLICA_FAILURE_DELETE_HEAD_POD,
                message,
            )
            reason = events.FAILED_TO_DELETE_WORKER_POD if is_worker else events.FAILED_TO_DELETE_HEAD_POD
            self.kube.event(self.cluster, events.WARNING, reason, message)
            return
        if deleted:
            self.changed = True
            reason = events.DELETED_HEAD_POD if kind == c.NODE_TYPE_HEAD else events.DELETED_WORKER_POD
            self.kube.event(self.cluster, events.NORMAL, reason, f"Deleted Pod {self.namespace}/{pod['metadata']['name']}; {why}")


def reconcile_raycluster(kube: Kube, cfg: OperatorConfig, namespace: str, name: str) -> Result:
    cluster = kube.get_custom(c.RAYCLUSTER_PLURAL, namespace, name)
    if cluster is None:
        metrics.forget_cluster(namespace, name)
        return Result()
    if cluster["metadata"].get("deletionTimestamp"):
        metrics.forget_cluster(namespace, name)
        if gcs_ft.FINALIZER in (cluster["metadata"].get("finalizers") or []):
            return gcs_ft_cleanup.reconcile_deleted(kube, cluster, cfg.error_requeue_s)
        return Result()  # owner references let Kubernetes' garbage collector remove pods and services
    managed_by = cluster["spec"].get("managedBy")
    if managed_by and managed_by != c.MANAGED_BY_KUBERAY:
        return Result()  # another controller (e.g. MultiKueue) owns it
    metrics.observe_cluster(cluster)

    errors = validation.raycluster_errors(cluster)
    if errors:
        return _invalid(kube, cluster, "; ".join(errors))

    if gcs_ft_cleanup.ensure_finalizer(kube, cluster, cfg.enable_gcs_ft_redis_cleanup):
        return Result(cfg.error_requeue_s)  # the next pass sees the cluster with it
    work = _Pass(kube, cfg, cluster)
    _ensure_autoscaler_rbac(work)
    _ensure_auth_secret(work)
    head_service = _ensure_head_service(work)
    if cluster["spec"].get("suspend"):
        for pod in work.pods():
            work.delete(pod, "the RayCluster is suspended")
    else:
        _reconcile_head(work)
        _reconcile_workers(work)
    status = build_cluster_status(cluster, work.pods(), head_service, now_rfc3339(), work.error)
    status_changed = write_status(kube, c.RAYCLUSTER_PLURAL, cluster, status)
    metrics.observe_cluster(cluster)
    if work.error:
        return Result(cfg.error_requeue_s, failed=True)
    if work.changed or status_changed:
        return Result(cfg.error_requeue_s)
    return Result(cfg.raycluster_requeue_s)


def _invalid(kube: Kube, cluster: dict[str, Any], message: str) -> Result:
    """Say what is wrong (event + status) once per distinct problem, and wait for the spec to change."""
    old = cluster.get("status") or {}
    if old.get("reason") != message:
        kube.event(cluster, events.WARNING, events.INVALID_RAYCLUSTER_SPEC, message)
    status = dict(old)
    status["reason"] = message
    status["observedGeneration"] = cluster["metadata"].get("generation", 0)
    conditions = [cond for cond in old.get("conditions") or [] if cond.get("type") != c.CONDITION_PROVISIONED]
    previous = next((x for x in old.get("conditions") or [] if x.get("type") == c.CONDITION_PROVISIONED), {})
    conditions.append(
        {
            "type": c.CONDITION_PROVISIONED,
            "status": "False",
            "reason": events.INVALID_RAYCLUSTER_SPEC,
            "message": message,
            "lastTransitionTime": previous.get("lastTransitionTime", now_rfc3339())
            if previous.get("status") == "False"
            else now_rfc3339(),
        }
    )
    status["conditions"] = conditions
    write_status(kube, c.RAYCLUSTER_PLURAL, cluster, status)
    return Result()


def _ensure_autoscaler_rbac(work: _Pass) -> None:
    """With the in-tree autoscaler: its ServiceAccount (unless the head template names the user's own, which must
    exist), Role and RoleBinding, all `<cluster>` and owned by the RayCluster (KubeRay's order: first of all)."""
    if not autoscaler.enabled(work.cluster):
        return
    user_sa = autoscaler.user_service_account(work.cluster)
    if user_sa is not None:
        if work.kube.get_service_account(work.namespace, user_sa) is None:
            work.kube.event(work.cluster, events.WARNING, events.AUTOSCALER_SERVICE_ACCOUNT_NOT_FOUND,
                            f"ServiceAccount {work.namespace}/{user_sa} named in the head template does not exist; "
                            "the head pod cannot start until it does.")
    steps = [(autoscaler.build_role(work.cluster), work.kube.get_role, work.kube.create_role, events.CREATED_ROLE,
              events.FAILED_TO_CREATE_ROLE, c.REPLICA_FAILURE_CREATE_ROLE),
             (autoscaler.build_role_binding(work.cluster), work.kube.get_role_binding, work.kube.create_role_binding,
              events.CREATED_ROLE_BINDING, events.FAILED_TO_CREATE_ROLE_BINDING, c.REPLICA_FAILURE_CREATE_ROLE_BINDING)]
    if user_sa is None:
        steps.insert(0, (autoscaler.build_service_account(work.cluster), work.kube.get_service_account,
                         work.kube.create_service_account, events.CREATED_SERVICE_ACCOUNT,
                         events.FAILED_TO_CREATE_SERVICE_ACCOUNT, c.REPLICA_FAILURE_CREATE_SERVICE_ACCOUNT))
    for body, get, create, created_reason, failed_reason, replica_failure in steps:
        kind, name = body["kind"], body["metadata"]["name"]
        if get(work.namespace, name) is not None:
            continue
        try:
            create(body)
        except Exception as err:
            message = f"Failed to create {kind} {work.namespace}/{name}: {describe_api_error(err)}"
            work.error = (replica_failure, message)
            work.kube.event(work.cluster, events.WARNING, failed_reason, message)
            continue
        work.changed = True
        work.kube.event(work.cluster, events.NORMAL, created_reason, f"Created {kind} {work.namespace}/{name}")


def _ensure_auth_secret(work: _Pass) -> None:
    """The Secret with the cluster's token (KubeRay's order: before the Services and pods). Made once with a
    random token, never rewritten (pods read it at start); a `secretName` the user gave must exist."""
    if not auth.token_enabled(work.cluster):
        return
    name = auth.secret_name(work.cluster)
    existing = work.kube.get_secret(work.namespace, name)
    if existing is not None:
        if auth.token_from_secret(existing) is None:
            message = (f"Secret {work.namespace}/{name} has no '{c.RAY_AUTH_TOKEN_SECRET_KEY}' key; the Ray pods "
                       "cannot start without the cluster's token. Add the key or name another Secret in "
                       "spec.authOptions.secretName.")
            work.kube.event(work.cluster, events.WARNING, events.INVALID_AUTH_SECRET, message)
        return
    if not auth.operator_makes_secret(work.cluster):
        message = (f"Secret {work.namespace}/{name} named in spec.authOptions.secretName does not exist; the Ray pods "
                   f"wait for it. Create it with the token under the key '{c.RAY_AUTH_TOKEN_SECRET_KEY}'.")
        work.kube.event(work.cluster, events.WARNING, events.INVALID_AUTH_SECRET, message)
        return
    try:
        work.kube.create_secret(auth.build_auth_secret(work.cluster, secrets.token_hex(32)))
    except Exception as err:
        message = f"Failed to create the auth Secret {work.namespace}/{name}: {describe_api_error(err)}"
        work.error = (c.REPLICA_FAILURE_CREATE_AUTH_SECRET, message)
        work.kube.event(work.cluster, events.WARNING, events.FAILED_TO_CREATE_AUTH_SECRET, message)
        return
    work.changed = True
    work.kube.event(work.cluster, events.NORMAL, events.CREATED_AUTH_SECRET, f"Created Secret {work.namespace}/{name}")


def _ensure_head_service(work: _Pass) -> dict[str, Any] | None:
    desired = build_head_service(work.cluster, work.cfg.cluster_ip_head_service)
    existing = work.kube.get_service(work.namespace, desired["metadata"]["name"])
    if existing is not None:
        return existing
    try:
        created = work.kube.create_service(desired)
    except Exception as err:
        message = f"Failed to create head Service {work.namespace}/{desired['metadata']['name']}: {describe_api_error(err)}"
        work.error = (c.REPLICA_FAILURE_CREATE_HEAD_SERVICE, message)
        work.kube.event(work.cluster, events.WARNING, events.FAILED_TO_CREATE_SERVICE, message)
        return None
    work.changed = True
    work.kube.event(work.cluster, events.NORMAL, events.CREATED_SERVICE, f"Created service {work.namespace}/{created['metadata']['name']}")
    return created


def _reconcile_head(work: _Pass) -> None:
    heads = [p for p in work.pods() if node_type(p) == c.NODE_TYPE_HEAD]
    for pod in heads:
        if pod_is_terminal(pod):
            work.delete(pod, f"the head pod is {pod['status']['phase']}, it will be recreated")
    heads = [p for p in heads if not pod_is_terminal(p)]
    if not heads:
        work.create(build_head_pod(work.cluster, work.cfg.pod_options), "head")
    elif len(heads) > 1:
        names_ = ", ".join(p["metadata"]["name"] for p in heads)
        work.error = (c.REPLICA_FAILURE_MULTIPLE_HEAD_PODS, f"{len(heads)} head pods exist ({names_}); a RayCluster has exactly one")


def _reconcile_workers(work: _Pass) -> None:
    spec = work.cluster["spec"]
    groups = spec.get("workerGroupSpecs") or []
    group_names = {g.get("groupName") for g in groups}
    workers = [p for p in work.pods() if node_type(p) == c.NODE_TYPE_WORKER]
    for pod in workers:
        if pod["metadata"]["labels"].get(c.LABEL_GROUP) not in group_names:
            work.delete(pod, "its worker group was removed from the spec")
    for index, group in enumerate(groups):
        group_name = group["groupName"]
        pods = [p for p in workers if p["metadata"]["labels"].get(c.LABEL_GROUP) == group_name]
        for pod in [p for p in pods if pod_is_terminal(p)]:
            work.delete(pod, f"the worker pod is {pod['status']['phase']}, it will be replaced")
        pods = [p for p in pods if not pod_is_terminal(p)]

        to_delete = list((group.get("scaleStrategy") or {}).get("workersToDelete") or [])
        if to_delete:
            for pod in [p for p in pods if p["metadata"]["name"] in to_delete]:
                work.delete(pod, "it is listed in scaleStrategy.workersToDelete")
            pods = [p for p in pods if p["metadata"]["name"] not in to_delete]
            _clear_workers_to_delete(work, index, group_name)

        diff = replicas.desired_pods(group) - len(pods)
        if diff > 0:
            for _ in range(diff):
                work.create(build_worker_pod(work.cluster, group, work.cfg.pod_options), "worker")
        elif diff < 0 and not spec.get("enableInTreeAutoscaling"):
            # Newest first: the pods that have done the least work go.
            newest = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
            for pod in newest[: -diff]:
                work.delete(pod, f"group {group_name} has more pods than its {replicas.desired_pods(group)} replicas")


def _clear_workers_to_delete(work: _Pass, index: int, group_name: str) -> None:
    # A JSON patch guarded by `test`, so a concurrent edit of the groups is never overwritten.
    patch = [
        {"op": "test", "path": f"/spec/workerGroupSpecs/{index}/groupName", "value": group_name},
        {"op": "replace", "path": f"/spec/workerGroupSpecs/{index}/scaleStrategy/workersToDelete", "value": []},
    ]
    try:
        work.kube.patch_custom(c.RAYCLUSTER_PLURAL, work.namespace, work.name, patch)
    except Exception as err:
        log.info("could not clear workersToDelete of %s/%s group %s: %s", work.namespace, work.name, group_name, err)
