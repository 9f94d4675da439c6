"""What the reconcilers share: their result type and the status write that changes nothing when nothing changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ray_operator.kube import Kube, is_not_found


@dataclass(frozen=True)
class Result:
    """When to look at the object again (None: only when something about it changes)."""

    requeue_after: float | None = None
    failed: bool = False  # the work queue backs off on repeated failures


def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch turning `old` into `new` (keys that disappear are set to None)."""
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


def write_status(kube: Kube, plural: str, obj: dict[str, Any], new_status: dict[str, Any]) -> bool:
    """Patch the status subresource when it differs; True when something was written."""
    old = obj.get("status") or {}
    patch = status_patch(old, new_status)
    if not patch:
        return False
    try:
        updated = kube.patch_custom_status(plural, obj["metadata"]["namespace"], obj["metadata"]["name"], patch)
    except Exception as err:
        if is_not_found(err):
            return False
        raise
    obj["status"] = updated.get("status", new_status)
    obj["metadata"]["resourceVersion"] = updated["metadata"].get("resourceVersion")
    return True


def describe_api_error(err: Exception) -> str:
    """The API server's own message for a failed call (e.g. why it rejected a pod), else the exception."""
    body = getattr(err, "body", None)
    if body:
        try:
            return json.loads(body).get("message", str(body))
        except (ValueError, AttributeError):
            return str(body)
    return str(err)
