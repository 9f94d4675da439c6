from ray_operator.builders.ray_start import gpu_count, ray_start_command, ray_start_params


def test_head_command_matches_kuberays_rendering():
    container = {"resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}
    params = ray_start_params({"rayStartParams": {}}, container, "head", "unused:6379")
    assert ray_start_command(params, "head") == (
        "ray start --head  --block  --dashboard-agent-listen-port=52365  --dashboard-host=0.0.0.0 "
        " --memory=2147483648  --metrics-export-port=8080  --num-cpus=1 "
    )


def test_worker_gets_address_and_gpus_from_limits():
    container = {"resources": {"limits": {"cpu": "500m", "nvidia.com/gpu": "2"}}}
    params = ray_start_params({"rayStartParams": {}}, container, "worker", "c-head-svc.ns.svc.cluster.local:6379")
    command = ray_start_command(params, "worker")
    assert command.startswith("ray start  --address=c-head-svc.ns.svc.cluster.local:6379  --block ")
    assert " --num-cpus=1 " in command  # 500m rounds up, like Quantity.Value()
    assert " --num-gpus=2 " in command
    assert "--head" not in command and "--dashboard-host" not in command


def test_user_params_win_and_booleans_render_like_kuberay():
    params = ray_start_params(
        {"rayStartParams": {"num-cpus": "4", "include-dashboard": "false", "disable-usage-stats": "true", "x": "false"}},
        {"resources": {"limits": {"cpu": "1"}}},
        "head",
        "",
    )
    command = ray_start_command(params, "head")
    assert " --num-cpus=4 " in command
    assert " --include-dashboard=false " in command
    assert " --disable-usage-stats " in command
    assert "--x" not in command


def test_cpu_request_used_when_no_limit_and_group_resources_override():
    params = ray_start_params(
        {"rayStartParams": {}, "resources": {"bob": "5"}, "labels": {"zone": "a"}},
        {"resources": {"requests": {"cpu": "3"}}},
        "head",
        "",
    )
    assert params["num-cpus"] == "3"
    assert params["resources"] == "'{\"bob\":5.0}'"
    assert params["labels"] == "zone=a"


def test_gpu_count_picks_first_gpu_key_and_mig():
    assert gpu_count({"cpu": "1"}) is None
    assert gpu_count({"amd.com/gpu": "1", "nvidia.com/gpu": "4"}) == 1
    assert gpu_count({"nvidia.com/mig-1g.5gb": "1"}) == 1
