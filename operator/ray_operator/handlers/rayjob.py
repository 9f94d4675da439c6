"""RayJob reconciler: KubeRay's deployment-status state machine (K8sJobMode and HTTPMode).

New → Initializing (cluster created, waits for it to be ready) → Running (submitter Job or HTTP
submit; polls the dashboard) → Complete / Failed, with Retrying (backoffLimit, on a new cluster),
Suspending / Suspended, and ValidationFailed for specs that cannot run.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from ray_operator import constants as c
from ray_operator import events, metrics
from ray_operator.builders import job as job_builder
from ray_operator.builders import names, validation
from ray_operator.builders.service import build_rayjob_head_service
from ray_operator.config import OperatorConfig
from ray_operator.credentials import api_credentials
from ray_operator.dashboard_client import DashboardError, DashboardFactory, dashboard_factory
from ray_operator.handlers.common import Result, describe_api_error, write_status
from ray_operator.kube import Kube, now_rfc3339, parse_time

log = logging.getLogger(__name__)

STATUS_CHECK_TIMEOUT_S = 300.0
TRANSITION_GRACE_PERIOD_S = 300.0
# Fields that describe one attempt; a retry or a suspend starts over without them.
_ATTEMPT_FIELDS = (
    "jobId",
    "rayClusterName",
    "dashboardURL",
    "jobStatus",
    "startTime",
    "endTime",
    "message",
    "reason",
    "rayJobInfo",
    "rayClusterStatus",
    "jobStatusCheckFailureStartTime",
)

def default_dashboard_factory(kube: Kube, cfg: OperatorConfig) -> DashboardFactory:
    """Direct HTTP to `status.dashboardURL`, or through the API server's service proxy."""
    if not cfg.use_kubernetes_proxy:
        return dashboard_factory(cfg.dashboard_timeout_s)
    return dashboard_factory(cfg.dashboard_timeout_s, lambda: api_credentials(kube.api_client.configuration))


class _Job:
    """One reconcile pass over a RayJob."""

    def __init__(self, kube: Kube, cfg: OperatorConfig, rayjob: dict[str, Any], dashboards: DashboardFactory):
        self.kube = kube
        self.cfg = cfg
        self.obj = rayjob
        self.spec = rayjob["spec"]
        self.status: dict[str, Any] = dict(rayjob.get("status") or {})
        self.namespace = rayjob["metadata"].get("namespace", "default")
        self.name = rayjob["metadata"]["name"]
        self.dashboards = dashboards

    def save(self) -> None:
        write_status(self.kube, c.RAYJOB_PLURAL, self.obj, self.status)
        metrics.observe_job(self.obj)

    def event(self, event_type: str, reason: str, message: str) -> None:
        self.kube.event(self.obj, event_type, reason, message)

    def to(self, deployment: str, **fields: Any) -> None:
        self.status["jobDeploymentStatus"] = deployment
        self.status.update(fields)
        if deployment in (c.DEPLOYMENT_COMPLETE, c.DEPLOYMENT_FAILED):
            self.status.setdefault("endTime", now_rfc3339())
            counter = "succeeded" if deployment == c.DEPLOYMENT_COMPLETE else "failed"
            self.status[counter] = (self.status.get(counter) or 0) + 1
        self.status = {k: v for k, v in self.status.items() if v is not None}
        self.save()

    @property
    def uses_selector(self) -> bool:
        return bool(self.spec.get("clusterSelector"))

    def cluster(self) -> dict[str, Any] | None:
        name = self.status.get("rayClusterName")
        return self.kube.get_custom(c.RAYCLUSTER_PLURAL, self.namespace, name) if name else None

    def deadline_passed(self) -> bool:
        deadline = self.spec.get("activeDeadlineSeconds")
        started = parse_time(self.status.get("startTime"))
        if not deadline or not started:
            return False
        return (_now() - started).total_seconds() >= deadline


def reconcile_rayjob(
    kube: Kube, cfg: OperatorConfig, namespace: str, name: str, dashboards: DashboardFactory | None = None
) -> Result:
    rayjob = kube.get_custom(c.RAYJOB_PLURAL, namespace, name)
    if rayjob is None:
        metrics.forget_job(namespace, name)
        return Result()
    dashboards = dashboards or default_dashboard_factory(kube, cfg)
    job = _Job(kube, cfg, rayjob, dashboards)
    if rayjob["metadata"].get("deletionTimestamp"):
        _finalize(job)
        metrics.forget_job(namespace, name)
        return Result()
    managed_by = job.spec.get("managedBy")
    if managed_by and managed_by != c.MANAGED_BY_KUBERAY:
        return Result()
    if c.RAYJOB_FINALIZER not in (rayjob["metadata"].get("finalizers") or []):
        finalizers = list(rayjob["metadata"].get("finalizers") or []) + [c.RAYJOB_FINALIZER]
        kube.patch_custom(c.RAYJOB_PLURAL, namespace, name, {"metadata": {"finalizers": finalizers}})

    errors = validation.rayjob_errors(rayjob)
    if errors:
        message = "; ".join(errors)
        if job.status.get("message") != message or job.status.get("jobDeploymentStatus") != c.DEPLOYMENT_VALIDATION_FAILED:
            job.event(events.WARNING, events.INVALID_RAYJOB_SPEC, message)
        job.to(c.DEPLOYMENT_VALIDATION_FAILED, reason=c.REASON_VALIDATION_FAILED, message=message)
        return Result()

    step = _STEPS.get(job.status.get("jobDeploymentStatus", c.DEPLOYMENT_NEW), _new)
    result = step(job)
    metrics.observe_job(job.obj)
    return result


def _new(job: _Job) -> Result:
    """New (or a fixed ValidationFailed): pick the job id and cluster name, stamp startTime."""
    for key in _ATTEMPT_FIELDS:
        job.status.pop(key, None)
    if job.spec.get("suspend"):
        job.to(c.DEPLOYMENT_SUSPENDED)
        return Result()
    suffix = names.random_suffix()
    job.to(
        c.DEPLOYMENT_INITIALIZING,
        jobId=job_builder.new_job_id(job.obj, names.random_suffix()),
        rayClusterName=job_builder.new_cluster_name(job.obj, suffix),
        jobStatus=c.JOB_STATUS_NEW,
        startTime=now_rfc3339(),
        observedGeneration=job.obj["metadata"].get("generation"),
    )
    return Result(0.0)


def _initializing(job: _Job) -> Result:
    if _suspend_or_deadline(job):
        return Result(0.0)
    pre_running = job.spec.get("preRunningDeadlineSeconds")
    started = parse_time(job.status.get("startTime"))
    if pre_running and started and (_now() - started).total_seconds() >= pre_running:
        job.to(
            c.DEPLOYMENT_FAILED,
            reason=c.REASON_PRE_RUNNING_DEADLINE_EXCEEDED,
            message=(
                f"The RayJob did not reach Running within preRunningDeadlineSeconds ({pre_running}s) "
                f"of its startTime {job.status['startTime']}"
            ),
        )
        return Result(0.0)
    cluster = job.cluster()
    if cluster is None:
        if job.uses_selector:
            job.status["message"] = f"waiting for RayCluster {job.status['rayClusterName']} (from spec.clusterSelector)"
            job.save()
            return Result(job.cfg.rayjob_requeue_s)
        body = job_builder.build_rayjob_cluster(job.obj, job.status["rayClusterName"])
        try:
            cluster = job.kube.create_custom(c.RAYCLUSTER_PLURAL, body)
        except Exception as err:
            job.event(events.WARNING, events.FAILED_TO_CREATE_RAYCLUSTER, describe_api_error(err))
            return Result(job.cfg.error_requeue_s, failed=True)
        job.event(events.NORMAL, events.CREATED_RAYCLUSTER, f"Created RayCluster {job.namespace}/{cluster['metadata']['name']}")
    job.status["rayClusterStatus"] = cluster.get("status") or {}
    if (cluster.get("status") or {}).get("state") != c.STATE_READY:
        job.save()
        return Result(job.cfg.rayjob_requeue_s)
    head_service = job.kube.get_service(job.namespace, names.head_service_name(cluster))
    if head_service is None:
        job.save()
        return Result(job.cfg.rayjob_requeue_s)
    job.status["dashboardURL"] = job_builder.dashboard_url(head_service, job.cfg.pod_options.cluster_domain)
    if job_builder.submission_mode(job.obj) == c.MODE_K8S_JOB and job.kube.get_job(job.namespace, job.name) is None:
        submitter = job_builder.build_submitter_job(job.obj, cluster, job.status["jobId"], job.status["dashboardURL"])
        try:
            job.kube.create_job(submitter)
        except Exception as err:
            job.event(events.WARNING, events.FAILED_TO_CREATE_RAYJOB_SUBMITTER, describe_api_error(err))
            job.save()
            return Result(job.cfg.error_requeue_s, failed=True)
        job.event(events.NORMAL, events.CREATED_RAYJOB_SUBMITTER, f"Created Kubernetes Job {job.namespace}/{job.name}")
    job.to(c.DEPLOYMENT_RUNNING)
    return Result(0.0)


def _running(job: _Job) -> Result:
    if _suspend_or_deadline(job):
        return Result(0.0)
    cluster = job.cluster()
    if cluster is not None:
        job.status["rayClusterStatus"] = cluster.get("status") or {}
        if not job.uses_selector:
            _ensure_rayjob_service(job, cluster)
    mode = job_builder.submission_mode(job.obj)
    submitter_failed, submitter_finished, submitter_message = False, False, ""
    if mode == c.MODE_K8S_JOB:
        submitter = job.kube.get_job(job.namespace, job.name)
        conditions = {x.get("type"): x for x in ((submitter or {}).get("status") or {}).get("conditions") or []}
        if conditions.get("Failed", {}).get("status") == "True":
            submitter_failed = submitter_finished = True
            submitter_message = conditions["Failed"].get("message") or conditions["Failed"].get("reason", "")
        elif conditions.get("Complete", {}).get("status") == "True":
            submitter_finished = True

    head_service = job.kube.get_service(job.namespace, names.head_service_name(cluster)) if cluster else None
    info: dict[str, Any] | None = None
    try:
        if head_service is None:
            raise DashboardError(f"the head Service of RayCluster {job.status.get('rayClusterName')} is missing")
        client = job.dashboards(job.obj, head_service)
        info = client.get_job_info(job.status["jobId"])
        if info is None and mode == c.MODE_HTTP:
            client.submit_job(job_builder.http_submit_body(job.obj, job.status["jobId"]))
            job.event(events.NORMAL, events.SUBMITTED_RAYJOB, f"Submitted Ray job {job.status['jobId']} over HTTP")
            info = client.get_job_info(job.status["jobId"])
        job.status.pop("jobStatusCheckFailureStartTime", None)
    except DashboardError as err:
        if submitter_failed:
            pass  # the submitter's failure decides below
        else:
            first = job.status.setdefault("jobStatusCheckFailureStartTime", now_rfc3339())
            failing_for = (_now() - parse_time(first)).total_seconds()
            if failing_for >= STATUS_CHECK_TIMEOUT_S:
                job.to(
                    c.DEPLOYMENT_FAILED,
                    reason=c.REASON_STATUS_CHECK_TIMEOUT_EXCEEDED,
                    message=f"could not get the job status from the dashboard for {int(failing_for)}s: {err}",
                )
                return Result(0.0)
            job.status["message"] = f"waiting for the Ray dashboard: {err}"
            job.save()
            return Result(job.cfg.rayjob_requeue_s)

    if info is not None:
        job.status["jobStatus"] = info.get("status", job.status.get("jobStatus", ""))
        job.status["message"] = info.get("message") or job.status.get("message")
        ray_info = {k: v for k, v in (("startTime", info.get("start_time")), ("endTime", info.get("end_time"))) if v}
        if ray_info:
            job.status["rayJobInfo"] = ray_info

    job_status = job.status.get("jobStatus", "")
    if submitter_failed:
        reason = c.REASON_APP_FAILED if job_status == c.JOB_STATUS_FAILED else c.REASON_SUBMISSION_FAILED
        job.to(c.DEPLOYMENT_FAILED, reason=reason, message=f"the submitter Job {job.name} failed: {submitter_message}")
        return Result(0.0)
    if info is None and submitter_finished:
        job.to(c.DEPLOYMENT_FAILED, reason=c.REASON_APP_FAILED,
               message=f"the submitter Job finished but the dashboard has no job {job.status['jobId']}")
        return Result(0.0)
    if job_status in c.TERMINAL_JOB_STATUSES and (mode != c.MODE_K8S_JOB or submitter_finished or _grace_over(job)):
        if job_status == c.JOB_STATUS_FAILED:
            job.to(c.DEPLOYMENT_FAILED, reason=c.REASON_APP_FAILED)
        else:
            job.to(c.DEPLOYMENT_COMPLETE)
        return Result(0.0)
    job.save()
    return Result(job.cfg.rayjob_requeue_s)


def _finished(job: _Job) -> Result:
    """Complete / Failed: retry on a new cluster, or clean up after ttlSecondsAfterFinished."""
    status = job.status
    if status.get("jobDeploymentStatus") == c.DEPLOYMENT_FAILED and not job.uses_selector:
        no_retry = status.get("reason") in (
            c.REASON_DEADLINE_EXCEEDED,
            c.REASON_PRE_RUNNING_DEADLINE_EXCEEDED,
            c.REASON_STATUS_CHECK_TIMEOUT_EXCEEDED,
        )
        if not no_retry and (status.get("failed") or 0) < (job.spec.get("backoffLimit") or 0) + 1:
            job.to(c.DEPLOYMENT_RETRYING)
            return Result(0.0)
    if job.uses_selector or not job.spec.get("shutdownAfterJobFinishes"):
        return Result()
    ended = parse_time(status.get("endTime")) or _now()
    wait = ended + datetime.timedelta(seconds=job.spec.get("ttlSecondsAfterFinished") or 0) - _now()
    if wait.total_seconds() > 0:
        return Result(wait.total_seconds())
    if job.cfg.delete_rayjob_cr_after_job_finishes:
        job.kube.delete_custom(c.RAYJOB_PLURAL, job.namespace, job.name)
        return Result()
    if job.cluster() is not None:
        job.kube.delete_custom(c.RAYCLUSTER_PLURAL, job.namespace, status["rayClusterName"])
        job.event(events.NORMAL, events.DELETED_RAYCLUSTER, f"Deleted RayCluster {job.namespace}/{status['rayClusterName']}")
    return Result()


def _retrying(job: _Job) -> Result:
    if not _tear_down(job):
        return Result(job.cfg.rayjob_requeue_s)
    job.status = {k: v for k, v in job.status.items() if k not in _ATTEMPT_FIELDS}
    job.to(c.DEPLOYMENT_NEW)
    return Result(0.0)


def _suspending(job: _Job) -> Result:
    if not _tear_down(job):
        return Result(job.cfg.rayjob_requeue_s)
    job.status = {k: v for k, v in job.status.items() if k not in _ATTEMPT_FIELDS}
    job.to(c.DEPLOYMENT_SUSPENDED)
    return Result()


def _suspended(job: _Job) -> Result:
    if job.spec.get("suspend"):
        return Result()
    job.to(c.DEPLOYMENT_NEW)
    return Result(0.0)


def _suspend_or_deadline(job: _Job) -> bool:
    if job.spec.get("suspend"):
        job.to(c.DEPLOYMENT_SUSPENDING)
        return True
    if job.deadline_passed():
        job.to(
            c.DEPLOYMENT_FAILED,
            reason=c.REASON_DEADLINE_EXCEEDED,
            message=(
                f"The RayJob has passed the activeDeadlineSeconds. StartTime: {job.status.get('startTime')}. "
                f"ActiveDeadlineSeconds: {job.spec['activeDeadlineSeconds']}"
            ),
        )
        return True
    return False


def _tear_down(job: _Job) -> bool:
    """Delete this attempt's cluster and submitter Job; True once both are gone."""
    gone = True
    if job.kube.get_job(job.namespace, job.name) is not None:
        job.kube.delete_job(job.namespace, job.name)
        gone = False
    if not job.uses_selector and job.cluster() is not None:
        job.kube.delete_custom(c.RAYCLUSTER_PLURAL, job.namespace, job.status["rayClusterName"])
        job.event(events.NORMAL, events.DELETED_RAYCLUSTER, f"Deleted RayCluster {job.namespace}/{job.status['rayClusterName']}")
        gone = False
    return gone


def _ensure_rayjob_service(job: _Job, cluster: dict[str, Any]) -> None:
    desired = build_rayjob_head_service(job.obj, cluster)
    existing = job.kube.get_service(job.namespace, desired["metadata"]["name"])
    try:
        if existing is None:
            job.kube.create_service(desired)
        elif (existing.get("spec") or {}).get("selector") != desired["spec"]["selector"]:
            job.kube.patch_service(job.namespace, desired["metadata"]["name"], {"spec": {"selector": desired["spec"]["selector"]}})
    except Exception as err:
        log.info("could not apply Service %s: %s", desired["metadata"]["name"], describe_api_error(err))


def _grace_over(job: _Job) -> bool:
    """The Ray job ended long ago but the submitter never finished (e.g. its pod cannot run)."""
    end_ms = (job.status.get("rayJobInfo") or {}).get("endTime")
    if not end_ms:
        return False
    ended = datetime.datetime.fromtimestamp(int(end_ms) / 1000, datetime.UTC)
    return (_now() - ended).total_seconds() >= TRANSITION_GRACE_PERIOD_S


def _finalize(job: _Job) -> None:
    """The RayJob is being deleted: stop a job that still runs, then let it go."""
    finalizers = job.obj["metadata"].get("finalizers") or []
    if c.RAYJOB_FINALIZER not in finalizers:
        return
    if job.status.get("jobStatus") not in c.TERMINAL_JOB_STATUSES and job.status.get("dashboardURL"):
        cluster = job.cluster()
        head_service = job.kube.get_service(job.namespace, names.head_service_name(cluster)) if cluster else None
        if head_service is not None:
            try:
                job.dashboards(job.obj, head_service).stop_job(job.status["jobId"])
                job.event(events.NORMAL, events.STOPPED_RAYJOB, f"Stopped Ray job {job.status['jobId']}")
            except DashboardError as err:
                log.info("could not stop Ray job %s: %s", job.status.get("jobId"), err)
    remaining = [f for f in finalizers if f != c.RAYJOB_FINALIZER]
    patch = [
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
    ]
    job.kube.patch_custom(c.RAYJOB_PLURAL, job.namespace, job.name, patch)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


_STEPS: dict[str, Callable[[_Job], Result]] = {
    c.DEPLOYMENT_NEW: _new,
    c.DEPLOYMENT_VALIDATION_FAILED: _new,
    c.DEPLOYMENT_INITIALIZING: _initializing,
    c.DEPLOYMENT_RUNNING: _running,
    c.DEPLOYMENT_COMPLETE: _finished,
    c.DEPLOYMENT_FAILED: _finished,
    c.DEPLOYMENT_RETRYING: _retrying,
    c.DEPLOYMENT_SUSPENDING: _suspending,
    c.DEPLOYMENT_SUSPENDED: _suspended,
}
