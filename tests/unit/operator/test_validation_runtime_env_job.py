import base64
import json
import shlex

import pytest
from ray_operator.builders.job import (
    build_rayjob_cluster,
    build_submitter_job,
    http_submit_body,
    new_cluster_name,
    submit_args,
)
from ray_operator.builders.runtime_env import RuntimeEnvError, decode_runtime_env, runtime_env_json
from ray_operator.builders.validation import raycluster_errors, rayjob_errors

SEED_ENV = {"pip": ["requests==2.26.0", "pendulum==2.1.2"], "env_vars": {"counter_name": "test_counter"}}


def test_seed_runtime_env_decodes_from_base64(seed_rayjob):
    assert decode_runtime_env(seed_rayjob["spec"]) == SEED_ENV
    assert json.loads(runtime_env_json(seed_rayjob["spec"])) == SEED_ENV


def test_v1_runtime_env_yaml():
    spec = {"runtimeEnvYAML": "pip:\n  - emoji\nenv_vars:\n  A: b\n"}
    assert decode_runtime_env(spec) == {"pip": ["emoji"], "env_vars": {"A": "b"}}
    assert decode_runtime_env({}) is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"runtimeEnv": "not base64!!"}, "not valid base64"),
        ({"runtimeEnv": base64.b64encode(b"[1, 2]").decode()}, "must be a mapping"),
        ({"runtimeEnvYAML": "pip: [a\n"}, "not valid JSON or YAML"),
        ({"runtimeEnvYAML": "a: 1", "runtimeEnv": "e30="}, "both set"),
    ],
)
def test_bad_runtime_env_says_what_is_wrong(spec, words):
    with pytest.raises(RuntimeEnvError, match=words):
        decode_runtime_env(spec)


def test_seed_rayjob_is_valid(seed_rayjob):
    assert rayjob_errors(seed_rayjob) == []


def test_invalid_rayjobs(seed_rayjob):
    seed_rayjob["metadata"]["name"] = "x" * 48
    seed_rayjob["spec"]["runtimeEnv"] = "%%%"
    seed_rayjob["spec"]["suspend"] = True
    seed_rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplicas"] = 9
    errors = "\n".join(rayjob_errors(seed_rayjob))
    assert "48 characters; it must be at most 47" in errors
    assert "not valid base64" in errors
    assert "requires spec.shutdownAfterJobFinishes" in errors
    assert "minReplicas (9) is greater than maxReplicas (5)" in errors


def test_invalid_rayclusters(raycluster):
    assert raycluster_errors(raycluster) == []
    groups = raycluster["spec"]["workerGroupSpecs"]
    groups.append(dict(groups[0]))
    raycluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"] = []
    raycluster["metadata"]["name"] = "Bad_Name"
    errors = "\n".join(raycluster_errors(raycluster))
    assert "'small' is used by more than one worker group" in errors
    assert "containers is empty; the first container must be the Ray container" in errors
    assert "DNS-1035" in errors


def test_bad_quantity_is_reported_not_raised(raycluster):
    raycluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "lots"
    assert "not a Kubernetes quantity" in raycluster_errors(raycluster)[0]


def test_rayjob_cluster_and_name(seed_rayjob):
    name = new_cluster_name(seed_rayjob, "b2c4d")
    assert name == "rayjob-sample-raycluster-b2c4d"
    seed_rayjob["metadata"]["name"] = "j" * 47
    assert new_cluster_name(seed_rayjob, "b2c4d") == "j" * 47 + "-b2c4d"
    cluster = build_rayjob_cluster(seed_rayjob, "c1")
    assert cluster["metadata"]["labels"]["ray.io/originated-from-crd"] == "RayJob"
    assert cluster["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
    assert cluster["spec"] == seed_rayjob["spec"]["rayClusterSpec"]


def test_submitter_job_runs_ray_job_submit(seed_rayjob):
    cluster = build_rayjob_cluster(seed_rayjob, "c1")
    job = build_submitter_job(seed_rayjob, cluster, "rayjob-sample-abcde", "c1-head-svc.default.svc.cluster.local:8265")
    assert job["metadata"]["name"] == "rayjob-sample"
    assert job["spec"]["backoffLimit"] == 2
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "ray-job-submitter"
    assert container["image"] == "rayproject/ray:2.4.0"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    script = container["args"][0]
    assert "ray job submit --address http://c1-head-svc.default.svc.cluster.local:8265 --no-wait" in script
    assert "--submission-id rayjob-sample-abcde -- python /home/ray/samples/sample_code.py" in script
    # The runtime env reaches `ray job submit` as one shell word of JSON.
    words = shlex.split(script.split(" ; then ")[1].split(" ; fi")[0])
    assert json.loads(words[words.index("--runtime-env-json") + 1]) == SEED_ENV


def test_entrypoint_resources_and_http_body(seed_rayjob):
    seed_rayjob["spec"].update(entrypointNumCpus=0.5, entrypointNumGpus=1, entrypointResources='{"bob": 1}')
    args = submit_args(seed_rayjob, "id1", "http://h:8265")
    assert args[args.index("--entrypoint-num-cpus") + 1] == "0.5"
    assert args[args.index("--entrypoint-resources") + 1] == '{"bob": 1}'
    body = http_submit_body(seed_rayjob, "id1")
    assert body["runtime_env"] == SEED_ENV
    assert body["entrypoint_resources"] == {"bob": 1}
    assert body["submission_id"] == "id1"
