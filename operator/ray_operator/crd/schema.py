"""OpenAPI v3 schemas of RayCluster and RayJob: KubeRay's field names and defaults, compact.

Pod templates and rarely used sub-structures keep `x-kubernetes-preserve-unknown-fields`, so the
CRDs stay small enough for a client-side `kubectl apply` (KubeRay's embed full PodTemplateSpecs
and are too big for the last-applied annotation).
"""

from __future__ import annotations

from typing import Any

from ray_operator import constants as c

Schema = dict[str, Any]


def _str(description: str = "") -> Schema:
    return {"type": "string", **({"description": description} if description else {})}


def _bool(description: str = "") -> Schema:
    return {"type": "boolean", **({"description": description} if description else {})}


def _int32(description: str = "", default: int | None = None, minimum: int | None = None) -> Schema:
    schema: Schema = {"type": "integer", "format": "int32"}
    if default is not None:
        schema["default"] = default
    if minimum is not None:
        schema["minimum"] = minimum
    if description:
        schema["description"] = description
    return schema


def _string_map(description: str = "") -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
    if description:
        schema["description"] = description
    return schema


def _free_object(description: str) -> Schema:
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "description": description}


def _pod_template(description: str) -> Schema:
    return _free_object(description + " A Kubernetes PodTemplateSpec; container[0] is the Ray container.")


def head_group_schema() -> Schema:
    return {
        "type": "object",
        "required": ["template"],
        "properties": {
            "rayStartParams": _string_map("Flags of `ray start` (without `--`); values are strings."),
            "template": _pod_template("The head pod."),
            "serviceType": _str("Type of the head Service; empty or ClusterIP makes it headless."),
            "headService": _free_object("A custom head Service; its name overrides <cluster>-head-svc."),
            "enableIngress": _bool(),
            "resources": _string_map("Ray resources of the head; overrides rayStartParams.resources."),
            "labels": _string_map("Ray node labels of the head."),
        },
    }


def worker_group_schema() -> Schema:
    return {
        "type": "object",
        "required": ["groupName", "template"],
        "properties": {
            "groupName": _str("Unique name of the worker group."),
            "replicas": _int32("Desired pods of the group, clamped to [minReplicas, maxReplicas].", default=0),
            "minReplicas": _int32(default=0),
            "maxReplicas": _int32(default=c.MAX_INT32),
            "numOfHosts": _int32("Pods per replica.", default=1),
            "rayStartParams": _string_map("Flags of `ray start` (without `--`); values are strings."),
            "template": _pod_template("The worker pods."),
            "scaleStrategy": {
                "type": "object",
                "properties": {
                    "workersToDelete": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Names of worker pods to delete; the operator deletes them and clears this list.",
                    }
                },
            },
            "suspend": _bool("Deletes the group's pods (used by the RayJob DeleteWorkers policy)."),
            "idleTimeoutSeconds": _int32(),
            "resources": _string_map("Ray resources of the group; overrides rayStartParams.resources."),
            "labels": _string_map("Ray node labels of the group."),
        },
    }


def _redis_credential(description: str) -> Schema:
    return {
        "type": "object",
        "description": description + " Exactly one of value or valueFrom.",
        "properties": {
            "value": _str(),
            "valueFrom": _free_object("An EnvVarSource, e.g. secretKeyRef: {name, key}."),
        },
    }


def gcs_fault_tolerance_schema() -> Schema:
    return {
        "type": "object",
        "description": "GCS fault tolerance: the GCS keeps its tables in Redis, so a new head picks up where the old "
                       "one stopped.",
        "required": ["redisAddress"],
        "properties": {
            # KubeRay also accepts rocksdb (an embedded store on a PVC); OpenRay's GCS persists to Redis only,
            # so the enum says so at `kubectl apply` instead of the cluster starting without fault tolerance.
            "backend": {"type": "string", "enum": ["redis"], "default": "redis",
                        "description": "Where the GCS persists its tables; OpenRay supports redis."},
            "redisAddress": _str("host:port of Redis, e.g. redis:6379 (redis:// or rediss:// URLs too)."),
            "redisUsername": _redis_credential("Redis user (ACL)."),
            "redisPassword": _redis_credential("Redis password."),
            "externalStorageNamespace": _str("Key prefix in Redis; the RayCluster's uid by default."),
        },
    }


def raycluster_spec_schema() -> Schema:
    return {
        "type": "object",
        "required": ["headGroupSpec"],
        "properties": {
            "rayVersion": _str("Ray version of the images; picks the health probes."),
            "headGroupSpec": head_group_schema(),
            "workerGroupSpecs": {"type": "array", "items": worker_group_schema()},
            "enableInTreeAutoscaling": _bool(),
            "autoscalerOptions": _free_object("Options of the autoscaler sidecar."),
            "headServiceAnnotations": _string_map(),
            "suspend": _bool("Deletes every pod while true; they are recreated when it turns false."),
            "managedBy": _str(),
            "gcsFaultToleranceOptions": gcs_fault_tolerance_schema(),
            "upgradeStrategy": _free_object("How pods are replaced when the spec changes."),
            "authOptions": {
                "type": "object",
                "description": "Token authentication of the cluster. OpenRay runs every cluster with a token unless "
                               "mode is disabled (KubeRay: only with mode: token).",
                "properties": {
                    "mode": {"type": "string", "enum": list(c.AUTH_MODES),
                             "description": "token (the default) or disabled."},
                    "secretName": _str("An existing Secret holding the token under the key auth_token; by default "
                                       "the operator makes the Secret <cluster> with a random token."),
                    "enableK8sTokenAuth": _bool("Kubernetes service-account tokens (not supported by OpenRay)."),
                },
            },
        },
    }


def rayjob_spec_schema() -> Schema:
    return {
        "type": "object",
        "properties": {
            "entrypoint": _str("The command `ray job submit` runs (after `--`)."),
            "runtimeEnvYAML": _str("Runtime environment as YAML (ray.io/v1)."),
            "runtimeEnv": _str("Runtime environment as base64-encoded JSON (the ray.io/v1alpha1 field of KubeRay <= v1.0)."),
            "jobId": _str("Submission id; default <rayjob>-<5 random characters>."),
            "metadata": _string_map("Job metadata (--metadata-json)."),
            "rayClusterSpec": raycluster_spec_schema(),
            "clusterSelector": _string_map("Run on an existing RayCluster named by the label ray.io/cluster."),
            "submissionMode": {"type": "string", "enum": [c.MODE_K8S_JOB, c.MODE_HTTP, c.MODE_INTERACTIVE, c.MODE_SIDECAR]},
            "submitterPodTemplate": _pod_template("The submitter Job's pod (K8sJobMode)."),
            "submitterConfig": {"type": "object", "properties": {"backoffLimit": _int32(minimum=0)}},
            "entrypointNumCpus": {"type": "number"},
            "entrypointNumGpus": {"type": "number"},
            "entrypointResources": _str('Custom resources of the entrypoint as JSON, e.g. {"bob": 1}.'),
            "shutdownAfterJobFinishes": _bool("Delete the RayCluster when the job finishes."),
            "ttlSecondsAfterFinished": _int32(default=0, minimum=0),
            "activeDeadlineSeconds": _int32("Seconds from startTime until the job is failed.", minimum=1),
            "preRunningDeadlineSeconds": _int32(minimum=1),
            "backoffLimit": _int32("Retries of the whole job, each on a new RayCluster.", default=0, minimum=0),
            "suspend": _bool("Deletes the cluster and pauses the job (requires shutdownAfterJobFinishes)."),
            "deletionStrategy": _free_object("What to delete after the job finishes."),
            "managedBy": _str(),
        },
    }


def status_schema() -> Schema:
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
