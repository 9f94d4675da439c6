from ray_operator.builders.pod import PodOptions, build_head_pod, build_worker_pod


def _env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_head_pod_labels_owner_command_env(raycluster):
    pod = build_head_pod(raycluster)
    meta = pod["metadata"]
    assert meta["generateName"] == "demo-head-"
    assert meta["namespace"] == "ns1"
    assert meta["labels"]["ray.io/cluster"] == "demo"
    assert meta["labels"]["ray.io/node-type"] == "head"
    assert meta["labels"]["ray.io/group"] == "headgroup"
    assert meta["labels"]["ray.io/identifier"] == "demo-head"
    assert meta["labels"]["app.kubernetes.io/created-by"] == "kuberay-operator"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("RayCluster", "demo", "uid-1", True)
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["/bin/bash", "-c", "--"]
    assert container["args"][0].startswith("ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start --head ")
    env = _env(container)
    assert env["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert env["KUBERAY_GEN_RAY_START_CMD"] in container["args"][0]
    assert env["RAY_CLUSTER_NAME"] == {"fieldRef": {"fieldPath": "metadata.labels['ray.io/cluster']"}}
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "shared-mem")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert {"name": "shared-mem", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/healthz", "port": 52365}


def test_worker_pod_waits_for_gcs_and_knows_the_head(raycluster):
    group = raycluster["spec"]["workerGroupSpecs"][0]
    pod = build_worker_pod(raycluster, group)
    assert pod["metadata"]["generateName"] == "demo-small-worker-"
    assert pod["metadata"]["labels"]["ray.io/group"] == "small"
    init = pod["spec"]["initContainers"][0]
    assert init["name"] == "wait-gcs-ready"
    assert init["image"] == "localhost/openray-worker:dev"
    assert "ray health-check --address demo-head-svc.ns1.svc.cluster.local:6379" in init["args"][0]
    env = _env(pod["spec"]["containers"][0])
    assert env["RAY_ADDRESS"] == "demo-head-svc.ns1.svc.cluster.local:6379"
    assert env["FQ_RAY_IP"] == "demo-head-svc.ns1.svc.cluster.local"
    assert env["RAY_IP"] == "demo-head-svc"
    assert "--num-gpus=1" in env["KUBERAY_GEN_RAY_START_CMD"]


def test_builders_do_not_mutate_the_cluster(raycluster):
    import copy

    before = copy.deepcopy(raycluster)
    build_head_pod(raycluster)
    build_worker_pod(raycluster, raycluster["spec"]["workerGroupSpecs"][0])
    assert raycluster == before


def test_user_ray_start_command_is_kept(raycluster):
    container = raycluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["command"] = ["bash", "-c", "ray start --head --block"]
    pod = build_head_pod(raycluster)
    assert pod["spec"]["containers"][0]["command"] == ["bash", "-c", "ray start --head --block"]


def test_user_command_runs_before_ray_start(raycluster):
    container = raycluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["command"] = ["echo", "hi"]
    args = build_head_pod(raycluster)["spec"]["containers"][0]["args"][0]
    assert "echo hi && ray start --head" in args


def test_old_ray_versions_get_wget_probes_and_options_disable_them(raycluster):
    raycluster["spec"]["rayVersion"] = "2.4.0"
    container = build_head_pod(raycluster)["spec"]["containers"][0]
    command = container["livenessProbe"]["exec"]["command"][2]
    assert "localhost:52365/api/local_raylet_healthz" in command and "8265/api/gcs_healthz" in command
    options = PodOptions(enable_probes_injection=False, enable_init_container_injection=False)
    worker = build_worker_pod(raycluster, raycluster["spec"]["workerGroupSpecs"][0], options)
    assert "readinessProbe" not in worker["spec"]["containers"][0]
    assert "initContainers" not in worker["spec"]


def test_long_names_are_cut_like_kuberay(raycluster):
    raycluster["metadata"]["name"] = "a" * 53
    name = build_worker_pod(raycluster, raycluster["spec"]["workerGroupSpecs"][0])["metadata"]["generateName"]
    assert len(name) == 50 and name.endswith("-small-worker-")
