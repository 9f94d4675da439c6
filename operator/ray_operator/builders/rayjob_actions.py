"""What the RayJob state machine (`rayjob_state.decide`) asks the reconciler to do, as plain values.

A `Decision` is the next status plus the actions that get there, carried out in order *before* the
status is written (so a status never claims what did not happen). How each action can fail, and what
the reconciler then does, is part of its contract and written on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ray_operator import events


@dataclass(frozen=True)
class Event:
    """A core/v1 Event on the RayJob (`kubectl describe rayjob`)."""

    type: str  # events.NORMAL or events.WARNING
    reason: str  # an events.* constant
    message: str


@dataclass(frozen=True)
class AddFinalizer:
    """Set `metadata.finalizers` to `finalizers` (a merge patch), so a deleted RayJob can stop its Ray job first."""

    finalizers: tuple[str, ...]


@dataclass(frozen=True)
class RemoveFinalizer:
    """Replace `before` by `after` in `metadata.finalizers`, guarded by a JSON-patch `test` on `before`."""

    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class CreateCluster:
    """Create the RayJob's RayCluster, then post `created`. If the API server refuses: a Warning event
    with `failure_reason` and its message, nothing after it runs, no status is written, back off."""

    body: dict[str, Any]
    created: Event
    failure_reason: ClassVar[str] = events.FAILED_TO_CREATE_RAYCLUSTER


@dataclass(frozen=True)
class CreateSubmitterJob:
    """Create the submitter Kubernetes Job (K8sJobMode), then post `created`. Fails as CreateCluster does."""

    body: dict[str, Any]
    created: Event
    failure_reason: ClassVar[str] = events.FAILED_TO_CREATE_RAYJOB_SUBMITTER


@dataclass(frozen=True)
class ApplyService:
    """Create the RayJob's own head Service (`<rayjob>-head-svc`), or point its selector at the current
    cluster. A failure is logged and the reconcile goes on: the Service is a convenience."""

    body: dict[str, Any]


@dataclass(frozen=True)
class SubmitViaHTTP:
    """HTTPMode: `POST /api/jobs/` on the cluster's dashboard, then post `submitted`. If the dashboard
    cannot take it, that is an observation: the reconciler decides again with `DashboardUnreachable`."""

    job_id: str
    body: dict[str, Any]
    submitted: Event


@dataclass(frozen=True)
class StopJob:
    """`POST /api/jobs/<id>/stop`, then post `stopped`. A failure is logged and the rest goes on."""

    job_id: str
    stopped: Event


@dataclass(frozen=True)
class DeleteCluster:
    """Delete the RayCluster `name` (gone already is fine), then post `deleted`."""

    name: str
    deleted: Event


@dataclass(frozen=True)
class DeleteSubmitterJob:
    """Delete the submitter Job `name` and its pods (gone already is fine)."""

    name: str


@dataclass(frozen=True)
class DeleteRayJob:
    """Delete the RayJob itself (the operator's DELETE_RAYJOB_CR_AFTER_JOB_FINISHES)."""


Action = (
    Event
    | AddFinalizer
    | RemoveFinalizer
    | CreateCluster
    | CreateSubmitterJob
    | ApplyService
    | SubmitViaHTTP
    | StopJob
    | DeleteCluster
    | DeleteSubmitterJob
    | DeleteRayJob
)


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any] | None  # the whole next status; None: leave it alone (deleting, or not ours)
    actions: tuple[Action, ...] = ()
    requeue_after_s: float | None = None  # look again after this long; None: when something changes
