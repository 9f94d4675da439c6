"""The RayJob state machine (`builders/rayjob_state.decide`) on plain dicts: every transition KubeRay
documents, asserted as a user sees it — status fields, events, what gets created or deleted."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from ray_operator.builders import rayjob_actions as a
from ray_operator.builders.rayjob_state import (
    DashboardUnreachable,
    RayJobOptions,
    RayJobWorld,
    asks_dashboard,
    decide,
)
from ray_operator.builders.service import build_head_service

T0 = datetime.datetime(2026, 11, 21, 23, 0, 0, tzinfo=datetime.UTC)
STAMP0 = "2026-11-21T23:00:00Z"
FINALIZER = "ray.io/rayjob-finalizer"
CLUSTER = "job-raycluster-ccccc"


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def make_rayjob(status: dict | None = None, meta: dict | None = None, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "job", "namespace": "ns1", "uid": "job-uid", "generation": 1,
                     "finalizers": [FINALIZER], **(meta or {})},
        "spec": {
            "entrypoint": "python /app/main.py",
            "rayClusterSpec": {
                "rayVersion": "2.60.0",
                "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [
                    {"name": "ray-head", "image": "localhost/openray-head:dev"}]}}},
            },
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def make_cluster(name: str = CLUSTER, state: str | None = "ready") -> dict[str, Any]:
    rayjob = make_rayjob()
    cluster = {"apiVersion": "ray.io/v1", "kind": "RayCluster",
               "metadata": {"name": name, "namespace": "ns1", "uid": "cluster-uid"},
               "spec": copy.deepcopy(rayjob["spec"]["rayClusterSpec"])}
    if state:
        cluster["status"] = {"state": state, "desiredWorkerReplicas": 0}
    return cluster


def head_service_of(cluster: dict[str, Any]) -> dict[str, Any]:
    return build_head_service(cluster)


def submitter_job(condition: str | None = None, message: str = "") -> dict[str, Any]:
    job: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job", "namespace": "ns1"},
                           "status": {}}
    if condition:
        job["status"]["conditions"] = [{"type": condition, "status": "True", "reason": "BackoffLimitExceeded",
                                        "message": message}]
    return job


def running_status(**extra: Any) -> dict[str, Any]:
    return {"jobDeploymentStatus": "Running", "jobId": "job-jjjjj", "rayClusterName": CLUSTER, "jobStatus": "",
            "startTime": STAMP0, "observedGeneration": 1,
            "dashboardURL": f"{CLUSTER}-head-svc.ns1.svc.cluster.local:8265", **extra}


def world(rayjob: dict[str, Any], cluster: dict | None = None, head_service: dict | None = None,
          submitter: dict | None = None, job_info: Any = None, now: datetime.datetime = T0) -> RayJobWorld:
    return RayJobWorld(rayjob=rayjob, cluster=cluster, head_service=head_service, submitter=submitter,
                       job_info=job_info, now=now, new_suffixes=("jjjjj", "ccccc"))


def running_world(rayjob: dict[str, Any], submitter: dict | None = None, job_info: Any = None,
                  now: datetime.datetime = T0) -> RayJobWorld:
    cluster = make_cluster()
    return world(rayjob, cluster, head_service_of(cluster), submitter, job_info, now)


def kinds(decision: a.Decision) -> list[str]:
    return [type(action).__name__ for action in decision.actions]


def posted(decision: a.Decision) -> list[tuple[str, str]]:
    """The events a user sees once every action has succeeded: (type, reason)."""
    found = []
    for action in decision.actions:
        event = action if isinstance(action, a.Event) else next(
            (getattr(action, f) for f in ("created", "submitted", "stopped", "deleted") if hasattr(action, f)), None)
        if event is not None:
            found.append((event.type, event.reason))
    return found


def only(decision: a.Decision, kind: type) -> Any:
    matches = [x for x in decision.actions if isinstance(x, kind)]
    assert len(matches) == 1, decision.actions
    return matches[0]


def info(status: str, **extra: Any) -> dict[str, Any]:
    return {"submission_id": "job-jjjjj", "status": status, "message": f"Job is {status}", **extra}


# ---- New ---------------------------------------------------------------------------------------------

def test_new_rayjob_gets_a_job_id_a_cluster_name_a_start_time_and_a_finalizer():
    decision = decide(world(make_rayjob(meta={"finalizers": []})))
    assert decision.status == {"jobDeploymentStatus": "Initializing", "jobId": "job-jjjjj",
                               "rayClusterName": "job-raycluster-ccccc", "jobStatus": "", "startTime": STAMP0,
                               "observedGeneration": 1}
    assert decision.actions == (a.AddFinalizer((FINALIZER,)),)
    assert decision.requeue_after_s == 0.0


def test_spec_job_id_and_long_names():
    decision = decide(world(make_rayjob(jobId="my-id")))
    assert decision.status["jobId"] == "my-id"
    long_name = "a" * 40  # `<name>-raycluster-xxxxx` would pass 53 characters: KubeRay v1.7's `<name>-xxxxx`
    decision = decide(world(make_rayjob(meta={"name": long_name})))
    assert decision.status["rayClusterName"] == f"{long_name}-ccccc"


def test_created_suspended_goes_straight_to_suspended():
    decision = decide(world(make_rayjob(suspend=True, shutdownAfterJobFinishes=True)))
    assert decision.status == {"jobDeploymentStatus": "Suspended"}
    assert decision.actions == () and decision.requeue_after_s is None


# ---- Initializing ------------------------------------------------------------------------------------

def initializing(**extra: Any) -> dict[str, Any]:
    return {"jobDeploymentStatus": "Initializing", "jobId": "job-jjjjj", "rayClusterName": CLUSTER, "jobStatus": "",
            "startTime": STAMP0, "observedGeneration": 1, **extra}


def test_initializing_creates_the_cluster_owned_by_the_rayjob():
    decision = decide(world(make_rayjob(status=initializing()), now=at(1)))
    create = only(decision, a.CreateCluster)
    assert create.body["metadata"]["name"] == CLUSTER
    assert create.body["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    assert create.body["metadata"]["labels"]["ray.io/originated-from-crd"] == "RayJob"
    assert create.body["spec"] == make_rayjob()["spec"]["rayClusterSpec"]
    assert posted(decision) == [("Normal", "CreatedRayCluster")]
    assert create.created.message == f"Created RayCluster ns1/{CLUSTER}"
    assert decision.status["jobDeploymentStatus"] == "Initializing" and decision.status["rayClusterStatus"] == {}
    assert decision.requeue_after_s == 3.0


def test_initializing_waits_for_the_cluster_to_be_ready_and_shows_its_status():
    cluster = make_cluster(state=None)
    cluster["status"] = {"desiredWorkerReplicas": 2, "reason": "pods pending"}
    decision = decide(world(make_rayjob(status=initializing()), cluster, head_service_of(cluster), now=at(1)))
    assert decision.actions == ()
    assert decision.status["jobDeploymentStatus"] == "Initializing"
    assert decision.status["rayClusterStatus"] == cluster["status"]
    assert decision.requeue_after_s == 3.0
    ready = make_cluster()  # ready, but its head Service is not there yet
    assert decide(world(make_rayjob(status=initializing()), ready, None)).status["jobDeploymentStatus"] == "Initializing"


def test_ready_cluster_k8s_job_mode_creates_the_submitter_and_runs():
    cluster = make_cluster()
    decision = decide(world(make_rayjob(status=initializing()), cluster, head_service_of(cluster), now=at(5)))
    assert decision.status["jobDeploymentStatus"] == "Running"
    assert decision.status["dashboardURL"] == f"{CLUSTER}-head-svc.ns1.svc.cluster.local:8265"
    submitter = only(decision, a.CreateSubmitterJob).body
    assert submitter["kind"] == "Job" and submitter["metadata"]["name"] == "job"
    container = submitter["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "ray-job-submitter" and container["image"] == "localhost/openray-head:dev"
    assert "--submission-id job-jjjjj -- python /app/main.py" in container["args"][0]
    assert posted(decision) == [("Normal", "CreatedRayJobSubmitter")]
    assert decision.requeue_after_s == 0.0


def test_ready_cluster_with_an_existing_submitter_or_http_mode_creates_no_submitter():
    cluster = make_cluster()
    existing = decide(world(make_rayjob(status=initializing()), cluster, head_service_of(cluster), submitter_job()))
    http = decide(world(make_rayjob(status=initializing(), submissionMode="HTTPMode"), cluster, head_service_of(cluster)))
    for decision in (existing, http):
        assert decision.status["jobDeploymentStatus"] == "Running" and decision.actions == ()


def test_cluster_selector_waits_for_the_named_cluster_and_never_creates_one():
    rayjob = make_rayjob(clusterSelector={"ray.io/cluster": "shared"})
    del rayjob["spec"]["rayClusterSpec"]
    started = decide(world(rayjob))
    assert started.status["rayClusterName"] == "shared"
    rayjob["status"] = started.status
    decision = decide(world(rayjob, now=at(1)))
    assert decision.actions == ()
    assert decision.status["message"] == "waiting for RayCluster shared (from spec.clusterSelector)"
    shared = make_cluster("shared")
    running = decide(world(rayjob, shared, head_service_of(shared), now=at(2)))
    assert running.status["jobDeploymentStatus"] == "Running" and kinds(running) == ["CreateSubmitterJob"]


def test_pre_running_deadline_fails_initializing_without_retry():
    rayjob = make_rayjob(status=initializing(), preRunningDeadlineSeconds=30, backoffLimit=3)
    assert decide(world(rayjob, now=at(29))).status["jobDeploymentStatus"] == "Initializing"
    decision = decide(world(rayjob, now=at(30)))
    assert decision.status["jobDeploymentStatus"] == "Failed"
    assert decision.status["reason"] == "PreRunningDeadlineExceeded"
    assert "preRunningDeadlineSeconds (30s)" in decision.status["message"]
    assert decision.status["endTime"] == "2026-11-21T23:00:30Z" and decision.status["failed"] == 1
    rayjob["status"] = decision.status
    assert decide(world(rayjob, now=at(31))).status["jobDeploymentStatus"] == "Failed"  # not Retrying


@pytest.mark.parametrize("status", [initializing(), running_status()])
def test_active_deadline_fails_initializing_or_running_without_retry(status):
    rayjob = make_rayjob(status=status, activeDeadlineSeconds=60, backoffLimit=2)
    assert decide(running_world(rayjob, job_info=info("RUNNING"), now=at(59))).status["jobDeploymentStatus"] != "Failed"
    decision = decide(running_world(rayjob, job_info=info("RUNNING"), now=at(60)))
    assert decision.status["jobDeploymentStatus"] == "Failed" and decision.status["reason"] == "DeadlineExceeded"
    assert decision.status["message"] == (f"The RayJob has passed the activeDeadlineSeconds. StartTime: {STAMP0}. "
                                          "ActiveDeadlineSeconds: 60")
    rayjob["status"] = decision.status
    assert decide(running_world(rayjob, now=at(61))).status["jobDeploymentStatus"] == "Failed"


# ---- Running -----------------------------------------------------------------------------------------

def test_running_polls_the_dashboard_and_shows_the_ray_jobs_status():
    rayjob = make_rayjob(status=running_status())
    assert asks_dashboard(rayjob)
    decision = decide(running_world(rayjob, submitter_job(), info("RUNNING", start_time=1764000000000)))
    assert decision.status["jobDeploymentStatus"] == "Running"
    assert decision.status["jobStatus"] == "RUNNING" and decision.status["message"] == "Job is RUNNING"
    assert decision.status["rayJobInfo"] == {"startTime": 1764000000000}
    assert decision.status["rayClusterStatus"] == make_cluster()["status"]
    service = only(decision, a.ApplyService).body  # `<rayjob>-head-svc`, kept across retries
    assert service["metadata"]["name"] == "job-head-svc" and service["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
    assert decision.requeue_after_s == 3.0


def test_k8s_job_mode_completes_when_both_the_ray_job_and_the_submitter_are_done():
    rayjob = make_rayjob(status=running_status())
    ended_ms = int(T0.timestamp() * 1000)
    waiting = decide(running_world(rayjob, submitter_job(), info("SUCCEEDED", end_time=ended_ms), now=at(1)))
    assert waiting.status["jobDeploymentStatus"] == "Running" and waiting.status["jobStatus"] == "SUCCEEDED"
    done = decide(running_world(rayjob, submitter_job("Complete"), info("SUCCEEDED"), now=at(40)))
    assert done.status["jobDeploymentStatus"] == "Complete" and done.status["jobStatus"] == "SUCCEEDED"
    assert done.status["endTime"] == "2026-11-21T23:00:40Z" and done.status["succeeded"] == 1
    assert "failed" not in done.status and "reason" not in done.status


def test_a_submitter_that_never_finishes_is_waited_for_a_grace_period():
    ended = at(10)
    rayjob = make_rayjob(status=running_status(jobStatus="SUCCEEDED",
                                               rayJobInfo={"endTime": int(ended.timestamp() * 1000)}))
    job = info("SUCCEEDED", end_time=int(ended.timestamp() * 1000))
    assert decide(running_world(rayjob, submitter_job(), job, now=at(309))).status["jobDeploymentStatus"] == "Running"
    assert decide(running_world(rayjob, submitter_job(), job, now=at(310))).status["jobDeploymentStatus"] == "Complete"


def test_a_failed_or_stopped_ray_job():
    rayjob = make_rayjob(status=running_status())
    failed = decide(running_world(rayjob, submitter_job("Complete"), info("FAILED", message="exit code 1")))
    assert failed.status["jobDeploymentStatus"] == "Failed" and failed.status["reason"] == "AppFailed"
    assert failed.status["message"] == "exit code 1" and failed.status["failed"] == 1
    stopped = decide(running_world(rayjob, submitter_job("Complete"), info("STOPPED")))
    assert stopped.status["jobDeploymentStatus"] == "Complete" and stopped.status["jobStatus"] == "STOPPED"


def test_a_failing_submitter_job_fails_the_rayjob():
    rayjob = make_rayjob(status=running_status())
    limit = "Job has reached the specified backoff limit"
    never_submitted = decide(running_world(rayjob, submitter_job("Failed", limit), None))
    assert never_submitted.status["jobDeploymentStatus"] == "Failed"
    assert never_submitted.status["reason"] == "SubmissionFailed"
    assert never_submitted.status["message"] == f"the submitter Job job failed: {limit}"
    app_failed = decide(running_world(rayjob, submitter_job("Failed", limit), info("FAILED")))
    assert app_failed.status["reason"] == "AppFailed"
    unreachable = decide(running_world(rayjob, submitter_job("Failed", limit), DashboardUnreachable("refused")))
    assert unreachable.status["reason"] == "SubmissionFailed"  # the submitter's failure decides


def test_a_submitter_that_succeeded_for_a_job_the_dashboard_does_not_know():
    decision = decide(running_world(make_rayjob(status=running_status()), submitter_job("Complete"), None))
    assert decision.status["jobDeploymentStatus"] == "Failed" and decision.status["reason"] == "AppFailed"
    assert decision.status["message"] == "the submitter Job finished but the dashboard has no job job-jjjjj"


def test_http_mode_submits_once_the_dashboard_does_not_know_the_job():
    rayjob = make_rayjob(status=running_status(), submissionMode="HTTPMode", metadata={"team": "a"},
                         runtimeEnvYAML="env_vars:\n  A: b\n")
    decision = decide(running_world(rayjob, None, None))
    submit = only(decision, a.SubmitViaHTTP)
    assert submit.job_id == "job-jjjjj"
    assert submit.body == {"entrypoint": "python /app/main.py", "submission_id": "job-jjjjj",
                           "runtime_env": {"env_vars": {"A": "b"}}, "metadata": {"team": "a"}}
    assert posted(decision) == [("Normal", "SubmittedRayJob")]
    assert decision.status["jobDeploymentStatus"] == "Running" and decision.requeue_after_s == 0.0
    done = decide(running_world(rayjob, None, info("SUCCEEDED")))
    assert done.status["jobDeploymentStatus"] == "Complete"  # no submitter Job to wait for
    assert not [x for x in done.actions if isinstance(x, a.SubmitViaHTTP)]


def test_an_unreachable_dashboard_is_waited_for_then_fails_the_job():
    rayjob = make_rayjob(status=running_status(), backoffLimit=2)
    first = decide(running_world(rayjob, submitter_job(), DashboardUnreachable("GET … failed: refused"), now=at(10)))
    assert first.status["jobDeploymentStatus"] == "Running"
    assert first.status["jobStatusCheckFailureStartTime"] == "2026-11-21T23:00:10Z"
    assert first.status["message"] == "waiting for the Ray dashboard: GET … failed: refused"
    rayjob["status"] = first.status
    still = decide(running_world(rayjob, submitter_job(), DashboardUnreachable("refused"), now=at(309)))
    assert still.status["jobStatusCheckFailureStartTime"] == "2026-11-21T23:00:10Z"
    timed_out = decide(running_world(rayjob, submitter_job(), DashboardUnreachable("refused"), now=at(310)))
    assert timed_out.status["jobDeploymentStatus"] == "Failed"
    assert timed_out.status["reason"] == "JobStatusCheckTimeoutExceeded"
    assert timed_out.status["message"].startswith("could not get the job status from the dashboard for 300s")
    rayjob["status"] = timed_out.status
    assert decide(running_world(rayjob, now=at(311))).status["jobDeploymentStatus"] == "Failed"  # no retry


def test_a_dashboard_that_answers_again_clears_the_failure_clock():
    rayjob = make_rayjob(status=running_status(jobStatusCheckFailureStartTime=STAMP0))
    decision = decide(running_world(rayjob, submitter_job(), info("RUNNING"), now=at(20)))
    assert "jobStatusCheckFailureStartTime" not in decision.status


def test_a_missing_head_service_counts_as_an_unreachable_dashboard():
    rayjob = make_rayjob(status=running_status())
    decision = decide(world(rayjob, make_cluster(), None, submitter_job(), None))
    assert decision.status["message"] == f"waiting for the Ray dashboard: the head Service of RayCluster {CLUSTER} is missing"


# ---- Complete / Failed: retries and clean-up ---------------------------------------------------------

def failed_status(failed: int = 1, reason: str = "AppFailed") -> dict[str, Any]:
    return running_status(jobDeploymentStatus="Failed", jobStatus="FAILED", reason=reason, endTime=STAMP0,
                          failed=failed)


def test_backoff_limit_retries_on_a_new_cluster():
    rayjob = make_rayjob(status=failed_status(), backoffLimit=1, shutdownAfterJobFinishes=True)
    retrying = decide(world(rayjob))
    assert retrying.status["jobDeploymentStatus"] == "Retrying" and retrying.status["failed"] == 1

    rayjob["status"] = retrying.status
    cluster = make_cluster()
    tearing = decide(world(rayjob, cluster, head_service_of(cluster), submitter_job("Failed")))
    assert kinds(tearing) == ["DeleteSubmitterJob", "DeleteCluster"]
    assert only(tearing, a.DeleteCluster).name == CLUSTER
    assert posted(tearing) == [("Normal", "DeletedRayCluster")]
    assert tearing.status["jobDeploymentStatus"] == "Retrying" and tearing.requeue_after_s == 3.0

    gone = decide(world(rayjob))
    assert gone.status == {"jobDeploymentStatus": "", "observedGeneration": 1, "failed": 1}
    rayjob["status"] = gone.status
    again = decide(dataclass_replace_suffixes(world(rayjob, now=at(60)), ("jjjj2", "cccc2")))
    assert again.status["jobDeploymentStatus"] == "Initializing"
    assert again.status["rayClusterName"] == "job-raycluster-cccc2" and again.status["failed"] == 1
    assert again.status["startTime"] == "2026-11-21T23:01:00Z"


def dataclass_replace_suffixes(w: RayJobWorld, suffixes: tuple[str, str]) -> RayJobWorld:
    import dataclasses

    return dataclasses.replace(w, new_suffixes=suffixes)


def test_retries_stop_at_backoff_limit_and_never_for_a_selected_cluster():
    exhausted = make_rayjob(status=failed_status(failed=2), backoffLimit=1)
    assert decide(world(exhausted)).status["jobDeploymentStatus"] == "Failed"
    no_limit = make_rayjob(status=failed_status())
    assert decide(world(no_limit)).status["jobDeploymentStatus"] == "Failed"
    selected = make_rayjob(status=failed_status(), clusterSelector={"ray.io/cluster": "shared"})
    del selected["spec"]["rayClusterSpec"]
    assert decide(world(selected)).status["jobDeploymentStatus"] == "Failed"


def test_shutdown_after_job_finishes_deletes_the_cluster_after_the_ttl():
    status = running_status(jobDeploymentStatus="Complete", jobStatus="SUCCEEDED", endTime=STAMP0, succeeded=1)
    rayjob = make_rayjob(status=status, shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=60)
    cluster = make_cluster()
    early = decide(world(rayjob, cluster, head_service_of(cluster), now=at(20)))
    assert early.actions == () and early.requeue_after_s == 40.0
    due = decide(world(rayjob, cluster, head_service_of(cluster), now=at(60)))
    assert kinds(due) == ["DeleteCluster"] and posted(due) == [("Normal", "DeletedRayCluster")]
    assert due.status == status and due.requeue_after_s is None  # the RayJob stays, Complete
    assert decide(world(rayjob, None, None, now=at(61))).actions == ()


def test_finished_jobs_keep_their_cluster_without_shutdown_and_a_selected_one_always():
    status = running_status(jobDeploymentStatus="Complete", jobStatus="SUCCEEDED", endTime=STAMP0, succeeded=1)
    keep = decide(world(make_rayjob(status=status), make_cluster(), None, now=at(3600)))
    assert keep.actions == () and keep.requeue_after_s is None
    selected = make_rayjob(status=status, clusterSelector={"ray.io/cluster": "shared"}, shutdownAfterJobFinishes=True)
    del selected["spec"]["rayClusterSpec"]
    assert decide(world(selected, make_cluster("shared"), None, now=at(3600))).actions == ()


def test_delete_rayjob_after_it_finishes_when_the_operator_is_told_to():
    status = running_status(jobDeploymentStatus="Failed", jobStatus="FAILED", endTime=STAMP0, failed=1, reason="AppFailed")
    rayjob = make_rayjob(status=status, shutdownAfterJobFinishes=True)
    decision = decide(world(rayjob, make_cluster(), None, now=at(1)), RayJobOptions(delete_rayjob_after_finish=True))
    assert kinds(decision) == ["DeleteRayJob"]


# ---- Suspend -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [initializing(), running_status()])
def test_suspend_tears_the_attempt_down_and_resume_starts_over(status):
    rayjob = make_rayjob(status=status, suspend=True, shutdownAfterJobFinishes=True)
    cluster = make_cluster()
    suspending = decide(world(rayjob, cluster, head_service_of(cluster), submitter_job()))
    assert suspending.status["jobDeploymentStatus"] == "Suspending" and suspending.requeue_after_s == 0.0

    rayjob["status"] = suspending.status
    tearing = decide(world(rayjob, cluster, head_service_of(cluster), submitter_job()))
    assert kinds(tearing) == ["DeleteSubmitterJob", "DeleteCluster"]
    suspended = decide(world(rayjob))
    assert suspended.status == {"jobDeploymentStatus": "Suspended", "observedGeneration": 1}
    assert suspended.requeue_after_s is None

    rayjob["status"] = suspended.status
    assert decide(world(rayjob)).status["jobDeploymentStatus"] == "Suspended"  # stays while suspended
    rayjob["spec"]["suspend"] = False
    resumed = decide(world(rayjob))
    assert resumed.status["jobDeploymentStatus"] == "" and resumed.requeue_after_s == 0.0
    rayjob["status"] = resumed.status
    assert decide(world(rayjob)).status["jobDeploymentStatus"] == "Initializing"


# ---- ValidationFailed, deletion, other controllers ---------------------------------------------------

def test_an_invalid_spec_is_validation_failed_with_one_warning_per_problem():
    rayjob = make_rayjob(runtimeEnvYAML="- not\n- a mapping\n")
    decision = decide(world(rayjob))
    assert decision.status["jobDeploymentStatus"] == "ValidationFailed"
    assert decision.status["reason"] == "ValidationFailed" and "runtimeEnvYAML" in decision.status["message"]
    assert posted(decision) == [("Warning", "InvalidRayJobSpec")]
    assert only(decision, a.Event).message == decision.status["message"]
    assert decision.requeue_after_s is None and not [x for x in decision.actions if isinstance(x, a.CreateCluster)]
    rayjob["status"] = decision.status
    assert posted(decide(world(rayjob))) == []  # the same problem again: no second event

    del rayjob["spec"]["runtimeEnvYAML"]  # fixed
    fixed = decide(world(rayjob))
    assert fixed.status["jobDeploymentStatus"] == "Initializing" and "reason" not in fixed.status


def test_a_too_long_name_is_validation_failed():
    decision = decide(world(make_rayjob(meta={"name": "a" * 48})))
    assert decision.status["jobDeploymentStatus"] == "ValidationFailed" and "at most 47" in decision.status["message"]


def test_deleting_a_running_rayjob_stops_its_ray_job_then_releases_it():
    rayjob = make_rayjob(status=running_status(jobStatus="RUNNING"),
                         meta={"deletionTimestamp": STAMP0, "finalizers": ["other", FINALIZER]})
    assert not asks_dashboard(rayjob)
    decision = decide(running_world(rayjob))
    assert decision.status is None
    assert decision.actions[0] == a.StopJob("job-jjjjj", a.Event("Normal", "StoppedRayJob", "Stopped Ray job job-jjjjj"))
    assert decision.actions[1] == a.RemoveFinalizer(("other", FINALIZER), ("other",))
    finished = make_rayjob(status=running_status(jobStatus="SUCCEEDED"), meta={"deletionTimestamp": STAMP0})
    assert kinds(decide(running_world(finished))) == ["RemoveFinalizer"]
    released = make_rayjob(status=running_status(), meta={"deletionTimestamp": STAMP0, "finalizers": []})
    assert decide(running_world(released)) == a.Decision(status=None)


def test_a_rayjob_managed_by_another_controller_is_left_alone():
    decision = decide(world(make_rayjob(managedBy="kueue.x-k8s.io/multikueue", meta={"finalizers": []})))
    assert decision == a.Decision(status=None)


# ---- properties of the function ----------------------------------------------------------------------

def test_deciding_again_on_what_was_written_changes_nothing():
    """Level-based: with the status it wrote and the same world, the next pass has nothing new to do."""
    rayjob = make_rayjob(status=running_status())
    first = decide(running_world(rayjob, submitter_job(), info("RUNNING")))
    rayjob["status"] = first.status
    second = decide(running_world(rayjob, submitter_job(), info("RUNNING")))
    assert second.status == first.status and kinds(second) == ["ApplyService"]  # applying the same Service is a no-op


def test_decide_never_changes_its_inputs():
    rayjob = make_rayjob(status=running_status(), submissionMode="HTTPMode")
    cluster = make_cluster()
    w = world(rayjob, cluster, head_service_of(cluster), None, None)
    before = copy.deepcopy((w.rayjob, w.cluster, w.head_service))
    decide(w)
    assert (w.rayjob, w.cluster, w.head_service) == before
