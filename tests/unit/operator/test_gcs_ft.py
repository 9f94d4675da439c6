"""KubeRay's GCS fault tolerance on plain dicts: gcsFaultToleranceOptions and the ray.io/ft-enabled annotation
become the head's and workers' env, the head's flags and annotation; validation; the redis-cleanup Job; the
finalizer's deletion steps against a small in-memory API."""

from __future__ import annotations

import copy

from ray_operator import constants as c
from ray_operator.builders import gcs_ft, redis_cleanup
from ray_operator.builders.pod import build_head_pod, build_worker_pod
from ray_operator.builders.validation import raycluster_errors
from ray_operator.handlers import gcs_ft_cleanup

SECRET_REF = {"secretKeyRef": {"name": "redis-password-secret", "key": "password"}}


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def _with_options(raycluster: dict, **extra) -> dict:
    cluster = copy.deepcopy(raycluster)
    cluster["spec"]["gcsFaultToleranceOptions"] = {"redisAddress": "redis:6379",
                                                   "redisPassword": {"valueFrom": SECRET_REF}, **extra}
    return cluster


def test_options_become_the_heads_env_flags_and_annotation(raycluster):
    cluster = _with_options(raycluster)
    head = build_head_pod(cluster)
    env = _env(head["spec"]["containers"][0])
    assert env["RAY_REDIS_ADDRESS"] == "redis:6379"
    assert env["REDIS_PASSWORD"] == SECRET_REF
    assert env["RAY_external_storage_namespace"] == "uid-1"  # the RayCluster's uid by default
    assert head["metadata"]["annotations"][gcs_ft.ANNOTATION_FT_ENABLED] == "true"
    assert " --redis-password=$REDIS_PASSWORD " in head["spec"]["containers"][0]["args"][0]
    worker = build_worker_pod(cluster, cluster["spec"]["workerGroupSpecs"][0])
    wenv = _env(worker["spec"]["containers"][0])
    assert wenv["RAY_gcs_rpc_server_reconnect_timeout_s"] == "600"
    assert "RAY_REDIS_ADDRESS" not in wenv and "REDIS_PASSWORD" not in wenv


def test_namespace_from_the_options_a_plain_password_and_a_username(raycluster):
    cluster = _with_options(raycluster, externalStorageNamespace="team-a", redisPassword={"value": "pw"},
                            redisUsername={"value": "ray"})
    env = _env(build_head_pod(cluster)["spec"]["containers"][0])
    assert (env["RAY_external_storage_namespace"], env["REDIS_PASSWORD"], env["REDIS_USERNAME"]) == ("team-a", "pw",
                                                                                                     "ray")


def test_the_older_annotation_turns_it_on_with_the_users_env(raycluster):
    cluster = copy.deepcopy(raycluster)
    cluster["metadata"]["annotations"] = {gcs_ft.ANNOTATION_FT_ENABLED: "true",
                                          gcs_ft.ANNOTATION_STORAGE_NAMESPACE: "legacy"}
    head_container = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert any("RAY_REDIS_ADDRESS" in e for e in raycluster_errors(cluster))
    head_container["env"] = [{"name": "RAY_REDIS_ADDRESS", "value": "redis:6379"}]
    assert raycluster_errors(cluster) == []
    head = build_head_pod(cluster)
    env = _env(head["spec"]["containers"][0])
    assert env["RAY_external_storage_namespace"] == "legacy" and env["RAY_REDIS_ADDRESS"] == "redis:6379"
    assert "--redis-password" not in head["spec"]["containers"][0]["args"][0]


def test_without_ft_nothing_is_added_and_the_head_says_so(raycluster):
    head = build_head_pod(raycluster)
    assert head["metadata"]["annotations"][gcs_ft.ANNOTATION_FT_ENABLED] == "false"
    env = _env(head["spec"]["containers"][0])
    assert not {"RAY_REDIS_ADDRESS", "REDIS_PASSWORD", "RAY_external_storage_namespace"} & set(env)
    worker = build_worker_pod(raycluster, raycluster["spec"]["workerGroupSpecs"][0])
    assert "RAY_gcs_rpc_server_reconnect_timeout_s" not in _env(worker["spec"]["containers"][0])


def test_validation_names_each_conflict(raycluster):
    cluster = _with_options(raycluster)
    cluster["metadata"]["annotations"] = {gcs_ft.ANNOTATION_FT_ENABLED: "false"}
    cluster["spec"]["headGroupSpec"]["rayStartParams"]["redis-password"] = "x"
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "RAY_REDIS_ADDRESS", "value": "r:1"}]
    cluster["spec"]["gcsFaultToleranceOptions"]["redisUsername"] = {"value": "a", "valueFrom": SECRET_REF}
    errors = " | ".join(raycluster_errors(cluster))
    assert "ray.io/ft-enabled annotation is set to false but spec.gcsFaultToleranceOptions is set" in errors
    assert "cannot set rayStartParams.redis-password together with spec.gcsFaultToleranceOptions" in errors
    assert "cannot set the RAY_REDIS_ADDRESS env in the head container" in errors
    assert "redisUsername needs exactly one of value or valueFrom" in errors
    del cluster["spec"]["gcsFaultToleranceOptions"]["redisAddress"]
    assert "spec.gcsFaultToleranceOptions.redisAddress is required" in " ".join(raycluster_errors(cluster))


def test_the_redis_cleanup_job(raycluster):
    cluster = _with_options(raycluster)
    job = redis_cleanup.build_cleanup_job(cluster)
    assert job["kind"] == "Job" and job["metadata"]["name"] == "demo-redis-cleanup"
    assert job["metadata"]["labels"][c.LABEL_NODE_TYPE] == "redis-cleanup"
    assert job["metadata"]["labels"][c.LABEL_CLUSTER] == "demo"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 300
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and "initContainers" not in pod
    (container,) = pod["containers"]
    assert container["image"] == "localhost/openray-head:dev"
    assert "livenessProbe" not in container and "readinessProbe" not in container
    assert "cleanup_redis_storage" in container["args"][0]
    env = _env(container)
    assert env["RAY_REDIS_ADDRESS"] == "redis:6379" and env["REDIS_PASSWORD"] == SECRET_REF
    assert env["RAY_external_storage_namespace"] == "uid-1"
    assert container["resources"]["limits"] == {"cpu": "200m", "memory": "256Mi"}


class _Api:
    """Just enough of the Kubernetes API for the deletion steps: pods, jobs, the cluster's finalizers."""

    def __init__(self, cluster: dict, pods: list[str]):
        self.cluster = cluster
        self.pods = {n: {"metadata": {"name": n, "labels": {c.LABEL_NODE_TYPE: "worker"}}} for n in pods}
        self.jobs: dict[str, dict] = {}
        self.events: list[str] = []

    def patch_custom(self, plural, namespace, name, patch):
        if isinstance(patch, list):
            assert patch[0]["value"] == self.cluster["metadata"]["finalizers"]  # the `test` op
            self.cluster["metadata"]["finalizers"] = patch[1]["value"]
        else:
            self.cluster["metadata"]["finalizers"] = patch["metadata"]["finalizers"]

    def list_pods(self, namespace, selector):
        return list(self.pods.values())

    def delete_pod(self, namespace, name):
        self.pods[name]["metadata"]["deletionTimestamp"] = "now"
        return True

    def get_job(self, namespace, name):
        return self.jobs.get(name)

    def create_job(self, body):
        self.jobs[body["metadata"]["name"]] = body

    def event(self, obj, kind, reason, message):
        self.events.append(reason)


def test_finalizer_steps_pods_then_the_job_then_the_finalizer(raycluster):
    cluster = _with_options(raycluster)
    api = _Api(cluster, ["demo-head-x", "demo-small-worker-y"])
    assert gcs_ft_cleanup.ensure_finalizer(api, cluster, enabled=True)
    assert cluster["metadata"]["finalizers"] == [gcs_ft.FINALIZER]
    assert not gcs_ft_cleanup.ensure_finalizer(api, cluster, enabled=True)  # once
    assert not gcs_ft_cleanup.ensure_finalizer(api, copy.deepcopy(raycluster), enabled=True)  # FT off: none

    import time

    cluster["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    gcs_ft_cleanup.reconcile_deleted(api, cluster, 1)  # pods first: the job waits until they are gone
    assert all(p["metadata"].get("deletionTimestamp") for p in api.pods.values()) and not api.jobs
    api.pods.clear()
    gcs_ft_cleanup.reconcile_deleted(api, cluster, 1)
    assert list(api.jobs) == ["demo-redis-cleanup"] and api.events == ["CreatedRedisCleanupJob"]
    gcs_ft_cleanup.reconcile_deleted(api, cluster, 1)  # still running
    assert cluster["metadata"]["finalizers"] == [gcs_ft.FINALIZER]
    api.jobs["demo-redis-cleanup"]["status"] = {"succeeded": 1}
    gcs_ft_cleanup.reconcile_deleted(api, cluster, 1)
    assert cluster["metadata"]["finalizers"] == []


def test_a_cleanup_that_never_ends_lets_go_after_300_s(raycluster):
    cluster = _with_options(raycluster)
    cluster["metadata"].update(finalizers=["other", gcs_ft.FINALIZER], deletionTimestamp="2020-01-01T00:00:00Z")
    api = _Api(cluster, ["demo-head-x"])
    gcs_ft_cleanup.reconcile_deleted(api, cluster, 1)
    assert cluster["metadata"]["finalizers"] == ["other"] and api.events == ["RedisCleanupTimedOut"]
