"""The RayJob's state machine (KubeRay's `jobDeploymentStatus`), as a pure function.

`decide(world, options)` takes what the reconciler read — the RayJob, its RayCluster and that
cluster's head Service, the submitter Job, what the dashboard says about the Ray job — and the time,
and returns the next status and the actions that get there (`rayjob_actions`). It calls nothing, so
every transition is unit-tested on plain dicts; `handlers/rayjob.py` reads, carries out, writes.

    New ─► Initializing ─► Running ─► Complete
     │ ▲        │  (cluster ready,      └─► Failed ─► Retrying ─► New     (backoffLimit; a new cluster)
     │ │        │   submitted)                  (ttlSecondsAfterFinished ─► the cluster is deleted)
     │ └─ Suspended ◄─ Suspending ◄─ (spec.suspend, from Initializing or Running)
     └─► ValidationFailed (a spec that cannot run; back to New once it is fixed)

Deadlines: activeDeadlineSeconds (from startTime) fails Initializing or Running with DeadlineExceeded,
preRunningDeadlineSeconds fails Initializing with PreRunningDeadlineExceeded; neither is retried.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import Any

from ray_operator import constants as c
from ray_operator import events
from ray_operator.builders import job as job_builder
from ray_operator.builders import validation
from ray_operator.builders.rayjob_actions import (
    Action,
    AddFinalizer,
    ApplyService,
    CreateCluster,
    CreateSubmitterJob,
    Decision,
    DeleteCluster,
    DeleteRayJob,
    DeleteSubmitterJob,
    Event,
    RemoveFinalizer,
    StopJob,
    SubmitViaHTTP,
)
from ray_operator.builders.service import build_rayjob_head_service
from ray_operator.builders.timestamps import format_time, parse_time

# Fields that describe one attempt; a retry or a suspend starts over without them.
ATTEMPT_FIELDS = (
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
# Failures a retry cannot fix: the time is up, or the dashboard was never reachable.
_NOT_RETRIED = (
    c.REASON_DEADLINE_EXCEEDED,
    c.REASON_PRE_RUNNING_DEADLINE_EXCEEDED,
    c.REASON_STATUS_CHECK_TIMEOUT_EXCEEDED,
)


@dataclass(frozen=True)
class DashboardUnreachable:
    """The dashboard could not be asked about the job, or answered with an error."""

    message: str


@dataclass(frozen=True)
class RayJobWorld:
    """Everything one decision looks at, as read at `now`."""

    rayjob: dict[str, Any]
    cluster: dict[str, Any] | None  # the RayCluster named by status.rayClusterName
    head_service: dict[str, Any] | None  # that cluster's head Service
    submitter: dict[str, Any] | None  # the submitter Job (named like the RayJob)
    # Ray's JobDetails; None: the dashboard has no such job, or was not asked (see `asks_dashboard`).
    job_info: dict[str, Any] | DashboardUnreachable | None
    now: datetime.datetime
    # Random suffixes (job id, cluster name) for when a new attempt starts; `names.random_suffix()`.
    new_suffixes: tuple[str, str]


@dataclass(frozen=True)
class RayJobOptions:
    poll_interval_s: float = 3.0  # how soon a job that is on its way is looked at again
    cluster_domain: str = c.CLUSTER_DOMAIN_DEFAULT
    delete_rayjob_after_finish: bool = False  # the operator's DELETE_RAYJOB_CR_AFTER_JOB_FINISHES
    # A Running job whose dashboard cannot be asked for this long fails (JobStatusCheckTimeoutExceeded).
    status_check_timeout_s: float = 300.0
    # The Ray job ended this long ago but the submitter Job never finished (e.g. its pod cannot run):
    # the Ray job's status decides.
    transition_grace_period_s: float = 300.0


def asks_dashboard(rayjob: dict[str, Any]) -> bool:
    """Whether `decide` looks at `job_info` for this RayJob (only a Running job's Ray job is polled)."""
    status = rayjob.get("status") or {}
    return not rayjob["metadata"].get("deletionTimestamp") and status.get("jobDeploymentStatus") == c.DEPLOYMENT_RUNNING


def decide(world: RayJobWorld, options: RayJobOptions = RayJobOptions()) -> Decision:
    """The next status of `world.rayjob` and the actions, in order, that get there."""
    rayjob = world.rayjob
    if rayjob["metadata"].get("deletionTimestamp"):
        return _deleting(world)
    managed_by = rayjob["spec"].get("managedBy")
    if managed_by and managed_by != c.MANAGED_BY_KUBERAY:
        return Decision(status=None)  # another controller (e.g. MultiKueue) runs it
    step = _Step(world, options)
    finalizers = tuple(rayjob["metadata"].get("finalizers") or ())
    if c.RAYJOB_FINALIZER not in finalizers:
        step.act(AddFinalizer((*finalizers, c.RAYJOB_FINALIZER)))
    errors = validation.rayjob_errors(rayjob)
    if errors:
        return step.done(_invalid(step, "; ".join(errors)))
    transition = _TRANSITIONS.get(step.status.get("jobDeploymentStatus", c.DEPLOYMENT_NEW), _new)
    return step.done(transition(step))


class _Step:
    """The decision being built: a copy of the status that the transitions change, and the actions."""

    def __init__(self, world: RayJobWorld, options: RayJobOptions) -> None:
        self.world = world
        self.options = options
        self.rayjob = world.rayjob
        self.spec: dict[str, Any] = world.rayjob["spec"]
        self.name: str = world.rayjob["metadata"]["name"]
        self.namespace: str = world.rayjob["metadata"].get("namespace") or "default"
        self.status: dict[str, Any] = copy.deepcopy(world.rayjob.get("status") or {})
        self.actions: list[Action] = []

    @property
    def uses_selector(self) -> bool:
        """The job runs on an existing cluster (spec.clusterSelector) that it never creates or deletes."""
        return bool(self.spec.get("clusterSelector"))

    @property
    def now(self) -> datetime.datetime:
        return self.world.now

    def act(self, *actions: Action) -> None:
        self.actions.extend(actions)

    def event(self, event_type: str, reason: str, message: str) -> None:
        self.actions.append(Event(event_type, reason, message))

    def to(self, deployment: str, **fields: Any) -> None:
        """Move to `deployment`; a terminal one stamps endTime and counts the attempt."""
        self.status["jobDeploymentStatus"] = deployment
        self.status.update(fields)
        if deployment in (c.DEPLOYMENT_COMPLETE, c.DEPLOYMENT_FAILED):
            self.status.setdefault("endTime", format_time(self.now))
            counter = "succeeded" if deployment == c.DEPLOYMENT_COMPLETE else "failed"
            self.status[counter] = (self.status.get(counter) or 0) + 1
        self.status = {k: v for k, v in self.status.items() if v is not None}

    def seconds_since(self, stamp: str | None) -> float | None:
        moment = parse_time(stamp)
        return None if moment is None else (self.now - moment).total_seconds()

    def done(self, requeue_after_s: float | None) -> Decision:
        return Decision(status=self.status, actions=tuple(self.actions), requeue_after_s=requeue_after_s)

    def delete_cluster(self) -> None:
        cluster_name = self.status["rayClusterName"]
        message = f"Deleted RayCluster {self.namespace}/{cluster_name}"
        self.act(DeleteCluster(cluster_name, Event(events.NORMAL, events.DELETED_RAYCLUSTER, message)))


def _deleting(world: RayJobWorld) -> Decision:
    """The RayJob is being deleted: stop a Ray job that still runs, then let the RayJob go."""
    finalizers = tuple(world.rayjob["metadata"].get("finalizers") or ())
    if c.RAYJOB_FINALIZER not in finalizers:
        return Decision(status=None)
    status = world.rayjob.get("status") or {}
    actions: list[Action] = []
    still_running = status.get("jobStatus") not in c.TERMINAL_JOB_STATUSES and status.get("dashboardURL")
    if still_running and world.cluster is not None and world.head_service is not None:
        job_id = status["jobId"]
        actions.append(StopJob(job_id, Event(events.NORMAL, events.STOPPED_RAYJOB, f"Stopped Ray job {job_id}")))
    actions.append(RemoveFinalizer(finalizers, tuple(f for f in finalizers if f != c.RAYJOB_FINALIZER)))
    return Decision(status=None, actions=tuple(actions))


def _invalid(step: _Step, message: str) -> float | None:
    """ValidationFailed, with one Warning event per distinct problem; wait for the spec to change."""
    already = step.status.get("jobDeploymentStatus") == c.DEPLOYMENT_VALIDATION_FAILED
    if not already or step.status.get("message") != message:
        step.event(events.WARNING, events.INVALID_RAYJOB_SPEC, message)
    step.to(c.DEPLOYMENT_VALIDATION_FAILED, reason=c.REASON_VALIDATION_FAILED, message=message)
    return None


def _new(step: _Step) -> float | None:
    """New (or a fixed ValidationFailed): pick the job id and cluster name, stamp startTime."""
    for key in ATTEMPT_FIELDS:
        step.status.pop(key, None)
    if step.spec.get("suspend"):
        step.to(c.DEPLOYMENT_SUSPENDED)
        return None
    job_suffix, cluster_suffix = step.world.new_suffixes
    step.to(
        c.DEPLOYMENT_INITIALIZING,
        jobId=job_builder.new_job_id(step.rayjob, job_suffix),
        rayClusterName=job_builder.new_cluster_name(step.rayjob, cluster_suffix),
        jobStatus=c.JOB_STATUS_NEW,
        startTime=format_time(step.now),
        observedGeneration=step.rayjob["metadata"].get("generation"),
    )
    return 0.0


def _initializing(step: _Step) -> float | None:
    """Create the cluster (or find the selected one), wait until it is ready, create the submitter."""
    if _suspend_or_deadline(step):
        return 0.0
    pre_running = step.spec.get("preRunningDeadlineSeconds")
    waited = step.seconds_since(step.status.get("startTime"))
    if pre_running and waited is not None and waited >= pre_running:
        step.to(
            c.DEPLOYMENT_FAILED,
            reason=c.REASON_PRE_RUNNING_DEADLINE_EXCEEDED,
            message=(
                f"The RayJob did not reach Running within preRunningDeadlineSeconds ({pre_running}s) "
                f"of its startTime {step.status['startTime']}"
            ),
        )
        return 0.0
    cluster = step.world.cluster
    if cluster is None:
        cluster_name = step.status["rayClusterName"]
        if step.uses_selector:
            step.status["message"] = f"waiting for RayCluster {cluster_name} (from spec.clusterSelector)"
            return step.options.poll_interval_s
        created = Event(events.NORMAL, events.CREATED_RAYCLUSTER, f"Created RayCluster {step.namespace}/{cluster_name}")
        step.act(CreateCluster(job_builder.build_rayjob_cluster(step.rayjob, cluster_name), created))
        step.status["rayClusterStatus"] = {}  # a cluster just created has no status yet
        return step.options.poll_interval_s
    step.status["rayClusterStatus"] = cluster.get("status") or {}
    head_service = step.world.head_service
    if (cluster.get("status") or {}).get("state") != c.STATE_READY or head_service is None:
        return step.options.poll_interval_s
    step.status["dashboardURL"] = job_builder.dashboard_url(head_service, step.options.cluster_domain)
    if job_builder.submission_mode(step.rayjob) == c.MODE_K8S_JOB and step.world.submitter is None:
        body = job_builder.build_submitter_job(step.rayjob, cluster, step.status["jobId"], step.status["dashboardURL"])
        message = f"Created Kubernetes Job {step.namespace}/{step.name}"
        step.act(CreateSubmitterJob(body, Event(events.NORMAL, events.CREATED_RAYJOB_SUBMITTER, message)))
    step.to(c.DEPLOYMENT_RUNNING)
    return 0.0


def _running(step: _Step) -> float | None:
    """Submit (HTTPMode), follow the Ray job and the submitter Job until one of them says it is over."""
    if _suspend_or_deadline(step):
        return 0.0
    world = step.world
    if world.cluster is not None:
        step.status["rayClusterStatus"] = world.cluster.get("status") or {}
        if not step.uses_selector:
            step.act(ApplyService(build_rayjob_head_service(step.rayjob, world.cluster)))
    mode = job_builder.submission_mode(step.rayjob)
    submitter = _submitter_outcome(world.submitter) if mode == c.MODE_K8S_JOB else _SubmitterOutcome()

    info: dict[str, Any] | None = None
    unreachable: str | None = None
    if world.cluster is None or world.head_service is None:
        unreachable = f"the head Service of RayCluster {step.status.get('rayClusterName')} is missing"
    elif isinstance(world.job_info, DashboardUnreachable):
        unreachable = world.job_info.message
    else:
        info = world.job_info
        step.status.pop("jobStatusCheckFailureStartTime", None)
        if info is None and mode == c.MODE_HTTP:
            job_id = step.status["jobId"]
            submitted = Event(events.NORMAL, events.SUBMITTED_RAYJOB, f"Submitted Ray job {job_id} over HTTP")
            step.act(SubmitViaHTTP(job_id, job_builder.http_submit_body(step.rayjob, job_id), submitted))
            return 0.0  # the next pass reads the job's first status
    if unreachable is not None and not submitter.failed:  # (a failed submitter decides below)
        first = step.status.setdefault("jobStatusCheckFailureStartTime", format_time(step.now))
        failing_for = step.seconds_since(first) or 0.0
        if failing_for >= step.options.status_check_timeout_s:
            step.to(
                c.DEPLOYMENT_FAILED,
                reason=c.REASON_STATUS_CHECK_TIMEOUT_EXCEEDED,
                message=f"could not get the job status from the dashboard for {int(failing_for)}s: {unreachable}",
            )
            return 0.0
        step.status["message"] = f"waiting for the Ray dashboard: {unreachable}"
        return step.options.poll_interval_s

    if info is not None:
        step.status["jobStatus"] = info.get("status", step.status.get("jobStatus", ""))
        step.status["message"] = info.get("message") or step.status.get("message")
        ray_info = {k: v for k, v in (("startTime", info.get("start_time")), ("endTime", info.get("end_time"))) if v}
        if ray_info:
            step.status["rayJobInfo"] = ray_info

    job_status = step.status.get("jobStatus", "")
    if submitter.failed:
        reason = c.REASON_APP_FAILED if job_status == c.JOB_STATUS_FAILED else c.REASON_SUBMISSION_FAILED
        step.to(c.DEPLOYMENT_FAILED, reason=reason, message=f"the submitter Job {step.name} failed: {submitter.message}")
        return 0.0
    if info is None and submitter.finished:
        step.to(
            c.DEPLOYMENT_FAILED,
            reason=c.REASON_APP_FAILED,
            message=f"the submitter Job finished but the dashboard has no job {step.status['jobId']}",
        )
        return 0.0
    if job_status in c.TERMINAL_JOB_STATUSES and (mode != c.MODE_K8S_JOB or submitter.finished or _grace_over(step)):
        if job_status == c.JOB_STATUS_FAILED:
            step.to(c.DEPLOYMENT_FAILED, reason=c.REASON_APP_FAILED)
        else:
            step.to(c.DEPLOYMENT_COMPLETE)
        return 0.0
    return step.options.poll_interval_s


def _finished(step: _Step) -> float | None:
    """Complete / Failed: retry on a new cluster, or delete the cluster after ttlSecondsAfterFinished."""
    status = step.status
    if status.get("jobDeploymentStatus") == c.DEPLOYMENT_FAILED and not step.uses_selector:
        retries_left = (status.get("failed") or 0) < (step.spec.get("backoffLimit") or 0) + 1
        if status.get("reason") not in _NOT_RETRIED and retries_left:
            step.to(c.DEPLOYMENT_RETRYING)
            return 0.0
    if step.uses_selector or not step.spec.get("shutdownAfterJobFinishes"):
        return None
    ended = parse_time(status.get("endTime")) or step.now
    wait = (ended + datetime.timedelta(seconds=step.spec.get("ttlSecondsAfterFinished") or 0) - step.now).total_seconds()
    if wait > 0:
        return wait
    if step.options.delete_rayjob_after_finish:
        step.act(DeleteRayJob())
    elif step.world.cluster is not None:
        step.delete_cluster()
    return None


def _retrying(step: _Step) -> float | None:
    if not _tear_down(step):
        return step.options.poll_interval_s
    step.status = {k: v for k, v in step.status.items() if k not in ATTEMPT_FIELDS}
    step.to(c.DEPLOYMENT_NEW)
    return 0.0


def _suspending(step: _Step) -> float | None:
    if not _tear_down(step):
        return step.options.poll_interval_s
    step.status = {k: v for k, v in step.status.items() if k not in ATTEMPT_FIELDS}
    step.to(c.DEPLOYMENT_SUSPENDED)
    return None


def _suspended(step: _Step) -> float | None:
    if step.spec.get("suspend"):
        return None
    step.to(c.DEPLOYMENT_NEW)
    return 0.0


def _suspend_or_deadline(step: _Step) -> bool:
    """Initializing and Running end early when the user suspends the job or its deadline passes."""
    if step.spec.get("suspend"):
        step.to(c.DEPLOYMENT_SUSPENDING)
        return True
    deadline = step.spec.get("activeDeadlineSeconds")
    elapsed = step.seconds_since(step.status.get("startTime"))
    if deadline and elapsed is not None and elapsed >= deadline:
        step.to(
            c.DEPLOYMENT_FAILED,
            reason=c.REASON_DEADLINE_EXCEEDED,
            message=(
                f"The RayJob has passed the activeDeadlineSeconds. StartTime: {step.status.get('startTime')}. "
                f"ActiveDeadlineSeconds: {deadline}"
            ),
        )
        return True
    return False


def _tear_down(step: _Step) -> bool:
    """Delete this attempt's submitter Job and cluster; True once both are gone."""
    gone = True
    if step.world.submitter is not None:
        step.act(DeleteSubmitterJob(step.name))
        gone = False
    if not step.uses_selector and step.world.cluster is not None:
        step.delete_cluster()
        gone = False
    return gone


@dataclass(frozen=True)
class _SubmitterOutcome:
    finished: bool = False
    failed: bool = False
    message: str = ""


def _submitter_outcome(submitter: dict[str, Any] | None) -> _SubmitterOutcome:
    """What the submitter Job's conditions say (Kubernetes' Job controller sets Complete or Failed)."""
    conditions = {x.get("type"): x for x in ((submitter or {}).get("status") or {}).get("conditions") or []}
    failed = conditions.get("Failed") or {}
    if failed.get("status") == "True":
        return _SubmitterOutcome(finished=True, failed=True, message=failed.get("message") or failed.get("reason", ""))
    return _SubmitterOutcome(finished=(conditions.get("Complete") or {}).get("status") == "True")


def _grace_over(step: _Step) -> bool:
    """The Ray job ended long ago but the submitter never finished (e.g. its pod cannot run)."""
    end_ms = (step.status.get("rayJobInfo") or {}).get("endTime")
    if not end_ms:
        return False
    ended = datetime.datetime.fromtimestamp(int(end_ms) / 1000, datetime.UTC)
    return (step.now - ended).total_seconds() >= step.options.transition_grace_period_s


_TRANSITIONS = {
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
