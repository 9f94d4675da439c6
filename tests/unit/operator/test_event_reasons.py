"""Event reasons are named constants (ray_operator/events.py), never string literals at the call site."""

from __future__ import annotations

import ast
from pathlib import Path

import ray_operator
from ray_operator import events

PACKAGE = Path(ray_operator.__file__).parent
# KubeRay v1.7's K8sEventType values (utils/constant.go) that this operator posts.
KUBERAY_REASONS = {
    "InvalidRayClusterSpec", "CreatedHeadPod", "FailedToCreateHeadPod", "DeletedHeadPod", "FailedToDeleteHeadPod",
    "CreatedWorkerPod", "FailedToCreateWorkerPod", "DeletedWorkerPod", "FailedToDeleteWorkerPod", "CreatedService",
    "FailedToCreateService", "InvalidRayJobSpec", "CreatedRayCluster", "FailedToCreateRayCluster", "DeletedRayCluster",
    "CreatedRayJobSubmitter", "FailedToCreateRayJobSubmitter", "CreatedServiceAccount",
    "FailedToCreateServiceAccount", "AutoscalerServiceAccountNotFound", "CreatedRole", "FailedToCreateRole",
    "CreatedRoleBinding", "FailedToCreateRoleBinding", "CreatedRedisCleanupJob", "FailedToCreateRedisCleanupJob",
}
OPENRAY_REASONS = {"SubmittedRayJob", "StoppedRayJob", "CreatedSecret", "FailedToCreateSecret", "InvalidAuthSecret",
                   "RedisCleanupJobFailed", "RedisCleanupTimedOut"}


def _reasons() -> dict[str, str]:
    return {name: value for name, value in vars(events).items() if name.isupper() and name not in ("NORMAL", "WARNING")}


def test_reasons_are_kuberays_or_marked_as_openrays_own():
    values = list(_reasons().values())
    assert len(values) == len(set(values)), "two constants name the same reason"
    assert set(values) == KUBERAY_REASONS | OPENRAY_REASONS
    source = (PACKAGE / "events.py").read_text()
    for name, value in _reasons().items():
        line = next(x for x in source.splitlines() if x.startswith(f"{name} ="))
        assert ("OpenRay's own" in line) == (value in OPENRAY_REASONS), line


def _event_calls(tree: ast.AST):
    """`kube.event(obj, type, reason, message)`, `Event(type, reason, message)` and their keyword forms."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        is_kopf_watch = isinstance(node.func, ast.Attribute) and getattr(node.func.value, "attr", "") == "on"
        if name == "event" and not is_kopf_watch:
            yield node, node.args[1:3], [k.value for k in node.keywords if k.arg in ("event_type", "reason")]
        elif name == "Event":
            yield node, node.args[0:2], [k.value for k in node.keywords if k.arg in ("type", "reason")]


def test_no_event_type_or_reason_is_a_string_literal():
    offenders = []
    calls = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        for node, positional, keywords in _event_calls(ast.parse(path.read_text())):
            calls += 1
            for arg in [*positional, *keywords]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {arg.value!r}")
    assert calls >= 10, "the scan found no event calls; has the API changed?"
    assert not offenders, "use ray_operator.events constants:\n" + "\n".join(offenders)
