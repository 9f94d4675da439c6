"""What `ray up/down/attach/exec/submit/rsync-up/rsync-down/get-head-ip/get-worker-ips` do with the `local`
provider (Ray's python/ray/autoscaler/_private/commands.py, for a fixed list of SSH hosts).

`ray up` is idempotent: it asks the head's GCS which nodes are alive and leaves alone every node that is
alive and was set up from the same configuration (Ray's `ray-runtime-config` hash). A node whose
configuration changed is set up again and restarted; `--restart-only` restarts Ray everywhere without the
set-up, `--no-restart` runs the set-up everywhere and starts Ray only where it is not running. Restarting
the head restarts the workers too (their raylets belong to the old GCS).

The cluster's token: the head makes it (`ray start --head` writes `~/.ray/auth_token` on the head when it has
none); `ray up` reads it there with `ray get-auth-token` and writes it to `~/.ray/auth_token` (0600) on each
worker it starts, through ssh's stdin, so it never appears on a command line or on this machine's disk."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from ray.autoscaler._private.launcher import cluster_yaml
from ray.autoscaler._private.launcher import state as st
from ray.autoscaler._private.launcher.ssh import CommandFailed, SSHError, SSHRunner
from ray.autoscaler._private.launcher.updater import NodeUpdateError, NodeUpdater, Plan, echo, ssh_hint


class LauncherError(click.ClickException):
    """A launcher command failed; the message names the host and the step."""


def load_config(config_file: str, cluster_name: str | None = None) -> dict[str, Any]:
    try:
        return cluster_yaml.load(config_file, {"cluster_name": cluster_name})
    except cluster_yaml.ConfigError as e:
        raise LauncherError(str(e)) from None


def head_ssh_ip(config: dict[str, Any]) -> str:
    """The address this machine reaches the head at: provider.external_head_ip, else head_ip."""
    return config["provider"].get("external_head_ip") or config["provider"]["head_ip"]


def head_runner(config: dict[str, Any]) -> SSHRunner:
    auth = config["auth"]
    return SSHRunner(head_ssh_ip(config), auth["ssh_user"], auth.get("ssh_private_key"), auth.get("ssh_proxy_command"))


def _notes(config: dict[str, Any]) -> None:
    for warning in config["_warnings"]:
        echo(f"Warning: {warning}")
    lo, hi, n = config["min_workers"], config["max_workers"], len(config["provider"]["worker_ips"])
    if lo < n:
        echo(f"The head's autoscaler starts up to {hi - lo} more worker{'s' if hi - lo != 1 else ''} of "
             f"provider.worker_ips on demand (min_workers: {lo}, max_workers: {hi}) and stops "
             f"{'them' if hi - lo != 1 else 'it'} after idle_timeout_minutes ({config['idle_timeout_minutes']:g}).")
    ignored = sorted(k for k in cluster_yaml.IGNORED_KEYS if k in config and k not in
                     ("available_node_types", "head_node_type"))
    if ignored:
        echo(f"Note: {', '.join(ignored)} {'are' if len(ignored) > 1 else 'is'} accepted but not used by the local "
             "provider.")


def alive_node_ips(runner: SSHRunner) -> set[str] | None:
    """The addresses of the nodes the head's GCS reports alive (None when the head runs no cluster or
    cannot say)."""
    rc, out, _ = runner.capture("ray cluster-node-ips")
    if rc != 0:
        return None
    try:
        return set(json.loads(out.strip().splitlines()[-1])["alive"])
    except (ValueError, IndexError, KeyError, TypeError):
        return None


def _plan(role: str, ip: str, config: dict[str, Any], state: st.ClusterState, alive: set[str] | None,
          no_restart: bool, restart_only: bool) -> Plan | None:
    """None when the node is left alone."""
    healthy = alive is not None and (ip in alive or _resolve(ip) in alive)
    tags = state.tags(ip)
    same = (tags.get(st.TAG_RUNTIME_CONFIG) == cluster_yaml.runtime_hash(config, role)
            and tags.get(st.TAG_NODE_STATUS) == st.STATUS_UP_TO_DATE)
    if restart_only:
        return Plan(setup=False, start=True, reason="--restart-only")
    if no_restart:
        return Plan(setup=True, start=not healthy)
    if healthy and same:
        return None
    return Plan(setup=not same, start=True)


def _resolve(host: str) -> str | None:
    """A host name in the YAML as an address (the GCS knows nodes by address)."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return None


def create_or_update_cluster(config_file: str, yes: bool = False, no_restart: bool = False,
                             restart_only: bool = False, cluster_name: str | None = None) -> None:
    if no_restart and restart_only:
        raise click.UsageError("--restart-only and --no-restart cannot both be used.")
    config = load_config(config_file, cluster_name)
    name, provider = config["cluster_name"], config["provider"]
    head_ip, worker_ips = provider["head_ip"], provider["worker_ips"]
    state = st.ClusterState(name)
    echo(f"Cluster: {name}\n")
    _notes(config)
    echo(f"Local provider: head {head_ip}" + (f" (reached at {head_ssh_ip(config)})" if provider.get(
        "external_head_ip") else "") + f", {len(worker_ips)} worker{'s' if len(worker_ips) != 1 else ''}"
         + (f": {', '.join(worker_ips)}" if worker_ips else ""))
    if not yes:
        if state.running("head"):
            click.confirm("Updating cluster configuration and running setup where needed. Confirm", abort=True)
        else:
            click.confirm("No head node found. Launching a new cluster. Confirm", abort=True)

    echo("[1/7] Acquiring an up-to-date head node")
    head = NodeUpdater(head_ip, "head", config, state, Plan(True, True), head_ip, ssh_ip=provider.get("external_head_ip"))
    try:
        try:
            head.begin(2, "Waiting for SSH to become available")
            head.runner.wait_ready(on_line=lambda line: head.say(line, 1))
            alive = alive_node_ips(head.runner)
        except SSHError as e:
            raise NodeUpdateError(head_ip, "head", head.step, _hint(e, config)) from e
        head_plan = _plan("head", head_ip, config, state, alive, no_restart, restart_only)
        if head_plan is None:
            head.say("Ray is running and the configuration is up to date: nothing to do.")
            try:
                head.write_bootstrap(verbose=False)
            except (SSHError, CommandFailed) as e:
                raise NodeUpdateError(head_ip, "head", "writing ~/ray_bootstrap_config.yaml", str(e)) from e
            state.set_tags(head_ip, "head")
        else:
            head.plan = head_plan
            head.update(skip_wait=True)
    except NodeUpdateError as e:
        _fail([e], worker_ips, head_failed=True)

    # A restarted head has a new GCS: every worker has to join it again.
    head_restarted = head_plan is not None and head_plan.start
    targets = workers_to_start(config, None if head_restarted else alive)
    plans = {}
    for ip in targets:
        plan = _plan("worker", ip, config, state, None if head_restarted else alive, no_restart, restart_only)
        if plan is None:
            echo(f"  (worker {ip}) Ray is running and the configuration is up to date: nothing to do.")
            state.set_tags(ip, "worker")
        else:
            plans[ip] = plan
    others = [ip for ip in worker_ips if ip not in targets]
    if head_restarted and alive and others:
        # The head ran a cluster: workers its autoscaler had started belong to the old GCS. Stop them (the new
        # autoscaler starts them again when there is demand).
        echo(f"Stopping Ray on the other worker hosts ({', '.join(others)}): they belonged to the old head.")
        for error in _stop_hosts(config, state, [("worker", ip, ip) for ip in others], quiet_unreachable=True):
            echo(f"  Note: {error}")
    token = None
    if any(p.start for p in plans.values()):
        try:
            rc, out, _ = head.runner.capture("ray get-auth-token")
        except SSHError as e:
            _fail([NodeUpdateError(head_ip, "head", "reading the cluster's token (ray get-auth-token)",
                                   _hint(e, config))], list(plans), head_failed=True)
        token = out.strip() if rc == 0 and out.strip() else None
        if token is None:
            echo("  Note: the head has no authentication token (is RAY_AUTH_MODE=disabled there?); workers get "
                 "none.")
    errors = []
    if plans:
        echo(f"Updating {len(plans)} worker node{'s' if len(plans) != 1 else ''}")

        def one(ip: str) -> NodeUpdateError | None:
            try:
                NodeUpdater(ip, "worker", config, state, plans[ip], head_ip, token=token).update()
            except NodeUpdateError as e:
                return e
            return None

        with ThreadPoolExecutor(max_workers=min(len(plans), 32)) as pool:
            errors = [e for e in pool.map(one, plans) if e is not None]
    if errors:
        _fail(errors, [], head_failed=False)
    _useful_commands(config_file, config)


def workers_to_start(config: dict[str, Any], alive: set[str] | None) -> list[str]:
    """The worker hosts `ray up` starts itself: min_workers of them, those whose Ray is alive first (so a
    second `ray up` keeps the workers that run), then in the order of provider.worker_ips. The head's
    autoscaler starts the others on demand."""
    ips = config["provider"]["worker_ips"]
    running = [ip for ip in ips if alive is not None and (ip in alive or _resolve(ip) in alive)]
    return (running + [ip for ip in ips if ip not in running])[:config["min_workers"]]


def _hint(e: SSHError, config: dict[str, Any]) -> str:
    return ssh_hint(str(e), config, e.unreachable)


def _fail(errors: list[NodeUpdateError], untouched: list[str], head_failed: bool) -> None:
    for e in errors:
        echo(f"Error: {e}")
    hosts = ", ".join(f"{e.role} {e.ip} ({e.step})" for e in errors)
    msg = f"Failed to update {len(errors)} node{'s' if len(errors) != 1 else ''}: {hosts}."
    if head_failed and untouched:
        msg += f" The worker nodes ({', '.join(untouched)}) were not touched."
    raise LauncherError(msg)


def _useful_commands(config_file: str, config: dict[str, Any]) -> None:
    cfg = shlex.quote(os.path.abspath(config_file))
    echo(f"\nUseful commands:\n  To terminate the cluster:\n    ray down {cfg}\n\n"
         f"  To retrieve the IP address of the cluster head:\n    ray get-head-ip {cfg}\n\n"
         f"  To see the status of the cluster:\n    ray exec {cfg} 'ray status'\n\n"
         f"  To submit a script to the cluster:\n    ray submit {cfg} my_script.py\n\n"
         f"  To connect to a terminal on the cluster head for debugging:\n    ray attach {cfg}\n")


def _stop_hosts(config: dict[str, Any], state: st.ClusterState, targets: list[tuple[str, str, str]],
                quiet_unreachable: bool = False) -> list[str]:
    """`ray stop` on each (role, ip, ssh address), the first alone (the head goes first, as in Ray), the others in
    parallel; each host's result printed; the errors, each naming its host."""
    provider, auth = config["provider"], config["auth"]

    def stop(target: tuple[str, str, str]) -> str | None:
        role, ip, address = target
        runner = SSHRunner(address, auth["ssh_user"], auth.get("ssh_private_key"), auth.get("ssh_proxy_command"))
        try:
            out = runner.run("ray stop", env={"RAY_HEAD_IP": provider["head_ip"]})
        except SSHError as e:
            if quiet_unreachable and e.unreachable:
                return None
            return f"{role} {ip}: ray stop failed: {_hint(e, config)}"
        except CommandFailed as e:
            return f"{role} {ip}: ray stop failed: {e}\n{e.output_tail}"
        echo(f"  ({role} {ip}) {out.strip().splitlines()[-1] if out.strip() else 'ray stop: done'}")
        state.terminate(ip)
        return None

    errors = [e for e in map(stop, targets[:1]) if e]
    if len(targets) > 1:
        with ThreadPoolExecutor(max_workers=min(len(targets) - 1, 32)) as pool:
            errors += [e for e in pool.map(stop, targets[1:]) if e]
    return errors


def teardown_cluster(config_file: str, yes: bool = False, workers_only: bool = False,
                     keep_min_workers: bool = False, cluster_name: str | None = None) -> None:
    """`ray stop` on every host (the head first, as Ray does), those the head's autoscaler started included;
    each host's result printed; the hosts that failed are named and the exit status is non-zero."""
    config = load_config(config_file, cluster_name)
    provider = config["provider"]
    state = st.ClusterState(config["cluster_name"])
    if not yes:
        click.confirm("Destroying cluster. Confirm", abort=True)
    targets: list[tuple[str, str, str]] = []  # (role, ip, ssh address)
    if not workers_only:
        targets.append(("head", provider["head_ip"], head_ssh_ip(config)))
    # --keep-min-workers: the min_workers hosts `ray up` starts stay.
    keep = set(provider["worker_ips"][:config["min_workers"]]) if keep_min_workers else set()
    targets += [("worker", ip, ip) for ip in provider["worker_ips"] if ip not in keep]
    echo(f"Destroying cluster {config['cluster_name']}: running `ray stop` on {len(targets)} node"
         f"{'s' if len(targets) != 1 else ''}.")
    errors = _stop_hosts(config, state, targets)
    if errors:
        for e in errors:
            echo(f"Error: {e}")
        raise LauncherError(f"Could not stop Ray on {len(errors)} of {len(targets)} nodes.")
    echo(f"Requested {len(targets)} nodes to shut down.")


def _require_head(config: dict[str, Any]) -> SSHRunner:
    state = st.ClusterState(config["cluster_name"])
    if config["provider"]["head_ip"] not in state.running("head"):
        raise LauncherError(f"Head node of cluster ({config['cluster_name']}) not found!")
    return head_runner(config)


def exec_cluster(config_file: str, cmd: str | None, start: bool = False, stop: bool = False,
                 cluster_name: str | None = None, tty: bool = False) -> int:
    """Run `cmd` on the head in the cluster's shell environment (an interactive shell when None); the
    command's own exit status."""
    config = load_config(config_file, cluster_name)
    if start:
        create_or_update_cluster(config_file, yes=True, cluster_name=cluster_name)
    runner = _require_head(config)
    remote = cmd if cmd is not None else "exec ${SHELL:-bash} -i"
    argv = runner.argv(remote, env={"RAY_HEAD_IP": config["provider"]["head_ip"]}, tty=tty or cmd is None)
    rc = subprocess.call(argv, stdin=None if tty or cmd is None else subprocess.DEVNULL)
    if rc == 255:
        echo(f"Error: ssh to the head {runner.ip} failed (exit status 255); see the message above.")
    if stop:
        teardown_cluster(config_file, yes=True, cluster_name=cluster_name)
    return rc


def submit(config_file: str, script: str, script_args: list[str], start: bool = False, stop: bool = False,
           cluster_name: str | None = None) -> int:
    """Copy `script` to the head's home and run it there with `python` (Ray's `ray submit`)."""
    if not os.path.isfile(script):
        raise LauncherError(f"Script {script} not found.")
    config = load_config(config_file, cluster_name)
    if start:
        create_or_update_cluster(config_file, yes=True, cluster_name=cluster_name)
    runner = _require_head(config)
    target = "~/" + os.path.basename(script)
    try:
        runner.rsync_up(os.path.abspath(script), target)
    except (SSHError, CommandFailed) as e:
        raise LauncherError(f"head {runner.ip}: copying {script} to {target} failed: {e}") from None
    cmd = " ".join(["python", target, *(shlex.quote(a) for a in script_args)])
    return exec_cluster(config_file, cmd, stop=stop, cluster_name=cluster_name)


def rsync(config_file: str, source: str, target: str, down: bool, all_nodes: bool = False,
          cluster_name: str | None = None) -> None:
    config = load_config(config_file, cluster_name)
    runners = [_require_head(config)]
    if all_nodes and not down:
        auth = config["auth"]
        state = st.ClusterState(config["cluster_name"])
        runners += [SSHRunner(ip, auth["ssh_user"], auth.get("ssh_private_key"), auth.get("ssh_proxy_command"))
                    for ip in config["provider"]["worker_ips"] if ip in state.running("worker")]
    for runner in runners:
        try:
            if down:
                runner.rsync_down(source, target, on_line=echo)
            else:
                runner.rsync_up(source, target, config["rsync_exclude"], config["rsync_filter"], on_line=echo)
        except (SSHError, CommandFailed) as e:
            raise LauncherError(f"{runner.ip}: rsync {'down' if down else 'up'} of {source} to {target} failed: "
                                f"{e}") from None


def get_head_ip(config_file: str, cluster_name: str | None = None) -> str:
    config = load_config(config_file, cluster_name)
    _require_head(config)
    return head_ssh_ip(config)


def get_worker_ips(config_file: str, cluster_name: str | None = None) -> list[str]:
    """The worker hosts that run Ray: as the head's GCS says (workers its autoscaler started included), or as
    this machine's state file says when the head cannot be asked."""
    config = load_config(config_file, cluster_name)
    runner = _require_head(config)
    try:
        alive = alive_node_ips(runner)
    except SSHError:
        alive = None
    if alive is None:
        running = st.ClusterState(config["cluster_name"]).running("worker")
        return [ip for ip in config["provider"]["worker_ips"] if ip in running]
    return [ip for ip in config["provider"]["worker_ips"] if ip in alive or _resolve(ip) in alive]


def print_node_ips() -> None:
    """`ray cluster-node-ips` (hidden; what `ray up` runs on the head): the alive nodes' addresses as JSON."""
    from ray._common import process_registry
    from ray._common.gcs_client import GcsClient
    from ray.protocol import gcs_pb2 as pb

    path = process_registry.current_cluster_file(process_registry.default_temp_dir())
    if not path.exists():
        print(json.dumps({"alive": []}))
        return
    try:
        client = GcsClient(path.read_text().strip(), timeout_s=5)
        try:
            nodes = client.get_all_node_info_proto()
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001 - a dead or unreachable GCS means: nothing is alive
        print(json.dumps({"alive": [], "error": str(e)}))
        return
    print(json.dumps({"alive": sorted(n.node_manager_address for n in nodes if n.state == pb.GcsNodeInfo.ALIVE)}))
    sys.stdout.flush()
