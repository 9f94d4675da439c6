"""What a RayJob makes: its RayCluster, the `ray job submit` command and the submitter Kubernetes Job."""

from __future__ import annotations

import copy
import json
import shlex
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import auth, names
from ray_operator.builders.runtime_env import decode_runtime_env, runtime_env_json


def submission_mode(rayjob: dict[str, Any]) -> str:
    return rayjob["spec"].get("submissionMode") or c.MODE_K8S_JOB


def new_job_id(rayjob: dict[str, Any], suffix: str) -> str:
    """`spec.jobId`, else `<rayjob>-<5 random chars>` (the Ray submission id)."""
    return rayjob["spec"].get("jobId") or f"{rayjob['metadata']['name']}-{suffix}"


def new_cluster_name(rayjob: dict[str, Any], suffix: str) -> str:
    """The cluster to run on: the clusterSelector's, else `<rayjob>-raycluster-<suffix>`.

    KubeRay <= v1.0 named it `<rayjob>-raycluster-xxxxx`; when that would pass the 53-character
    cluster-name limit, v1.7's shorter `<rayjob>-xxxxx` is used.
    """
    selector = rayjob["spec"].get("clusterSelector") or {}
    if selector.get(c.LABEL_CLUSTER):
        return selector[c.LABEL_CLUSTER]
    name = rayjob["metadata"]["name"]
    long_name = f"{name}-raycluster-{suffix}"
    return long_name if len(long_name) <= c.MAX_RAYCLUSTER_NAME_LENGTH else f"{name}-{suffix}"


def build_rayjob_cluster(rayjob: dict[str, Any], cluster_name: str) -> dict[str, Any]:
    """The RayCluster a RayJob owns: a copy of `rayClusterSpec` labelled back to the RayJob."""
    meta = rayjob["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[c.LABEL_ORIGINATED_FROM_CR_NAME] = meta["name"]
    labels[c.LABEL_ORIGINATED_FROM_CRD] = c.ORIGINATED_FROM_RAYJOB
    labels[c.LABEL_JOB_SUBMISSION_MODE] = submission_mode(rayjob)
    metadata: dict[str, Any] = {
        "name": cluster_name,
        "namespace": meta.get("namespace") or "default",
        "labels": labels,
        "ownerReferences": [names.owner_reference(rayjob)],
    }
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("kubectl.kubernetes.io/")}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": "RayCluster",
        "metadata": metadata,
        "spec": copy.deepcopy(rayjob["spec"]["rayClusterSpec"]),
    }


def dashboard_url(head_service: dict[str, Any], cluster_domain: str = c.CLUSTER_DOMAIN_DEFAULT) -> str:
    """`<head-svc>.<ns>.svc.cluster.local:<dashboard port>` (no scheme), as `status.dashboardURL`."""
    port = c.DEFAULT_DASHBOARD_PORT
    for item in (head_service.get("spec") or {}).get("ports") or []:
        if item.get("name") == c.DASHBOARD_PORT_NAME:
            port = item["port"]
    meta = head_service["metadata"]
    return f"{meta['name']}.{meta.get('namespace', 'default')}.svc.{cluster_domain}:{port}"


def submit_args(rayjob: dict[str, Any], job_id: str, address: str) -> list[str]:
    """`ray job submit …` as argv, everything before the entrypoint."""
    spec = rayjob["spec"]
    args = ["ray", "job", "submit", "--address", address, "--no-wait"]
    env_json = runtime_env_json(spec)
    if env_json:
        args += ["--runtime-env-json", env_json]
    if spec.get("metadata"):
        args += ["--metadata-json", json.dumps(spec["metadata"], separators=(",", ":"))]
    args += ["--submission-id", job_id]
    if spec.get("entrypointNumCpus"):
        args += ["--entrypoint-num-cpus", _number(spec["entrypointNumCpus"])]
    if spec.get("entrypointNumGpus"):
        args += ["--entrypoint-num-gpus", _number(spec["entrypointNumGpus"])]
    if spec.get("entrypointResources"):
        args += ["--entrypoint-resources", spec["entrypointResources"]]
    return args


def submitter_command(rayjob: dict[str, Any], job_id: str, dashboard: str) -> str:
    """KubeRay's (v1.3+) idempotent submitter script: wait for the dashboard, submit once, follow the logs.

    A submitter pod that restarts finds the job already there (`ray job status` succeeds) and only
    follows its logs, so a retry never submits the same submission id twice.
    """
    address = f"http://{dashboard}"
    probe = (
        "import urllib.request, sys; "
        f"r = urllib.request.urlopen('{address}/api/gcs_healthz', timeout=10); "
        "sys.exit(0 if b'success' in r.read() else 1)"
    )
    submit = " ".join(shlex.quote(a) for a in submit_args(rayjob, job_id, address))
    entrypoint = rayjob["spec"].get("entrypoint", "")
    return (
        f"until python -c {shlex.quote(probe)} >/dev/null 2>&1 ; "
        f'do echo "Waiting for Ray Dashboard GCS to become healthy at {address} ..." ; sleep 2 ; done ; '
        f"if ! ray job status --address {address} {shlex.quote(job_id)} >/dev/null 2>&1 ; "
        f"then {submit} -- {entrypoint} ; fi ; "
        f"ray job logs --address {address} --follow {shlex.quote(job_id)}"
    )


def build_submitter_job(
    rayjob: dict[str, Any], cluster: dict[str, Any], job_id: str, dashboard: str
) -> dict[str, Any]:
    """The batch/v1 Job `<rayjob>` that submits the entrypoint (K8sJobMode)."""
    spec = rayjob["spec"]
    meta = rayjob["metadata"]
    head_container = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    template = copy.deepcopy(spec.get("submitterPodTemplate") or {})
    pod_spec = template.setdefault("spec", {})
    if not pod_spec.get("containers"):
        container: dict[str, Any] = {
            "name": c.SUBMITTER_CONTAINER_NAME,
            "image": head_container.get("image"),
            "resources": {
                "limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "500m", "memory": "200Mi"},
            },
        }
        if head_container.get("imagePullPolicy"):
            container["imagePullPolicy"] = head_container["imagePullPolicy"]
        pod_spec["containers"] = [container]
    pod_spec.setdefault("restartPolicy", "Never")
    submitter = pod_spec["containers"][0]
    if not submitter.get("command"):
        submitter["command"] = ["/bin/bash", "-ce", "--"]
        submitter["args"] = [submitter_command(rayjob, job_id, dashboard)]
    env = submitter.setdefault("env", [])
    present = {e.get("name") for e in env}
    for name, value in (
        ("PYTHONUNBUFFERED", "1"),
        ("RAY_DASHBOARD_ADDRESS", dashboard),
        ("RAY_JOB_SUBMISSION_ID", job_id),
    ):
        if name not in present:
            env.append({"name": name, "value": value})
    auth.add_auth_env(env, cluster)  # `ray job submit/status/logs` send the cluster's token
    labels = {
        c.LABEL_ORIGINATED_FROM_CR_NAME: meta["name"],
        c.LABEL_ORIGINATED_FROM_CRD: c.ORIGINATED_FROM_RAYJOB,
        c.LABEL_CREATED_BY: c.CREATED_BY,
    }
    template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    backoff = (spec.get("submitterConfig") or {}).get("backoffLimit")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace") or "default",
            "labels": labels,
            "ownerReferences": [names.owner_reference(rayjob)],
        },
        "spec": {"backoffLimit": 2 if backoff is None else backoff, "template": template},
    }


def http_submit_body(rayjob: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The body of `POST /api/jobs/` in HTTPMode (Ray's JobSubmitRequest fields)."""
    spec = rayjob["spec"]
    body: dict[str, Any] = {"entrypoint": spec.get("entrypoint", ""), "submission_id": job_id}
    runtime_env = decode_runtime_env(spec)
    if runtime_env is not None:
        body["runtime_env"] = runtime_env
    if spec.get("metadata"):
        body["metadata"] = spec["metadata"]
    if spec.get("entrypointNumCpus"):
        body["entrypoint_num_cpus"] = spec["entrypointNumCpus"]
    if spec.get("entrypointNumGpus"):
        body["entrypoint_num_gpus"] = spec["entrypointNumGpus"]
    if spec.get("entrypointResources"):
        body["entrypoint_resources"] = json.loads(spec["entrypointResources"])
    return body


def _number(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
