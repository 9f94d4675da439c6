"""The cluster launcher's YAML (Ray's keys, the local provider's defaults and errors), its plan for each node
(idempotent `ray up`) and the remote command lines it runs; no SSH here (tests/integration/launcher has it)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from ray.autoscaler._private.launcher import cluster_yaml, commands
from ray.autoscaler._private.launcher import state as st
from ray.autoscaler._private.launcher.ssh import SSHRunner
from ray.scripts.scripts import cli

SEED = """
cluster_name: default
provider:
  type: local
  head_ip: 10.0.0.1
  worker_ips: [10.0.0.2, 10.0.0.3]
auth:
  ssh_user: ubuntu
min_workers: 2
max_workers: 2
idle_timeout_minutes: 5
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return str(path)


def test_seed_shape_gets_rays_defaults(tmp_path: Path) -> None:
    config = cluster_yaml.load(write(tmp_path, SEED))
    assert config["head_start_ray_commands"] == [
        "ray stop", "ulimit -c unlimited && ray start --head --port=6379 --autoscaling-config=~/ray_bootstrap_config.yaml"]
    assert config["worker_start_ray_commands"] == ["ray stop", "ray start --address=$RAY_HEAD_IP:6379"]
    assert config["setup_commands"] == [] and config["file_mounts"] == {}
    assert config["min_workers"] == config["max_workers"] == 2
    assert config["head_node_type"] == "local.cluster.node"


def test_the_seeds_short_form_logs_in_as_this_user(tmp_path: Path) -> None:
    import getpass

    config = cluster_yaml.load(write(tmp_path, "cluster_name: default\nprovider:\n    type: local\n"
                                               "    head_ip: h1\n    worker_ips: [h2, h3]\n"))
    assert config["auth"] == {"ssh_user": getpass.getuser()}
    assert "IdentitiesOnly=yes" not in SSHRunner("h1", "u").ssh_options()  # ssh's default keys and agent


SHORT = "cluster_name: default\nprovider:\n    type: local\n    head_ip: 10.0.0.1\n    worker_ips: [10.0.0.2, 10.0.0.3, 10.0.0.4]\n"


@pytest.mark.parametrize("extra, lo, hi, warned", [
    ("", 3, 3, []),  # Ray's prepare_manual: keep every host
    ("min_workers: 0\n", 0, 3, []),  # the others on demand
    ("min_workers: 1\nmax_workers: 2\n", 1, 2, []),
    ("min_workers: 5\nmax_workers: 9\n", 3, 3, ["min_workers", "max_workers"]),
])
def test_min_and_max_workers_default_to_the_hosts_and_are_capped(tmp_path: Path, extra, lo, hi, warned) -> None:
    config = cluster_yaml.load(write(tmp_path, SHORT + extra))
    assert (config["min_workers"], config["max_workers"]) == (lo, hi)
    assert config["available_node_types"] == {"local.cluster.node": {
        "resources": {}, "node_config": {}, "min_workers": lo, "max_workers": hi}}
    assert [w.split("`")[1] for w in config["_warnings"]] == warned
    if warned:
        assert config["_warnings"][0] == ("The value of `min_workers` supplied (5) is greater than the number of "
                                          "available worker ips (3). Setting `min_workers=3`.")
    boot = cluster_yaml.bootstrap_config(config)  # what the head's autoscaler reads
    from ray.autoscaler._private.config import parse

    parsed = parse(boot)
    assert (parsed.node_types["local.cluster.node"].min_workers, parsed.max_workers) == (lo, hi)


def test_ray_up_starts_min_workers_hosts_alive_ones_first(tmp_path: Path) -> None:
    config = cluster_yaml.load(write(tmp_path, SHORT + "min_workers: 1\n"))
    assert commands.workers_to_start(config, None) == ["10.0.0.2"]
    assert commands.workers_to_start(config, {"10.0.0.4"}) == ["10.0.0.4"]  # a second `ray up` keeps the one that runs
    config = cluster_yaml.load(write(tmp_path, SHORT + "min_workers: 0\n"))
    assert commands.workers_to_start(config, {"10.0.0.4"}) == []


def test_empty_start_commands_are_kept(tmp_path: Path) -> None:
    config = cluster_yaml.load(write(tmp_path, SEED + "worker_start_ray_commands: []\n"))
    assert config["worker_start_ray_commands"] == []


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(setup_comands=["x"]), "unknown key 'setup_comands' at the top level"),
    (lambda c: c["provider"].pop("head_ip"), "provider.head_ip is missing"),
    (lambda c: c["provider"].update(type="aws"), "supports only `type: local`"),
    (lambda c: c.pop("provider"), "the provider section is missing"),
    (lambda c: c["auth"].update(ssh_user=""), "auth.ssh_user must be a user name"),
    (lambda c: c["auth"].update(ssh_private_key="/nonexistent/key"), "'/nonexistent/key' is not a readable file"),
    (lambda c: c["provider"].update(worker_ips=["10.0.0.1"]), "lists a host twice or the head itself"),
    (lambda c: c.update(setup_commands="echo hi"), "setup_commands must be a list of strings"),
    (lambda c: c.update(min_workers=3, max_workers=1), "min_workers (3) is larger than max_workers (1)"),
    (lambda c: c.update(file_mounts={"~/x": "/nonexistent"}), "the local path '/nonexistent' does not exist"),
    (lambda c: c.update(docker={"image": "rayproject/ray"}), "docker.image is set"),
    (lambda c: c["auth"].update(ssh_port=2222), "unknown key 'ssh_port' in auth"),
])
def test_bad_config_names_the_key(tmp_path: Path, edit, message: str) -> None:
    config = yaml.safe_load(SEED)
    edit(config)
    path = write(tmp_path, yaml.safe_dump(config))
    with pytest.raises(cluster_yaml.ConfigError) as e:
        cluster_yaml.load(path)
    assert message in str(e.value)
    assert path in str(e.value)


def test_cli_reports_config_errors_before_any_ssh(tmp_path: Path) -> None:
    path = write(tmp_path, SEED.replace("  head_ip: 10.0.0.1\n", ""))
    result = CliRunner().invoke(cli, ["up", path, "-y"])
    assert result.exit_code != 0
    assert "provider.head_ip is missing" in result.output


def test_runtime_hash_follows_commands_and_file_contents(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("one")
    config = cluster_yaml.load(write(tmp_path, SEED + f"file_mounts: {{'~/data': '{data}'}}\n"))
    head, worker = cluster_yaml.runtime_hash(config, "head"), cluster_yaml.runtime_hash(config, "worker")
    config["worker_setup_commands"] = ["pip install x"]
    assert cluster_yaml.runtime_hash(config, "head") == head
    assert cluster_yaml.runtime_hash(config, "worker") != worker
    (data / "f").write_text("two")
    assert cluster_yaml.runtime_hash(config, "head") != head


def test_plan_leaves_healthy_unchanged_nodes_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    config = cluster_yaml.load(write(tmp_path, SEED))
    state = st.ClusterState("default")
    ip = "10.0.0.2"
    # never set up: full set-up and start
    plan = commands._plan("worker", ip, config, state, {ip}, False, False)
    assert (plan.setup, plan.start) == (True, True)
    state.set_tags(ip, "worker", **{st.TAG_NODE_STATUS: st.STATUS_UP_TO_DATE,
                                    st.TAG_RUNTIME_CONFIG: cluster_yaml.runtime_hash(config, "worker")})
    assert commands._plan("worker", ip, config, state, {ip}, False, False) is None  # alive, same config
    plan = commands._plan("worker", ip, config, state, set(), False, False)  # same config, Ray not running
    assert (plan.setup, plan.start) == (False, True)
    plan = commands._plan("worker", ip, config, state, {ip}, True, False)  # --no-restart
    assert (plan.setup, plan.start) == (True, False)
    plan = commands._plan("worker", ip, config, state, {ip}, False, True)  # --restart-only
    assert (plan.setup, plan.start) == (False, True)
    assert state.path.startswith(str(tmp_path))


def test_remote_command_line_is_a_login_shell_with_rays_variables() -> None:
    line = SSHRunner.wrap("ray start --address=$RAY_HEAD_IP:6379", {"RAY_HEAD_IP": "10.0.0.1"})
    argv = shlex.split(line)
    assert argv[:3] == ["bash", "--login", "-c"]
    assert "source ~/.bashrc" in argv[3]
    assert "export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore RAY_HEAD_IP=10.0.0.1 && " \
           "(ray start --address=$RAY_HEAD_IP:6379)" in argv[3]
    runner = SSHRunner("10.0.0.2", "ubuntu", "/k")
    argv = runner.argv("true")
    assert argv[:3] == ["ssh", "-i", "/k"] and "BatchMode=yes" in argv and argv[-2] == "ubuntu@10.0.0.2"


def test_ray_up_refuses_both_restart_flags(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["up", write(tmp_path, SEED), "-y", "--no-restart", "--restart-only"])
    assert result.exit_code != 0
    assert "--restart-only and --no-restart cannot both be used." in result.output


def test_commands_need_a_launched_head(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    result = CliRunner().invoke(cli, ["get-head-ip", write(tmp_path, SEED)])
    assert result.exit_code != 0
    assert "Head node of cluster (default) not found!" in result.output
