"""RayJob reconciler: read the world, let the state machine decide, carry out its actions, write status.

The transitions (KubeRay's jobDeploymentStatus: New → Initializing → Running → Complete / Failed,
Retrying, Suspending / Suspended, ValidationFailed) are the pure function `builders/rayjob_state.decide`;
this module only talks to the API server and the dashboard on its behalf.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import Any

from ray_operator import constants as c
from ray_operator import events, metrics
from ray_operator.builders import auth, names, rayjob_state
from ray_operator.builders.rayjob_actions import (
    Action,
    AddFinalizer,
    ApplyService,
    CreateCluster,
    CreateSubmitterJob,
    DeleteCluster,
    DeleteRayJob,
    DeleteSubmitterJob,
    Event,
    RemoveFinalizer,
    StopJob,
    SubmitViaHTTP,
)
from ray_operator.builders.rayjob_state import DashboardUnreachable, RayJobOptions, RayJobWorld
from ray_operator.config import OperatorConfig
from ray_operator.credentials import api_credentials
from ray_operator.dashboard_client import DashboardClient, DashboardError, DashboardFactory, dashboard_factory
from ray_operator.handlers.common import Result, describe_api_error, write_status
from ray_operator.kube import Kube

log = logging.getLogger(__name__)


def default_dashboard_factory(kube: Kube, cfg: OperatorConfig) -> DashboardFactory:
    """Direct HTTP to `status.dashboardURL`, or through the API server's service proxy."""
    if not cfg.use_kubernetes_proxy:
        return dashboard_factory(cfg.dashboard_timeout_s)
    return dashboard_factory(cfg.dashboard_timeout_s, lambda: api_credentials(kube.api_client.configuration))


def rayjob_options(cfg: OperatorConfig) -> RayJobOptions:
    return RayJobOptions(
        poll_interval_s=cfg.rayjob_requeue_s,
        cluster_domain=cfg.pod_options.cluster_domain,
        delete_rayjob_after_finish=cfg.delete_rayjob_cr_after_job_finishes,
    )


def reconcile_rayjob(
    kube: Kube, cfg: OperatorConfig, namespace: str, name: str, dashboards: DashboardFactory | None = None
) -> Result:
    rayjob = kube.get_custom(c.RAYJOB_PLURAL, namespace, name)
    if rayjob is None:
        metrics.forget_job(namespace, name)
        return Result()
    dashboards = dashboards or default_dashboard_factory(kube, cfg)
    world = _read_world(kube, rayjob, dashboards)
    options = rayjob_options(cfg)
    decision = rayjob_state.decide(world, options)
    work = _Actions(kube, world, dashboards)
    try:
        work.carry_out(decision.actions)
    except _DashboardRefused as err:
        # The dashboard would not take the submission: that is what it says about the job now.
        decision = rayjob_state.decide(dataclasses.replace(world, job_info=DashboardUnreachable(str(err))), options)
        work.carry_out(decision.actions)
    except _ApiRefused:
        return Result(cfg.error_requeue_s, failed=True)  # the Warning event says why; nothing else changed
    if rayjob["metadata"].get("deletionTimestamp"):
        metrics.forget_job(namespace, name)
        return Result()
    if decision.status is not None:
        write_status(kube, c.RAYJOB_PLURAL, rayjob, decision.status)
        metrics.observe_job(rayjob)
    return Result(decision.requeue_after_s)


def _read_world(kube: Kube, rayjob: dict[str, Any], dashboards: DashboardFactory) -> RayJobWorld:
    """Everything the state machine looks at: the job's cluster, head Service, submitter, Ray job."""
    meta = rayjob["metadata"]
    namespace, name = meta.get("namespace") or "default", meta["name"]
    status = rayjob.get("status") or {}
    cluster_name = status.get("rayClusterName")
    cluster = kube.get_custom(c.RAYCLUSTER_PLURAL, namespace, cluster_name) if cluster_name else None
    head_service = kube.get_service(namespace, names.head_service_name(cluster)) if cluster else None
    job_info: dict[str, Any] | DashboardUnreachable | None = None
    if head_service is not None and rayjob_state.asks_dashboard(rayjob):
        try:
            job_info = dashboard_client(kube, dashboards, rayjob, cluster, head_service).get_job_info(status["jobId"])
        except DashboardError as err:
            job_info = DashboardUnreachable(str(err))
    return RayJobWorld(
        rayjob=rayjob,
        cluster=cluster,
        head_service=head_service,
        submitter=kube.get_job(namespace, name),
        job_info=job_info,
        now=datetime.datetime.now(datetime.UTC),
        new_suffixes=(names.random_suffix(), names.random_suffix()),
    )


def dashboard_client(kube: Kube, dashboards: DashboardFactory, rayjob: dict[str, Any], cluster: dict[str, Any] | None,
                     head_service: dict[str, Any]) -> DashboardClient:
    """A client of the cluster's dashboard that sends the cluster's token, read from its Secret."""
    if cluster is None or not auth.token_enabled(cluster):
        return dashboards(rayjob, head_service)
    secret = kube.get_secret(names.cluster_namespace(cluster), auth.secret_name(cluster))
    hint = f"Read the cluster's token with: {auth.read_token_command(cluster)}"
    return dashboards(rayjob, head_service, auth.token_from_secret(secret), hint)


class _ApiRefused(Exception):
    """The API server refused to create something (already reported as a Warning event)."""


class _DashboardRefused(Exception):
    """The dashboard did not take an HTTPMode submission."""


class _Actions:
    """Carries out a decision's actions in order, each at most once per reconcile."""

    def __init__(self, kube: Kube, world: RayJobWorld, dashboards: DashboardFactory) -> None:
        self.kube = kube
        self.world = world
        self.rayjob = world.rayjob
        self.namespace: str = world.rayjob["metadata"].get("namespace") or "default"
        self.name: str = world.rayjob["metadata"]["name"]
        self.dashboards = dashboards
        self.done: list[Action] = []

    def carry_out(self, actions: tuple[Action, ...]) -> None:
        for action in actions:
            if action not in self.done:
                self._one(action)
                self.done.append(action)

    def _event(self, event: Event) -> None:
        self.kube.event(self.rayjob, event.type, event.reason, event.message)

    def _dashboard(self) -> DashboardClient:
        assert self.world.head_service is not None, "the state machine only calls a dashboard it can reach"
        return dashboard_client(self.kube, self.dashboards, self.rayjob, self.world.cluster, self.world.head_service)

    def _one(self, action: Action) -> None:
        match action:
            case Event():
                self._event(action)
            case AddFinalizer(finalizers=finalizers):
                self.kube.patch_custom(c.RAYJOB_PLURAL, self.namespace, self.name, {"metadata": {"finalizers": list(finalizers)}})
            case RemoveFinalizer(before=before, after=after):
                patch = [
                    {"op": "test", "path": "/metadata/finalizers", "value": list(before)},
                    {"op": "replace", "path": "/metadata/finalizers", "value": list(after)},
                ]
                self.kube.patch_custom(c.RAYJOB_PLURAL, self.namespace, self.name, patch)
            case CreateCluster(body=body) | CreateSubmitterJob(body=body):
                try:
                    if isinstance(action, CreateCluster):
                        self.kube.create_custom(c.RAYCLUSTER_PLURAL, body)
                    else:
                        self.kube.create_job(body)
                except Exception as err:
                    self.kube.event(self.rayjob, events.WARNING, action.failure_reason, describe_api_error(err))
                    raise _ApiRefused from err
                self._event(action.created)
            case ApplyService(body=body):
                self._apply_service(body)
            case SubmitViaHTTP(body=body, submitted=submitted):
                try:
                    self._dashboard().submit_job(body)
                except DashboardError as err:
                    raise _DashboardRefused(str(err)) from err
                self._event(submitted)
            case StopJob(job_id=job_id, stopped=stopped):
                try:
                    self._dashboard().stop_job(job_id)
                except DashboardError as err:  # the RayJob goes anyway; its cluster goes with it
                    log.info("could not stop Ray job %s: %s", job_id, err)
                    return
                self._event(stopped)
            case DeleteCluster(name=cluster_name, deleted=deleted):
                self.kube.delete_custom(c.RAYCLUSTER_PLURAL, self.namespace, cluster_name)
                self._event(deleted)
            case DeleteSubmitterJob(name=job_name):
                self.kube.delete_job(self.namespace, job_name)
            case DeleteRayJob():
                self.kube.delete_custom(c.RAYJOB_PLURAL, self.namespace, self.name)

    def _apply_service(self, desired: dict[str, Any]) -> None:
        """Create `<rayjob>-head-svc`, or move its selector to the current cluster's head."""
        service_name = desired["metadata"]["name"]
        try:
            existing = self.kube.get_service(self.namespace, service_name)
            if existing is None:
                self.kube.create_service(desired)
            elif (existing.get("spec") or {}).get("selector") != desired["spec"]["selector"]:
                self.kube.patch_service(self.namespace, service_name, {"spec": {"selector": desired["spec"]["selector"]}})
        except Exception as err:
            log.info("could not apply Service %s: %s", service_name, describe_api_error(err))
