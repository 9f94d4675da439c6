"""The reasons of the Kubernetes Events the operator posts, in one place.

They are KubeRay's (v1.7 `utils/constant.go`, type `K8sEventType`) wherever KubeRay posts the same
event, so `kubectl describe`, `kubectl get events --field-selector reason=…` and alert rules written
for KubeRay read the same here. Those marked "OpenRay's own" have no KubeRay counterpart.
"""

from __future__ import annotations

# Event types (core/v1 Event.type).
NORMAL = "Normal"
WARNING = "Warning"

# RayCluster: spec, head and worker pods, head Service.
INVALID_RAYCLUSTER_SPEC = "InvalidRayClusterSpec"
CREATED_HEAD_POD = "CreatedHeadPod"
FAILED_TO_CREATE_HEAD_POD = "FailedToCreateHeadPod"
DELETED_HEAD_POD = "DeletedHeadPod"
FAILED_TO_DELETE_HEAD_POD = "FailedToDeleteHeadPod"
CREATED_WORKER_POD = "CreatedWorkerPod"
FAILED_TO_CREATE_WORKER_POD = "FailedToCreateWorkerPod"
DELETED_WORKER_POD = "DeletedWorkerPod"
FAILED_TO_DELETE_WORKER_POD = "FailedToDeleteWorkerPod"
CREATED_SERVICE = "CreatedService"
FAILED_TO_CREATE_SERVICE = "FailedToCreateService"
CREATED_SERVICE_ACCOUNT = "CreatedServiceAccount"
FAILED_TO_CREATE_SERVICE_ACCOUNT = "FailedToCreateServiceAccount"
AUTOSCALER_SERVICE_ACCOUNT_NOT_FOUND = "AutoscalerServiceAccountNotFound"
CREATED_ROLE = "CreatedRole"
FAILED_TO_CREATE_ROLE = "FailedToCreateRole"
CREATED_ROLE_BINDING = "CreatedRoleBinding"
FAILED_TO_CREATE_ROLE_BINDING = "FailedToCreateRoleBinding"
CREATED_AUTH_SECRET = "CreatedSecret"  # OpenRay's own: the Secret with the cluster's auth token was made
FAILED_TO_CREATE_AUTH_SECRET = "FailedToCreateSecret"  # OpenRay's own: making that Secret failed
INVALID_AUTH_SECRET = "InvalidAuthSecret"  # OpenRay's own: authOptions.secretName missing, or no auth_token key

# RayJob: spec, its RayCluster, the submitter Job, the Ray job on the dashboard.
CREATED_REDIS_CLEANUP_JOB = "CreatedRedisCleanupJob"
FAILED_TO_CREATE_REDIS_CLEANUP_JOB = "FailedToCreateRedisCleanupJob"
REDIS_CLEANUP_FAILED = "RedisCleanupJobFailed"  # OpenRay's own: the cleanup Job failed; the finalizer goes anyway
REDIS_CLEANUP_TIMED_OUT = "RedisCleanupTimedOut"  # OpenRay's own: 300 s passed; the finalizer goes anyway
INVALID_RAYJOB_SPEC = "InvalidRayJobSpec"
CREATED_RAYCLUSTER = "CreatedRayCluster"
FAILED_TO_CREATE_RAYCLUSTER = "FailedToCreateRayCluster"
DELETED_RAYCLUSTER = "DeletedRayCluster"
CREATED_RAYJOB_SUBMITTER = "CreatedRayJobSubmitter"
FAILED_TO_CREATE_RAYJOB_SUBMITTER = "FailedToCreateRayJobSubmitter"
SUBMITTED_RAYJOB = "SubmittedRayJob"  # OpenRay's own: HTTPMode submitted the Ray job to the dashboard
STOPPED_RAYJOB = "StoppedRayJob"  # OpenRay's own: the RayJob was deleted while its Ray job still ran
