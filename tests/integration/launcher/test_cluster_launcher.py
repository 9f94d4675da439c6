"""The cluster launcher on real SSH hosts: `ray up` of a head and two workers (each a network namespace with
its own sshd, home and temp dir), `ray status` through `ray exec`, idempotent `ray up`, `--no-restart` and
`--restart-only`, exec/submit/attach/rsync/get-*-ip, `ray down`, worker hosts started on demand by the head's
autoscaler (min_workers below the hosts) and stopped when idle, and the bad inputs: an unknown key, no
head_ip, a wrong key, an unreachable host and a failing setup command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ssh_hosts import SSHHosts, ensure_packages

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def hosts() -> Iterator[SSHHosts]:
    ensure_packages()
    with SSHHosts(hosts=3) as h:
        yield h


def write_config(h: SSHHosts, path: Path, name: str, **extra) -> Path:
    config = {
        "cluster_name": name,
        "provider": {"type": "local", "head_ip": h.ips[0], "worker_ips": h.ips[1:]},
        "auth": {"ssh_user": "root", "ssh_private_key": str(h.key)},
        "min_workers": 2,
        "max_workers": 2,
        "idle_timeout_minutes": 5,
        "setup_commands": ["echo setup >> ~/setup-count"],
        # The head's dashboard listens on the host's address so that the job tests below can reach it.
        "head_start_ray_commands": ["ray stop", "ray start --head --port=6379 --num-cpus=1 --dashboard-host=0.0.0.0 "
                                    "--autoscaling-config=~/ray_bootstrap_config.yaml"],
        "worker_start_ray_commands": ["ray stop", "ray start --address=$RAY_HEAD_IP:6379 --num-cpus=1"],
    }
    config.update(extra)
    path.write_text(yaml.safe_dump(config))
    return path


def ray(h: SSHHosts, *args: str, timeout: float = 300, env: dict | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    """The `ray` CLI on this machine (the launcher's side); its state file goes to the test's dir."""
    full_env = dict(os.environ, TMPDIR=str(h.root), AUTOSCALER_NODE_START_WAIT_S="4",
                    AUTOSCALER_NODE_SSH_INTERVAL_S="1", **(env or {}))
    full_env.pop("RAY_ADDRESS", None)
    if not env or "SSH_AUTH_SOCK" not in env:
        full_env.pop("SSH_AUTH_SOCK", None)
    return subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, input=input, stdin=None if input else subprocess.DEVNULL)


def node_ids(status: str) -> list[str]:
    """The live nodes' ids in `ray status -v` (each node's block: `Node: <instance> (<type>)`, ` Id: <hex>`)."""
    return sorted(re.findall(r"^ Id: ([0-9a-f]+)$", status, re.M))


def wait_nodes(h: SSHHosts, cfg: Path, n: int, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        proc = ray(h, "exec", str(cfg), "ray status -v")
        if proc.returncode == 0 and len(node_ids(proc.stdout)) == n:
            return proc.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"ray status did not show {n} nodes within {timeout} s:\n{proc.stdout}{proc.stderr}")
        time.sleep(2)


def setup_counts(h: SSHHosts, since: list[int] | None = None) -> list[int]:
    """How often each host ran the setup commands (since the counts `since`)."""
    out = []
    for i, home in enumerate(h.homes):
        f = home / "setup-count"
        out.append((len(f.read_text().splitlines()) if f.exists() else 0) - (since[i] if since else 0))
    return out


def test_up_status_idempotent_exec_submit_rsync_down(hosts: SSHHosts, tmp_path: Path) -> None:
    h = hosts
    cfg = write_config(h, tmp_path / "cluster.yaml", "main")
    before = setup_counts(h)
    try:
        up = ray(h, "up", str(cfg), "-y")
        assert up.returncode == 0, up.stdout + up.stderr
        out = up.stdout
        assert "Cluster: main" in out
        head, w1, w2 = h.ips
        for role, ip in (("head", head), ("worker", w1), ("worker", w2)):
            assert f"({role} {ip}) [2/7] Waiting for SSH to become available" in out, out
            assert f"({role} {ip}) [6/7] Running setup commands" in out, out
            assert f"({role} {ip}) [7/7] Starting the Ray runtime" in out, out
            assert f"({role} {ip}) New status: up-to-date" in out, out
        assert f"(worker {w1}) Copying the head's authentication token to ~/.ray/auth_token" in out
        assert "Useful commands:" in out
        # The head made the token; each worker got a copy (0600) and no other host has one of its own.
        token = (h.homes[0] / ".ray" / "auth_token").read_text()
        for home in h.homes[1:]:
            assert (home / ".ray" / "auth_token").read_text() == token
            assert (home / ".ray" / "auth_token").stat().st_mode & 0o777 == 0o600
        assert (h.homes[0] / "ray_bootstrap_config.yaml").exists()
        assert (h.homes[0] / "ray_bootstrap_key.pem").read_bytes() == h.key.read_bytes()

        status = wait_nodes(h, cfg, 3)
        ids = node_ids(status)
        assert "3.0 CPU" in status.replace("/3.0 CPU", "3.0 CPU"), status
        assert setup_counts(h, before) == [1, 1, 1]

        # `ray up` again: every node is alive and unchanged, so nothing runs and nothing restarts.
        again = ray(h, "up", str(cfg), "-y")
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.count("Ray is running and the configuration is up to date: nothing to do.") == 3, \
            again.stdout
        assert "Starting the Ray runtime" not in again.stdout
        assert node_ids(wait_nodes(h, cfg, 3)) == ids
        assert setup_counts(h, before) == [1, 1, 1]

        # --no-restart: the setup commands run everywhere, Ray keeps running.
        no_restart = ray(h, "up", str(cfg), "-y", "--no-restart")
        assert no_restart.returncode == 0, no_restart.stdout + no_restart.stderr
        assert no_restart.stdout.count("[7/7] Not restarting Ray (--no-restart)") == 3, no_restart.stdout
        assert setup_counts(h, before) == [2, 2, 2]
        assert node_ids(wait_nodes(h, cfg, 3)) == ids

        # exec: the command's output and exit status; on the head, in its environment.
        proc = ray(h, "exec", str(cfg), "echo home=$HOME head=$RAY_HEAD_IP; exit 3")
        assert proc.returncode == 3
        assert f"home={h.homes[0]} head={head}" in proc.stdout

        # submit: the script goes to the head's home and runs there, as a driver of the cluster.
        script = tmp_path / "count_nodes.py"
        script.write_text("import sys, ray\nray.init()\n"
                          "print('alive nodes', len([n for n in ray.nodes() if n['Alive']]), sys.argv[1:])\n")
        proc = ray(h, "submit", str(cfg), str(script), "a b", "--flag")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "alive nodes 3 ['a b', '--flag']" in proc.stdout
        assert (h.homes[0] / "count_nodes.py").exists()

        # attach: a shell on the head (stdin piped here; a terminal in real use).
        proc = ray(h, "attach", str(cfg), input="echo attached-on $RAY_HEAD_IP; exit\n")
        assert "attached-on " + head in proc.stdout, proc.stdout + proc.stderr

        # rsync-up (head; -A: every node) and rsync-down.
        data = tmp_path / "data"
        data.mkdir()
        (data / "a.txt").write_text("payload")
        proc = ray(h, "rsync-up", str(cfg), str(data), "~/synced")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (h.homes[0] / "synced" / "a.txt").read_text() == "payload"
        assert not (h.homes[1] / "synced").exists()
        proc = ray(h, "rsync-up", str(cfg), str(data / "a.txt"), "~/everywhere.txt", "-A")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert all((home / "everywhere.txt").read_text() == "payload" for home in h.homes)
        (h.homes[0] / "result.txt").write_text("from the head")
        proc = ray(h, "rsync-down", str(cfg), "~/result.txt", str(tmp_path / "down" / "result.txt"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (tmp_path / "down" / "result.txt").read_text() == "from the head"

        assert ray(h, "get-head-ip", str(cfg)).stdout.strip() == head
        assert ray(h, "get-worker-ips", str(cfg)).stdout.split() == [w1, w2]
        assert ray(h, "get_worker_ips", str(cfg)).stdout.split() == [w1, w2]

        # --restart-only: no setup, Ray restarted everywhere (new node ids).
        restart = ray(h, "up", str(cfg), "-y", "--restart-only")
        assert restart.returncode == 0, restart.stdout + restart.stderr
        assert restart.stdout.count("[7/7] Starting the Ray runtime") == 3, restart.stdout
        assert setup_counts(h, before) == [2, 2, 2]
        new_ids = node_ids(wait_nodes(h, cfg, 3))
        assert not set(new_ids) & set(ids)

        # A changed setup command: that node type is set up and restarted again.
        write_config(h, cfg, "main", worker_setup_commands=["echo worker-setup > ~/worker-setup"])
        changed = ray(h, "up", str(cfg), "-y")
        assert changed.returncode == 0, changed.stdout + changed.stderr
        assert f"(head {head}) Ray is running and the configuration is up to date" in changed.stdout
        assert changed.stdout.count("[7/7] Starting the Ray runtime") == 2, changed.stdout
        assert (h.homes[1] / "worker-setup").exists() and not (h.homes[0] / "worker-setup").exists()
        wait_nodes(h, cfg, 3)
    finally:
        down = ray(h, "down", str(cfg), "-y")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "Requested 3 nodes to shut down." in down.stdout
    for i in range(3):
        assert h.ray_processes(i) == [], f"Ray still runs on host {i} after ray down"
    proc = ray(h, "exec", str(cfg), "ray status")
    assert proc.returncode != 0 and "Head node of cluster (main) not found!" in proc.stderr


def test_seed_file_as_written(hosts: SSHHosts, tmp_path: Path) -> None:
    """Seed 002's example.yaml, host names filled in: no auth section, so the login is this machine's user
    with ssh's defaults (here an ssh-agent holding the hosts' key), and Ray's default start commands."""
    h = hosts
    cfg = tmp_path / "example.yaml"
    cfg.write_text(f"cluster_name: seed\n\nprovider:\n    type: local\n    head_ip: {h.ips[0]}\n"
                   f"    worker_ips: [{h.ips[1]}, {h.ips[2]}]\n")
    sock = str(h.root / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(["ssh-add", "-q", str(h.key)], env=dict(os.environ, SSH_AUTH_SOCK=sock), check=True,
                       capture_output=True)
        try:
            up = ray(h, "up", str(cfg), "-y", env={"SSH_AUTH_SOCK": sock})
            assert up.returncode == 0, up.stdout + up.stderr
            assert "ray start --head --port=6379 --autoscaling-config=~/ray_bootstrap_config.yaml" in up.stdout
            deadline = time.monotonic() + 120
            while True:
                proc = ray(h, "exec", str(cfg), "ray status -v", env={"SSH_AUTH_SOCK": sock})
                if len(node_ids(proc.stdout)) == 3:
                    status = proc.stdout
                    break
                assert time.monotonic() < deadline, proc.stdout + proc.stderr
                time.sleep(2)
            assert "Active:" in status
        finally:
            down = ray(h, "down", str(cfg), "-y", env={"SSH_AUTH_SOCK": sock})
        assert down.returncode == 0, down.stdout + down.stderr
    finally:
        agent.kill()
        agent.wait()
    for i in range(3):
        assert h.ray_processes(i) == []


def test_config_errors_touch_no_host(hosts: SSHHosts, tmp_path: Path) -> None:
    h = hosts
    before = setup_counts(h)
    cfg = write_config(h, tmp_path / "typo.yaml", "typo", setup_comands=["echo hi"])
    proc = ray(h, "up", str(cfg), "-y")
    assert proc.returncode != 0
    assert "unknown key 'setup_comands' at the top level" in proc.stderr, proc.stderr
    cfg = write_config(h, tmp_path / "nohead.yaml", "nohead", provider={"type": "local", "worker_ips": h.ips[1:]})
    proc = ray(h, "up", str(cfg), "-y")
    assert proc.returncode != 0
    assert "provider.head_ip is missing" in proc.stderr, proc.stderr
    for i in range(3):
        assert h.ray_processes(i) == []
    assert setup_counts(h, before) == [0, 0, 0]


def test_wrong_key_names_the_head_and_step(hosts: SSHHosts, tmp_path: Path) -> None:
    h = hosts
    before = setup_counts(h)
    cfg = write_config(h, tmp_path / "key.yaml", "wrongkey", auth={"ssh_user": "root", "ssh_private_key":
                                                                    str(h.wrong_key)})
    proc = ray(h, "up", str(cfg), "-y")
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert f"head {h.ips[0]}: [2/7] Waiting for SSH to become available failed" in err, err
    assert "Permission denied" in err and "auth.ssh_private_key" in err
    assert f"The worker nodes ({h.ips[1]}, {h.ips[2]}) were not touched." in proc.stderr
    for i in range(3):
        assert h.ray_processes(i) == []
    assert setup_counts(h, before) == [0, 0, 0]


def test_unreachable_host_and_failing_setup_leave_the_others_running(hosts: SSHHosts, tmp_path: Path) -> None:
    h = hosts
    unreachable = h.net.subnet + ".250"  # on the test bridge's subnet, but no host has it
    (h.homes[1] / "fail-setup").write_text("")
    cfg = write_config(h, tmp_path / "partial.yaml", "partial",
                       provider={"type": "local", "head_ip": h.ips[0], "worker_ips": [h.ips[1], h.ips[2], unreachable]},
                       min_workers=3, max_workers=3,
                       worker_setup_commands=["test ! -e ~/fail-setup || { echo 'this host must not run Ray' >&2; "
                                              "exit 7; }"])
    try:
        proc = ray(h, "up", str(cfg), "-y")
        assert proc.returncode != 0
        err = proc.stdout + proc.stderr
        assert f"worker {h.ips[1]}: [6/7] Running setup commands failed: `test ! -e ~/fail-setup" in err, err
        assert "exited with status 7" in err and "this host must not run Ray" in err
        assert f"worker {unreachable}: [2/7] Waiting for SSH to become available failed" in err, err
        assert "cannot be reached over SSH" in err
        assert f"Failed to update 2 nodes: worker {h.ips[1]}" in proc.stderr
        # The head and the good worker are up; the failed worker runs no Ray.
        wait_nodes(h, cfg, 2)
        assert h.ray_processes(1) == []
        assert h.ray_processes(2) != []
    finally:
        (h.homes[1] / "fail-setup").unlink()
        down = ray(h, "down", str(cfg), "-y")
    # ray down names the host it could not reach, stops the others, and fails.
    assert down.returncode != 0
    assert f"worker {unreachable}: ray stop failed" in down.stdout + down.stderr
    for i in range(3):
        assert h.ray_processes(i) == []


ON_DEMAND_DRIVER = """
import ray

ray.init()


# Each holds its CPU while it lives (a task blocked in ray.get would lend it back): the head has 1 CPU, so
# the second needs a worker host.
@ray.remote(num_cpus=1)
class Squarer:
    def square(self, x):
        return x * x, ray.get_runtime_context().get_node_id()


squarers = [Squarer.remote() for _ in range(2)]
results = ray.get([s.square.remote(x) for s, x in zip(squarers, (3, 4))], timeout=300)
addresses = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
print("squares", sorted(r for r, _ in results))
print("ran on", sorted({addresses[node] for _, node in results}))
print("alive nodes", len([n for n in ray.nodes() if n["Alive"]]))
"""

HOLD_DRIVER = """
import ray

ray.init(namespace="hold")


@ray.remote(num_cpus=1)
class Holder:
    def ready(self):
        return True


holders = [Holder.options(name=f"h{i}", lifetime="detached").remote() for i in range(2)]
print("holders ready", ray.get([h.ready.remote() for h in holders], timeout=300))
"""


def monitor_log(h: SSHHosts) -> str:
    path = h.temp_dirs[0] / "ray" / "session_latest" / "logs" / "monitor.log"
    return path.read_text() if path.exists() else ""


def wait_for(predicate, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(1)


def test_autoscaler_starts_worker_hosts_on_demand_and_stops_idle_ones(hosts: SSHHosts, tmp_path: Path) -> None:
    """min_workers: 0: `ray up` starts the head only; work that needs more CPUs than the head has makes the
    head's autoscaler (local provider) start Ray on a worker host over SSH; idle for idle_timeout_minutes, the
    host gets `ray stop`. `ray down` stops the hosts the autoscaler started too."""
    h = hosts
    head, w1, w2 = h.ips
    cfg = write_config(h, tmp_path / "demand.yaml", "demand", min_workers=0, max_workers=2,
                       idle_timeout_minutes=0.1, setup_commands=[],
                       head_start_ray_commands=["ray stop", "AUTOSCALER_UPDATE_INTERVAL_S=1 ray start --head "
                                                "--port=6379 --num-cpus=1 --autoscaling-config=~/ray_bootstrap_config.yaml"])
    try:
        up = ray(h, "up", str(cfg), "-y")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "The head's autoscaler starts up to 2 more workers of provider.worker_ips on demand" in up.stdout
        assert "Starting the Ray runtime" not in up.stdout.replace(f"(head {head}) [7/7] Starting", ""), up.stdout
        assert "(worker " not in up.stdout, up.stdout  # `ray up` touched no worker
        status = wait_nodes(h, cfg, 1)
        assert "1.0 CPU" in status.replace("/1.0 CPU", "1.0 CPU"), status
        assert h.ray_processes(1) == [] and h.ray_processes(2) == []

        # The driver's second actor needs a CPU only a worker host can give: the autoscaler starts one.
        script = tmp_path / "on_demand.py"
        script.write_text(ON_DEMAND_DRIVER)
        proc = ray(h, "submit", str(cfg), str(script))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "squares [9, 16]" in proc.stdout, proc.stdout
        ran_on = re.search(r"ran on \[(.*)\]", proc.stdout).group(1)
        assert f"'{head}'" in ran_on and (f"'{w1}'" in ran_on or f"'{w2}'" in ran_on), proc.stdout
        assert "alive nodes 2" in proc.stdout
        started = 1 if h.ray_processes(1) or f"'{w1}'" in ran_on else 2
        log = monitor_log(h)
        assert "Adding 1 node(s) of type local.cluster.node." in log, log
        assert (h.homes[started] / ".ray" / "auth_token").read_text() == (h.homes[0] / ".ray" / "auth_token").read_text()

        # Idle for idle_timeout_minutes (6 s): drained and `ray stop`ped over SSH; the cluster is the head again.
        wait_nodes(h, cfg, 1, timeout=180)
        wait_for(lambda: h.ray_processes(started) == [], f"Ray did not stop on the idle worker host {h.ips[started]}")
        assert "Removing 1 node of type local.cluster.node" in monitor_log(h)
        assert ray(h, "get-worker-ips", str(cfg)).stdout.split() == []

        # Work that stays (two detached actors of 1 CPU): a worker host is started again; `ray down` stops it too.
        script = tmp_path / "hold.py"
        script.write_text(HOLD_DRIVER)
        proc = ray(h, "submit", str(cfg), str(script))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "holders ready [True, True]" in proc.stdout
        wait_nodes(h, cfg, 2)
        assert len(ray(h, "get-worker-ips", str(cfg)).stdout.split()) == 1
    finally:
        down = ray(h, "down", str(cfg), "-y")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "Requested 3 nodes to shut down." in down.stdout
    for i in range(3):
        assert h.ray_processes(i) == [], f"Ray still runs on host {i} after ray down"
