"""The `ray` command line (click): start, stop, status, health-check; `ray job` comes from the jobs module, the
cluster launcher (`ray up`, `down`, `exec`, ...) from launcher_cli."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import click

from ray._common import auth, process_registry
from ray._version import version as ray_version
from ray.dashboard.modules.job.cli import job_cli_group
from ray.exceptions import AuthenticationError
from ray.scripts import launcher_cli
from ray.util.state import memory_cli, state_cli
from ray.util.state.logs_cli import logs_state_cli_group

logger = logging.getLogger("ray.scripts")


def _temp_dir(temp_dir: str | None) -> str:
    return temp_dir or process_registry.default_temp_dir()


def resolve_gcs_address(address: str | None, temp_dir: str | None = None) -> str:
    """--address, else RAY_ADDRESS, else the cluster `ray start` recorded on this machine."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "auto":
        return address
    path = process_registry.current_cluster_file(_temp_dir(temp_dir))
    if path.exists():
        return path.read_text().strip()
    raise click.ClickException(
        "Could not find any running Ray instance. Please specify the one to connect to by setting "
        "`--address` flag or `RAY_ADDRESS` environment variable."
    )


@click.group()
@click.version_option(version=ray_version, prog_name="ray")
def cli() -> None:
    """OpenRay command line: start and stop nodes, check status, submit jobs."""


def _parse_labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    text = text.strip()
    if text.startswith("{"):
        value = json.loads(text)
        return {str(k): str(v) for k, v in value.items()}
    labels = {}
    for item in text.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise click.BadParameter(f"Label {item!r} is not of the form key=value.", param_hint="--labels")
        k, v = item.split("=", 1)
        labels[k.strip()] = v.strip()
    return labels


_ACCEPTED_BUT_IGNORED = [
    "gcs_server_port", "node_manager_port", "object_manager_port",
    "min_worker_port", "max_worker_port", "worker_port_list", "runtime_env_agent_port",
    "plasma_directory", "object_spilling_directory",
    "disable_usage_stats", "include_log_monitor", "log_style", "log_color", "verbose", "storage",
    "labels_file", "node_name", "redis_shard_ports", "metrics_export_port",
]


@cli.command()
@click.option("--head", is_flag=True, default=False, help="Start the head node of a new cluster.")
@click.option("--address", default=None, help="The GCS address (host:port) of the cluster to join.")
@click.option("--port", type=int, default=None, help="The GCS port of the head (default 6379; 0 = any free).")
@click.option("--node-ip-address", default=None, help="The IP address of this node.")
@click.option("--num-cpus", type=float, default=None)
@click.option("--num-gpus", type=float, default=None)
@click.option("--memory", type=int, default=None, help="Memory (bytes) available to tasks and actors.")
@click.option("--resources", default="{}", help="Custom resources as JSON, e.g. '{\"bob\": 5}'.")
@click.option("--object-store-memory", type=int, default=None, help="Object store size in bytes.")
@click.option("--dashboard-host", default="localhost")
@click.option("--dashboard-port", type=int, default=None)
@click.option("--dashboard-agent-listen-port", type=int, default=None)
@click.option("--dashboard-agent-grpc-port", type=int, default=None)
@click.option("--metrics-export-port", type=int, default=None)
@click.option("--include-dashboard", type=bool, default=None)
@click.option("--block", is_flag=True, default=False, help="Stay in the foreground until a Ray process dies.")
@click.option("--temp-dir", default=None, help="Root of session dirs (default /tmp/ray).")
@click.option("--labels", default=None, help="Node labels: 'k1=v1,k2=v2' or JSON.")
@click.option("--system-config", default=None, help="JSON of internal config overrides.")
@click.option("--ray-client-server-port", type=int, default=None)
@click.option("--gcs-server-port", type=int, default=None)
@click.option("--node-manager-port", type=int, default=None)
@click.option("--object-manager-port", type=int, default=None)
@click.option("--min-worker-port", type=int, default=None)
@click.option("--max-worker-port", type=int, default=None)
@click.option("--worker-port-list", default=None)
@click.option("--runtime-env-agent-port", type=int, default=None)
@click.option("--plasma-directory", default=None)
@click.option("--object-spilling-directory", default=None)
@click.option("--autoscaling-config", default=None)
@click.option("--no-monitor", is_flag=True, default=False)
@click.option("--disable-usage-stats", is_flag=True, default=False)
@click.option("--include-log-monitor", type=bool, default=None)
@click.option("--log-style", default=None)
@click.option("--log-color", default=None)
@click.option("--storage", default=None)
@click.option("--labels-file", default=None)
@click.option("--node-name", default=None)
@click.option("--redis-address", envvar="RAY_REDIS_ADDRESS", default=None,
              help="Head only: keep the GCS tables in this Redis (host:port) so a restarted GCS takes the cluster "
                   "over (GCS fault tolerance). Default $RAY_REDIS_ADDRESS.")
@click.option("--redis-password", envvar="REDIS_PASSWORD", default=None,
              help="The password of --redis-address (default $REDIS_PASSWORD).")
@click.option("--redis-username", envvar="REDIS_USERNAME", default=None,
              help="The Redis ACL user of --redis-address (default $REDIS_USERNAME).")
@click.option("--redis-shard-ports", default=None)
@click.option("-v", "--verbose", is_flag=True, default=False)
def start(**kw) -> None:
    """Start Ray processes on this machine (a head with --head, else a worker joining --address)."""
    from ray._private.node import Node, NodeParams, ProcessStartError
    from ray._private.resource_spec import parse_resources_json

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in _ACCEPTED_BUT_IGNORED:
        if kw.get(name) not in (None, False):
            logger.info("Note: --%s=%s is accepted but has no effect in OpenRay.", name.replace("_", "-"), kw[name])
    if not kw["head"] and not kw["address"]:
        raise click.UsageError("Either --head or --address=<head_ip>:<port> must be given.")
    if kw["head"] and kw["address"]:
        raise click.UsageError("--head and --address cannot be used together: the head starts its own GCS. To keep "
                               "the GCS's tables in an external Redis, use --redis-address=<host>:<port>.")
    if kw["redis_address"] and not kw["head"]:
        raise click.UsageError("--redis-address is for the head node (its GCS keeps its tables there); worker nodes "
                               "join with --address=<head_ip>:<port>.")
    if kw["redis_address"]:
        from ray.gcs.redis_store import parse_redis_address

        try:
            parse_redis_address(kw["redis_address"])
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--redis-address") from e
    try:
        resources = parse_resources_json(kw["resources"])
        system_config = json.loads(kw["system_config"]) if kw["system_config"] else {}
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    address = None
    if kw["address"]:
        address = resolve_gcs_address(kw["address"], kw["temp_dir"])
        try:
            auth.process_token()  # joining a cluster needs its token (Ray's message when there is none)
        except (AuthenticationError, ValueError) as e:
            raise click.ClickException(str(e)) from e
        _check_gcs(address)
    autoscaling_config = None
    node_env: dict[str, str] = {}
    if kw["autoscaling_config"] and kw["head"] and not kw["no_monitor"]:
        from ray.autoscaler._private.config import head_node_env

        autoscaling_config = os.path.abspath(os.path.expanduser(kw["autoscaling_config"]))
        _check_autoscaling_config(autoscaling_config)
        node_env = head_node_env(autoscaling_config)
    elif kw["autoscaling_config"] and not kw["head"]:
        logger.info("Note: --autoscaling-config has effect on the head only (its autoscaler); ignored here.")
    params = NodeParams(
        autoscaling_config=autoscaling_config,
        env=node_env,
        head=kw["head"],
        gcs_address=address,
        port=6379 if kw["port"] is None else kw["port"],
        node_ip_address=kw["node_ip_address"],
        num_cpus=kw["num_cpus"],
        num_gpus=kw["num_gpus"],
        memory=kw["memory"],
        object_store_memory=kw["object_store_memory"],
        resources=resources,
        labels=_parse_labels(kw["labels"]),
        temp_dir=kw["temp_dir"],
        include_dashboard=kw["include_dashboard"],
        dashboard_host="127.0.0.1" if kw["dashboard_host"] == "localhost" else kw["dashboard_host"],
        dashboard_port=kw["dashboard_port"],
        dashboard_agent_listen_port=kw["dashboard_agent_listen_port"],
        dashboard_agent_grpc_port=kw["dashboard_agent_grpc_port"],
        metrics_export_port=kw["metrics_export_port"],
        system_config=system_config,
        ray_client_server_port=(kw["ray_client_server_port"] if kw["ray_client_server_port"] is not None
                                else 10001) if kw["head"] else None,
        ray_client_server_port_explicit=kw["ray_client_server_port"] is not None,
        redis_address=kw["redis_address"] or "",
        redis_password=kw["redis_password"] or "",
        redis_username=kw["redis_username"] or "",
    )
    node = Node(params)
    # With --block, a SIGTERM or SIGINT from now on stops the node: one that came while it started used to kill
    # this process only, and the node's processes (each in a session of its own) lived on, orphaned.
    stopping = _stop_on_signals() if kw["block"] else {"flag": False}
    try:
        node.start()
    except (ProcessStartError, ValueError, OSError, AuthenticationError) as e:
        raise click.ClickException(str(e)) from e
    if node.dashboard_url and not stopping["flag"] and not node.wait_for_dashboard(
            float(os.environ.get("RAY_DASHBOARD_STARTUP_TIMEOUT_S", 60))):
        click.echo(f"Warning: the dashboard did not start listening on {node.dashboard_url}; job submission and the "
                   f"web UI are unavailable. See {os.path.join(node.session_dir, 'logs', 'dashboard.log')}.", err=True)
    if not stopping["flag"] and not node.wait_for_agent(float(os.environ.get("RAY_DASHBOARD_STARTUP_TIMEOUT_S", 60))):
        click.echo(f"Warning: the dashboard agent did not start listening on port {node.agent_http_port}; health "
                   f"probes, logs and metrics of this node are unavailable. See "
                   f"{os.path.join(node.session_dir, 'logs', 'agent.log')}.", err=True)
    if kw["block"]:
        if not stopping["flag"]:
            _print_started(node, params)
        _block(node, stopping)
        return
    _print_started(node, params)


def _check_autoscaling_config(path: str) -> None:
    """Say at once what is wrong with the autoscaling config; the head starts all the same (its autoscaler
    reports the problem in `ray status` and monitor.log, and reads the file again every round)."""
    from ray.autoscaler._private.config import ConfigError, load_file, parse

    try:
        parse(load_file(path))
    except ConfigError as e:
        click.echo(f"Warning: the autoscaling config cannot be used: {e} The autoscaler reports this in `ray "
                   "status` and monitor.log until the file is fixed; the cluster starts without scaling.", err=True)


def _check_gcs(address: str) -> None:
    from ray._common.gcs_client import GcsClient

    client = GcsClient(address, timeout_s=30)
    try:
        client.check_alive()
    except ConnectionError as e:
        raise click.ClickException(f"Unable to connect to GCS at {address}: {e}") from e
    except AuthenticationError as e:
        raise click.ClickException(str(e)) from e
    finally:
        client.close()


def _print_started(node, params) -> None:
    click.echo(f"Local node IP: {node.node_ip_address}")
    click.echo("\n--------------------\nRay runtime started.\n--------------------\n")
    if params.head:
        if node.auth_token is None:
            click.echo(f"Warning: {auth.DISABLED_WARNING}\n", err=True)
        else:
            made = f"generated and saved to {node.generated_token_path}" if node.generated_token_path else \
                f"from {auth.token_source()}"
            click.echo(f"Token authentication is on; the cluster's token is {made}. Nodes, drivers and job "
                       "clients joining it need that token (`ray get-auth-token` prints it). Set "
                       "RAY_AUTH_MODE=disabled to opt out.\n")
        click.echo("Next steps")
        click.echo("  To add another node to this Ray cluster, run")
        click.echo(f"    ray start --address='{node.gcs_address}'")
        click.echo("\n  To connect to this Ray cluster:")
        click.echo("    import ray")
        click.echo("    ray.init()")
        if node.ray_client_server_port:
            click.echo("\n  To connect to this Ray cluster from outside it (Ray Client):")
            click.echo(f"    ray.init('ray://{node.node_ip_address}:{node.ray_client_server_port}')")
        if node.dashboard_url:
            click.echo("\n  To submit a Ray job using the Ray Jobs CLI:")
            click.echo(
                f"    RAY_ADDRESS='http://{node.dashboard_url}' ray job submit --working-dir . -- python my_script.py"
            )
        click.echo("\n  To see the status of the cluster, use")
        click.echo("    ray status")
        if node.dashboard_url:
            click.echo("\n  To monitor and debug Ray, view the dashboard at")
            click.echo(f"    {node.dashboard_url}")
    click.echo("\n  To terminate the Ray runtime, run")
    click.echo("    ray stop")


def _stop_on_signals() -> dict[str, bool]:
    """SIGTERM and SIGINT set the returned flag (the node is stopped where it is checked)."""
    stopping = {"flag": False}

    def _on_signal(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return stopping


def _block(node, stopping: dict[str, bool]) -> None:
    click.echo("--block\n  This command will now block forever until terminated by a signal.")
    click.echo("  Running subprocesses are monitored and a message will be printed if any of them terminate unexpectedly.")
    while not stopping["flag"]:
        dead = node.dead_processes()
        if dead:
            click.echo("Some Ray subprocesses exited unexpectedly:", err=True)
            click.echo("Ray processes died unexpectedly: " + ", ".join(dead), err=True)
            node.kill_all()
            sys.exit(1)
        time.sleep(0.5)
    node.kill_all()


@cli.command()
@click.option("-f", "--force", is_flag=True, default=False, help="SIGKILL at once instead of SIGTERM.")
@click.option("-g", "--grace-period", type=int, default=16, help="Seconds to wait before SIGKILL.")
@click.option("-v", "--verbose", is_flag=True, default=False)
@click.option("--temp-dir", default=None, hidden=True)
def stop(force: bool, grace_period: int, verbose: bool, temp_dir: str | None) -> None:
    """Stop every Ray process started on this machine and remove their shared memory."""
    count = process_registry.stop_all(_temp_dir(temp_dir), force=force, grace_period_s=grace_period)
    if count == 0:
        click.echo("Did not find any active Ray processes.")
    else:
        click.echo(f"Stopped all {count} Ray processes.")


@cli.command(name="health-check")
@click.option("--address", default=None, help="The GCS address (host:port) to check.")
@click.option("--component", default=None, help="Accepted for compatibility; the GCS is checked.")
@click.option("--skip-version-check", is_flag=True, default=False)
@click.option("--timeout", type=float, default=10, hidden=True)
def health_check(address: str | None, component: str | None, skip_version_check: bool, timeout: float) -> None:
    """Exit 0 when the GCS at --address answers, 1 otherwise."""
    from ray._common.gcs_client import GcsClient

    try:
        gcs_address = resolve_gcs_address(address)
    except click.ClickException as e:
        click.echo(e.message, err=True)
        sys.exit(1)
    try:
        client = GcsClient(gcs_address, timeout_s=timeout)
    except AuthenticationError as e:
        click.echo(f"Ray cluster at {gcs_address}: {e}", err=True)
        sys.exit(1)
    try:
        reply = client.check_alive()
    except (ConnectionError, ValueError, AuthenticationError) as e:
        click.echo(f"Ray cluster at {gcs_address} is not healthy: {e}", err=True)
        sys.exit(1)
    finally:
        client.close()
    if not skip_version_check and reply.ray_version != ray_version:
        click.echo(
            f"Ray version mismatch: the cluster runs {reply.ray_version}, this client is {ray_version}.", err=True
        )
        sys.exit(1)
    sys.exit(0)


@cli.command()
@click.option("--address", default=None, help="The GCS address (host:port) of the cluster.")
@click.option("-v", "--verbose", is_flag=True, default=False)
def status(address: str | None, verbose: bool) -> None:
    """Print the cluster's nodes, resource usage and pending demands."""
    from ray._common.cluster_status import status_text
    from ray._common.gcs_client import GcsClient

    gcs_address = resolve_gcs_address(address)
    try:
        client = GcsClient(gcs_address, timeout_s=10)
    except AuthenticationError as e:
        raise click.ClickException(str(e)) from e
    try:
        text = status_text(client, verbose)
    except (ConnectionError, AuthenticationError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        client.close()
    click.echo(text)


@cli.command(name="get-auth-token")
@click.option("--generate", is_flag=True, default=False, help="Generate a new token if none exists")
def get_auth_token(generate: bool) -> None:
    """Prints the Ray authentication token to stdout.

    If --generate is specified, a new token is created and saved to ~/.ray/auth_token if one does not exist.
    """
    try:
        token = auth.load_token()
    except AuthenticationError as e:
        raise click.ClickException(str(e)) from e
    if token is None:
        if not generate:
            raise click.ClickException(
                "No authentication token found. Use ray `get-auth-token --generate` to create one.")
        click.echo("Generating new authentication token...", err=True)
        auth.save_default_token(auth.generate_token())
        token = auth.load_token()
    # The token alone on stdout (for piping); the newline goes to stderr, as Ray does.
    click.echo(token, nl=False)
    click.echo("", err=True)


@cli.command(name="kuberay-autoscaler")
@click.option("--cluster-name", required=True, type=str, help="The name of the RayCluster.")
@click.option("--cluster-namespace", required=True, type=str, help="The Kubernetes namespace of the RayCluster.")
def kuberay_autoscaler(cluster_name: str, cluster_namespace: str) -> None:
    """Runs the autoscaler for a Ray cluster managed by KubeRay (the head pod's `autoscaler` sidecar)."""
    from ray.autoscaler._private.monitor import run_kuberay_autoscaler

    sys.exit(run_kuberay_autoscaler(cluster_name, cluster_namespace))


@cli.command()
def microbenchmark() -> None:
    """Run a local Ray microbenchmark on the current machine."""
    from ray.scripts.microbenchmark import main as run_microbenchmark

    run_microbenchmark()


cli.add_command(job_cli_group, name="job")
cli.add_command(state_cli.ray_list, name="list")
cli.add_command(state_cli.ray_get, name="get")
cli.add_command(state_cli.summary_group, name="summary")
cli.add_command(state_cli.timeline, name="timeline")
cli.add_command(memory_cli.memory, name="memory")
cli.add_command(logs_state_cli_group, name="logs")
cli.add_command(launcher_cli.up)
cli.add_command(launcher_cli.down)
cli.add_command(launcher_cli.attach)
cli.add_command(launcher_cli.exec_)
cli.add_command(launcher_cli.submit)
cli.add_command(launcher_cli.rsync_up)
cli.add_command(launcher_cli.alias(launcher_cli.rsync_up, "rsync_up"))
cli.add_command(launcher_cli.rsync_down)
cli.add_command(launcher_cli.alias(launcher_cli.rsync_down, "rsync_down"))
cli.add_command(launcher_cli.get_head_ip)
cli.add_command(launcher_cli.alias(launcher_cli.get_head_ip, "get_head_ip"))
cli.add_command(launcher_cli.get_worker_ips)
cli.add_command(launcher_cli.alias(launcher_cli.get_worker_ips, "get_worker_ips"))
cli.add_command(launcher_cli.cluster_node_ips)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
