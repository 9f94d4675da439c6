"""KubeRay's names, labels, ports and defaults, in one place (KubeRay v1.7 `utils/constant.go`)."""

from __future__ import annotations

GROUP = "ray.io"
VERSION = "v1"
RAYCLUSTER_PLURAL = "rayclusters"
RAYJOB_PLURAL = "rayjobs"

KUBERAY_VERSION = "v1.7.0"

# Labels on every Ray pod (the first three cannot be overridden by the template).
LABEL_CLUSTER = "ray.io/cluster"
LABEL_NODE_TYPE = "ray.io/node-type"
LABEL_GROUP = "ray.io/group"
LABEL_IS_RAY_NODE = "ray.io/is-ray-node"
LABEL_IDENTIFIER = "ray.io/identifier"
LABEL_APP_NAME = "app.kubernetes.io/name"
LABEL_CREATED_BY = "app.kubernetes.io/created-by"
LABEL_ORIGINATED_FROM_CR_NAME = "ray.io/originated-from-cr-name"
LABEL_ORIGINATED_FROM_CRD = "ray.io/originated-from-crd"
LABEL_JOB_SUBMISSION_MODE = "ray.io/job-submission-mode"
APP_NAME = "kuberay"
CREATED_BY = "kuberay-operator"
# `ray.io/originated-from-crd` on what a RayJob makes (its RayCluster, submitter Job, Service).
ORIGINATED_FROM_RAYJOB = "RayJob"
# `spec.managedBy` values this operator acts on (unset, or this); others belong to e.g. MultiKueue.
MANAGED_BY_KUBERAY = "ray.io/kuberay-operator"

ANNOTATION_OVERWRITE_CONTAINER_CMD = "ray.io/overwrite-container-cmd"

NODE_TYPE_HEAD = "head"
NODE_TYPE_WORKER = "worker"
HEAD_GROUP_NAME = "headgroup"

# Default ports (name -> port) of the head Service when the head container declares none.
DEFAULT_GCS_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_CLIENT_PORT = 10001
DEFAULT_METRICS_PORT = 8080
DEFAULT_SERVE_PORT = 8000
DEFAULT_DASHBOARD_AGENT_LISTEN_PORT = 52365
DEFAULT_HEAD_PORTS: dict[str, int] = {
    "gcs-server": DEFAULT_GCS_PORT,
    "dashboard": DEFAULT_DASHBOARD_PORT,
    "client": DEFAULT_CLIENT_PORT,
    "metrics": DEFAULT_METRICS_PORT,
    "serve": DEFAULT_SERVE_PORT,
}
DASHBOARD_PORT_NAME = "dashboard"
METRICS_PORT_NAME = "metrics"

# Limits from KubeRay's validation (`-serve-svc` is the longest suffix; RayJob appends `-xxxxx`).
MAX_RAYCLUSTER_NAME_LENGTH = 53
MAX_RAYJOB_NAME_LENGTH = 47
MAX_GENERATE_NAME_PREFIX_LENGTH = 50
MAX_INT32 = 2147483647

SHARED_MEMORY_VOLUME_NAME = "shared-mem"
SHARED_MEMORY_MOUNT_PATH = "/dev/shm"
WAIT_GCS_READY_INIT_CONTAINER = "wait-gcs-ready"
SUBMITTER_CONTAINER_NAME = "ray-job-submitter"
RAYJOB_FINALIZER = "ray.io/rayjob-finalizer"

CLUSTER_DOMAIN_DEFAULT = "cluster.local"

# Letters KubeRay's (apimachinery's) random suffixes are drawn from: no vowels, no look-alikes.
RANDOM_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# RayCluster status values.
STATE_READY = "ready"
STATE_SUSPENDED = "suspended"
CONDITION_HEAD_POD_READY = "HeadPodReady"
CONDITION_PROVISIONED = "RayClusterProvisioned"
CONDITION_REPLICA_FAILURE = "ReplicaFailure"
CONDITION_SUSPENDING = "RayClusterSuspending"
CONDITION_SUSPENDED = "RayClusterSuspended"
# Reasons of the ReplicaFailure condition when a reconcile failed. FailedDelete*Pod are KubeRay's; a
# failed pod creation reuses its event's reason (events.FAILED_TO_CREATE_*_POD).
REPLICA_FAILURE_DELETE_HEAD_POD = "FailedDeleteHeadPod"
REPLICA_FAILURE_DELETE_WORKER_POD = "FailedDeleteWorkerPod"
REPLICA_FAILURE_CREATE_HEAD_SERVICE = "FailedCreateHeadService"
REPLICA_FAILURE_MULTIPLE_HEAD_PODS = "MultipleHeadPods"
REPLICA_FAILURE_CREATE_AUTH_SECRET = "FailedCreateAuthSecret"
REPLICA_FAILURE_CREATE_SERVICE_ACCOUNT = "FailedCreateServiceAccount"
REPLICA_FAILURE_CREATE_ROLE = "FailedCreateRole"
REPLICA_FAILURE_CREATE_ROLE_BINDING = "FailedCreateRoleBinding"

# RayJob statuses.
JOB_STATUS_NEW = ""
JOB_STATUS_PENDING = "PENDING"
JOB_STATUS_RUNNING = "RUNNING"
JOB_STATUS_STOPPED = "STOPPED"
JOB_STATUS_SUCCEEDED = "SUCCEEDED"
JOB_STATUS_FAILED = "FAILED"
TERMINAL_JOB_STATUSES = (JOB_STATUS_STOPPED, JOB_STATUS_SUCCEEDED, JOB_STATUS_FAILED)

DEPLOYMENT_NEW = ""
DEPLOYMENT_INITIALIZING = "Initializing"
DEPLOYMENT_RUNNING = "Running"
DEPLOYMENT_COMPLETE = "Complete"
DEPLOYMENT_FAILED = "Failed"
DEPLOYMENT_VALIDATION_FAILED = "ValidationFailed"
DEPLOYMENT_SUSPENDING = "Suspending"
DEPLOYMENT_SUSPENDED = "Suspended"
DEPLOYMENT_RETRYING = "Retrying"

REASON_SUBMISSION_FAILED = "SubmissionFailed"
REASON_DEADLINE_EXCEEDED = "DeadlineExceeded"
REASON_PRE_RUNNING_DEADLINE_EXCEEDED = "PreRunningDeadlineExceeded"
REASON_APP_FAILED = "AppFailed"
REASON_STATUS_CHECK_TIMEOUT_EXCEEDED = "JobStatusCheckTimeoutExceeded"
REASON_VALIDATION_FAILED = "ValidationFailed"

MODE_K8S_JOB = "K8sJobMode"
MODE_HTTP = "HTTPMode"
MODE_INTERACTIVE = "InteractiveMode"
MODE_SIDECAR = "SidecarMode"
SUPPORTED_SUBMISSION_MODES = (MODE_K8S_JOB, MODE_HTTP)

# Token authentication (KubeRay's `authOptions`, utils/constant.go). OpenRay runs every cluster with a
# token unless `authOptions.mode: disabled` (KubeRay only when `mode: token`): secure by default.
AUTH_MODE_TOKEN = "token"
AUTH_MODE_DISABLED = "disabled"
AUTH_MODES = (AUTH_MODE_TOKEN, AUTH_MODE_DISABLED)
RAY_AUTH_MODE_ENV = "RAY_AUTH_MODE"
RAY_AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"
RAY_AUTH_TOKEN_SECRET_KEY = "auth_token"
# The header KubeRay's dashboard client sends the token in (it passes the API server's service proxy,
# which consumes `Authorization`).
RAY_AUTHORIZATION_HEADER = "X-Ray-Authorization"
# OpenRay's runtime adds this text to its 401/403 answers and login page: how to read the token here.
AUTH_HINT_ENV = "OPENRAY_AUTH_HINT"
