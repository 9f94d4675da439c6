"""Semantic checks of RayCluster and RayJob specs that the CRD schema cannot express.

Each problem is one sentence that says what is wrong and how to fix it; the handlers put the
first one in the status and a Warning event, and stop reconciling that object until it changes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import gcs_ft, quantity
from ray_operator.builders.runtime_env import RuntimeEnvError, decode_runtime_env

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def raycluster_errors(cluster: dict[str, Any]) -> list[str]:
    """Every problem in a RayCluster (empty when it is valid)."""
    name = cluster.get("metadata", {}).get("name", "")
    errors = _name_errors("RayCluster", name, c.MAX_RAYCLUSTER_NAME_LENGTH)
    errors += cluster_spec_errors(cluster.get("spec") or {}, "spec")
    errors += gcs_ft.errors(cluster)
    return errors


def rayjob_errors(rayjob: dict[str, Any]) -> list[str]:
    """Every problem in a RayJob (empty when it is valid)."""
    name = rayjob.get("metadata", {}).get("name", "")
    spec = rayjob.get("spec") or {}
    errors = _name_errors("RayJob", name, c.MAX_RAYJOB_NAME_LENGTH)
    try:
        decode_runtime_env(spec)
    except RuntimeEnvError as err:
        errors.append(str(err))
    mode = spec.get("submissionMode") or c.MODE_K8S_JOB
    if mode not in c.SUPPORTED_SUBMISSION_MODES:
        errors.append(
            f"spec.submissionMode {mode!r} is not supported; use one of {', '.join(c.SUPPORTED_SUBMISSION_MODES)}"
        )
    selector = spec.get("clusterSelector") or {}
    if not spec.get("rayClusterSpec") and not selector:
        errors.append("one of spec.rayClusterSpec or spec.clusterSelector is required; set the cluster to run the job on")
    if selector:
        if c.LABEL_CLUSTER not in selector:
            errors.append(f"spec.clusterSelector must name the cluster with the key {c.LABEL_CLUSTER!r}")
        if spec.get("suspend"):
            errors.append("spec.suspend cannot be used with spec.clusterSelector: the job does not own that cluster")
        if (spec.get("backoffLimit") or 0) > 0:
            errors.append("spec.backoffLimit cannot be used with spec.clusterSelector: a retry needs a new cluster")
    elif spec.get("rayClusterSpec"):
        errors += cluster_spec_errors(spec["rayClusterSpec"], "spec.rayClusterSpec")
    if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
        errors.append("spec.suspend requires spec.shutdownAfterJobFinishes: true (a suspended job deletes its cluster)")
    if mode == c.MODE_HTTP and spec.get("submitterPodTemplate"):
        errors.append("spec.submitterPodTemplate is only used in K8sJobMode; remove it or drop submissionMode: HTTPMode")
    if not (spec.get("entrypoint") or "").strip() and not _submitter_has_command(spec):
        errors.append("spec.entrypoint is empty; set the command to run, e.g. 'python /home/ray/samples/job.py'")
    for field in ("backoffLimit", "ttlSecondsAfterFinished"):
        if (spec.get(field) or 0) < 0:
            errors.append(f"spec.{field} must be >= 0, got {spec[field]}")
    if spec.get("activeDeadlineSeconds") is not None and spec["activeDeadlineSeconds"] <= 0:
        errors.append(f"spec.activeDeadlineSeconds must be > 0, got {spec['activeDeadlineSeconds']}")
    errors += _entrypoint_resources_errors(spec.get("entrypointResources"))
    return errors


def _auth_errors(options: dict[str, Any], where: str) -> list[str]:
    errors = []
    mode = options.get("mode")
    if mode is not None and mode not in c.AUTH_MODES:
        errors.append(f"{where}.mode {mode!r} is not supported; use one of {', '.join(c.AUTH_MODES)}")
    if options.get("enableK8sTokenAuth"):
        errors.append(f"{where}.enableK8sTokenAuth is not supported by OpenRay; remove it to use the token "
                      "from the cluster's Secret")
    if mode == c.AUTH_MODE_DISABLED and options.get("secretName"):
        errors.append(f"{where}.secretName has no effect with mode: disabled; remove one of them")
    return errors


def cluster_spec_errors(spec: dict[str, Any], where: str) -> list[str]:
    """Problems in a RayClusterSpec found at `where` (e.g. `spec.rayClusterSpec`)."""
    errors: list[str] = []
    head = spec.get("headGroupSpec")
    if not head:
        return [f"{where}.headGroupSpec is required"]
    errors += _group_errors(head, f"{where}.headGroupSpec")
    errors += _auth_errors(spec.get("authOptions") or {}, f"{where}.authOptions")
    seen: set[str] = set()
    for index, group in enumerate(spec.get("workerGroupSpecs") or []):
        at = f"{where}.workerGroupSpecs[{index}]"
        group_name = group.get("groupName") or ""
        if not group_name:
            errors.append(f"{at}.groupName is required")
        elif group_name in seen:
            errors.append(f"{at}.groupName {group_name!r} is used by more than one worker group; names must be unique")
        seen.add(group_name)
        errors += _group_errors(group, at)
        errors += _replica_errors(group, at)
        if group.get("suspend") and spec.get("enableInTreeAutoscaling"):
            errors.append(f"{at}.suspend cannot be used with enableInTreeAutoscaling")
    return errors


def _name_errors(kind: str, name: str, limit: int) -> list[str]:
    errors = []
    if len(name) > limit:
        errors.append(
            f"{kind} name {name!r} is {len(name)} characters; it must be at most {limit} "
            "(the operator appends suffixes to it), choose a shorter name"
        )
    if name and not _DNS1035.match(name):
        errors.append(
            f"{kind} name {name!r} must be a DNS-1035 label: lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return errors


def _group_errors(group: dict[str, Any], at: str) -> list[str]:
    errors = []
    containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers:
        errors.append(f"{at}.template.spec.containers is empty; the first container must be the Ray container")
    else:
        resources = containers[0].get("resources") or {}
        for kind in ("limits", "requests"):
            for key, value in (resources.get(kind) or {}).items():
                try:
                    quantity.parse(value)
                except ValueError as err:
                    errors.append(f"{at}.template.spec.containers[0].resources.{kind}.{key}: {err}")
    params = group.get("rayStartParams") or {}
    if group.get("resources") and "resources" in params:
        errors.append(f"{at}: set Ray resources either in .resources or in .rayStartParams.resources, not both")
    if "labels" in params:
        errors.append(f"{at}.rayStartParams.labels is not allowed; put Ray node labels in {at}.labels")
    return errors


def _replica_errors(group: dict[str, Any], at: str) -> list[str]:
    errors = []
    minimum = group.get("minReplicas", 0) or 0
    maximum = group.get("maxReplicas", c.MAX_INT32)
    maximum = c.MAX_INT32 if maximum is None else maximum
    for field, value in (("replicas", group.get("replicas")), ("minReplicas", minimum), ("maxReplicas", maximum)):
        if value is not None and value < 0:
            errors.append(f"{at}.{field} must be >= 0, got {value}")
    if minimum > maximum:
        errors.append(f"{at}.minReplicas ({minimum}) is greater than maxReplicas ({maximum}); make min <= max")
    if (group.get("numOfHosts") or 1) < 1:
        errors.append(f"{at}.numOfHosts must be >= 1, got {group['numOfHosts']}")
    return errors


def _entrypoint_resources_errors(text: str | None) -> list[str]:
    if not text:
        return []
    hint = 'spec.entrypointResources must be a JSON object of numbers, e.g. \'{"custom": 1}\''
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return [f"{hint}: {err}"]
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        return [f"{hint}; got {text!r}"]
    return []


def _submitter_has_command(spec: dict[str, Any]) -> bool:
    containers = ((spec.get("submitterPodTemplate") or {}).get("spec") or {}).get("containers") or []
    return bool(containers and containers[0].get("command"))
