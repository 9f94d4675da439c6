"""KubeRay's authOptions on plain dicts: the Secret, the env of every Ray container, the submitter, validation,
the CRD schema. Secure by default: no authOptions still means a token."""

from __future__ import annotations

import base64
import copy

from ray_operator import constants as c
from ray_operator.builders import auth
from ray_operator.builders.job import build_rayjob_cluster, build_submitter_job
from ray_operator.builders.pod import build_head_pod, build_worker_pod
from ray_operator.builders.validation import raycluster_errors
from ray_operator.crd.render import crds


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


TOKEN_REF = {"secretKeyRef": {"name": "demo", "key": "auth_token"}}


def test_without_auth_options_the_cluster_runs_with_a_token(raycluster):
    assert auth.auth_mode(raycluster) == "token" and auth.operator_makes_secret(raycluster)
    head = build_head_pod(raycluster)["spec"]
    env = _env(head["containers"][0])
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN"] == TOKEN_REF
    assert "kubectl get secret demo -n ns1 -o jsonpath='{.data.auth_token}' | base64 -d" in env["OPENRAY_AUTH_HINT"]
    worker = build_worker_pod(raycluster, raycluster["spec"]["workerGroupSpecs"][0])["spec"]
    assert _env(worker["containers"][0])["RAY_AUTH_TOKEN"] == TOKEN_REF
    assert "OPENRAY_AUTH_HINT" not in _env(worker["containers"][0])  # only the head serves the dashboard
    init = next(ic for ic in worker["initContainers"] if ic["name"] == c.WAIT_GCS_READY_INIT_CONTAINER)
    assert _env(init)["RAY_AUTH_TOKEN"] == TOKEN_REF  # its `ray health-check` must authenticate


def test_the_secret_the_operator_makes(raycluster):
    secret = auth.build_auth_secret(raycluster, "abc123")
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "demo"
    assert secret["metadata"]["namespace"] == "ns1"
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("RayCluster", "demo", "uid-1", True)
    assert base64.b64decode(secret["data"]["auth_token"]) == b"abc123"
    assert auth.token_from_secret(secret) == "abc123"
    assert auth.token_from_secret({"stringData": {"auth_token": " s "}}) == "s"
    assert auth.token_from_secret({"data": {"other": "eA=="}}) is None
    assert auth.token_from_secret(None) is None


def test_a_long_cluster_name_gives_kuberays_secret_name(raycluster):
    raycluster["metadata"]["name"] = "a" * 3 + "b" * 50  # 53 characters, the limit
    assert auth.secret_name(raycluster) == "b" * 50  # KubeRay's CheckName keeps the last 50


def test_secret_name_uses_the_users_secret(raycluster):
    raycluster["spec"]["authOptions"] = {"mode": "token", "secretName": "mine"}
    assert not auth.operator_makes_secret(raycluster)
    env = _env(build_head_pod(raycluster)["spec"]["containers"][0])
    assert env["RAY_AUTH_TOKEN"] == {"secretKeyRef": {"name": "mine", "key": "auth_token"}}


def test_mode_disabled_opts_out(raycluster):
    raycluster["spec"]["authOptions"] = {"mode": "disabled"}
    assert not auth.token_enabled(raycluster) and not auth.operator_makes_secret(raycluster)
    for container in (build_head_pod(raycluster)["spec"]["containers"][0],
                      build_worker_pod(raycluster, raycluster["spec"]["workerGroupSpecs"][0])["spec"]["containers"][0]):
        env = _env(container)
        assert env["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN" not in env


def test_a_containers_own_auth_env_wins(raycluster):
    container = raycluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "RAY_AUTH_TOKEN", "value": "set-by-user"}]
    env = _env(build_head_pod(raycluster)["spec"]["containers"][0])
    assert env["RAY_AUTH_TOKEN"] == "set-by-user" and env["RAY_AUTH_MODE"] == "token"


def test_the_submitter_sends_the_clusters_token(seed_rayjob):
    cluster = build_rayjob_cluster(seed_rayjob, "rayjob-sample-raycluster-abcde")
    cluster["metadata"]["uid"] = "c-uid"
    job = build_submitter_job(seed_rayjob, cluster, "rayjob-sample-abcde", "svc:8265")
    env = _env(job["spec"]["template"]["spec"]["containers"][0])
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN"] == {"secretKeyRef": {"name": "rayjob-sample-raycluster-abcde", "key": "auth_token"}}
    disabled = copy.deepcopy(seed_rayjob)
    disabled["spec"]["rayClusterSpec"]["authOptions"] = {"mode": "disabled"}
    cluster = build_rayjob_cluster(disabled, "x")
    env = _env(build_submitter_job(disabled, cluster, "j", "svc:8265")["spec"]["template"]["spec"]["containers"][0])
    assert env["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN" not in env


def test_auth_options_validation(raycluster):
    assert raycluster_errors(raycluster) == []
    raycluster["spec"]["authOptions"] = {"mode": "k8s"}
    assert any("authOptions.mode 'k8s' is not supported" in e for e in raycluster_errors(raycluster))
    raycluster["spec"]["authOptions"] = {"mode": "token", "enableK8sTokenAuth": True}
    assert any("enableK8sTokenAuth is not supported" in e for e in raycluster_errors(raycluster))
    raycluster["spec"]["authOptions"] = {"mode": "disabled", "secretName": "s"}
    assert any("secretName has no effect" in e for e in raycluster_errors(raycluster))


def test_crds_have_auth_options():
    for crd in crds().values():
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        cluster_spec = spec if crd["spec"]["names"]["kind"] == "RayCluster" else spec["properties"]["rayClusterSpec"]
        options = cluster_spec["properties"]["authOptions"]
        assert options["properties"]["mode"]["enum"] == ["token", "disabled"]
        assert "secretName" in options["properties"]
