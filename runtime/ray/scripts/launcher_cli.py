"""The cluster launcher's commands (Ray's names, arguments and options): `ray up`, `down`, `attach`, `exec`,
`submit`, `rsync-up`, `rsync-down`, `get-head-ip`, `get-worker-ips`. The work is in
`ray.autoscaler._private.launcher.commands`."""

from __future__ import annotations

import sys

import click

_NAME = click.option("-n", "--cluster-name", default=None, help="Override the configured cluster name.")
_CONFIG = click.argument("cluster_config_file", required=True, type=click.Path())
_NOT_SUPPORTED = ("screen", "tmux", "port_forward")


def _commands():
    from ray.autoscaler._private.launcher import commands

    return commands


def _refuse(kw: dict) -> None:
    for name in _NOT_SUPPORTED:
        if kw.get(name):
            raise click.UsageError(f"--{name.replace('_', '-')} is not supported by OpenRay's launcher.")


@click.command()
@_CONFIG
@click.option("--min-workers", type=int, default=None, help="Override the configured min worker node count.")
@click.option("--max-workers", type=int, default=None, help="Override the configured max worker node count.")
@click.option("--no-restart", is_flag=True, default=False,
              help="Whether to skip restarting Ray services during the update. This avoids interrupting running jobs.")
@click.option("--restart-only", is_flag=True, default=False,
              help="Whether to skip running setup commands and only restart Ray. This cannot be used with "
                   "'no-restart'.")
@click.option("-y", "--yes", is_flag=True, default=False, help="Don't ask for confirmation.")
@_NAME
@click.option("--no-config-cache", is_flag=True, default=False, help="Disable the local cluster config cache.")
@click.option("--redirect-command-output", is_flag=True, default=False, hidden=True)
@click.option("--use-login-shells/--use-normal-shells", default=True, hidden=True)
@click.option("--disable-usage-stats", is_flag=True, default=False, hidden=True)
def up(cluster_config_file: str, min_workers: int | None, max_workers: int | None, no_restart: bool,
       restart_only: bool, yes: bool, cluster_name: str | None, **_ignored) -> None:
    """Create or update a Ray cluster."""
    if min_workers is not None or max_workers is not None:
        click.echo("Note: the local provider runs one worker per host in provider.worker_ips; --min-workers and "
                   "--max-workers have no effect.")
    _commands().create_or_update_cluster(cluster_config_file, yes=yes, no_restart=no_restart,
                                         restart_only=restart_only, cluster_name=cluster_name)


@click.command()
@_CONFIG
@click.option("-y", "--yes", is_flag=True, default=False, help="Don't ask for confirmation.")
@click.option("--workers-only", is_flag=True, default=False, help="Only destroy the workers.")
@click.option("--keep-min-workers", is_flag=True, default=False, help="Retain the minimal amount of workers "
              "specified in the config.")
@_NAME
def down(cluster_config_file: str, yes: bool, workers_only: bool, keep_min_workers: bool,
         cluster_name: str | None) -> None:
    """Tear down a Ray cluster: `ray stop` on every node."""
    _commands().teardown_cluster(cluster_config_file, yes=yes, workers_only=workers_only,
                                 keep_min_workers=keep_min_workers, cluster_name=cluster_name)


@click.command()
@_CONFIG
@click.option("--start", is_flag=True, default=False, help="Start the cluster if needed.")
@click.option("--screen", is_flag=True, default=False, help="Run the command in screen.")
@click.option("--tmux", is_flag=True, default=False, help="Run the command in tmux.")
@_NAME
@click.option("--no-config-cache", is_flag=True, default=False)
@click.option("-N", "--new", is_flag=True, default=False, help="Force creation of a new screen.")
@click.option("-p", "--port-forward", multiple=True, type=int, help="Port to forward.")
@click.option("--disable-usage-stats", is_flag=True, default=False, hidden=True)
def attach(cluster_config_file: str, start: bool, cluster_name: str | None, **kw) -> None:
    """Create or attach to a SSH session to a Ray cluster."""
    _refuse(kw)
    sys.exit(_commands().exec_cluster(cluster_config_file, None, start=start, cluster_name=cluster_name, tty=True))


@click.command(name="exec")
@_CONFIG
@click.argument("cmd", required=True, type=str)
@click.option("--run-env", type=click.Choice(["auto", "host", "docker"]), default="auto",
              help="Choose whether to execute this command in a container or directly on the cluster head.")
@click.option("--stop", is_flag=True, default=False, help="Stop the cluster after the command finishes running.")
@click.option("--start", is_flag=True, default=False, help="Start the cluster if needed.")
@click.option("--screen", is_flag=True, default=False, help="Run the command in a screen.")
@click.option("--tmux", is_flag=True, default=False, help="Run the command in tmux.")
@_NAME
@click.option("--no-config-cache", is_flag=True, default=False)
@click.option("-p", "--port-forward", multiple=True, type=int, help="Port to forward.")
@click.option("--disable-usage-stats", is_flag=True, default=False, hidden=True)
def exec_(cluster_config_file: str, cmd: str, stop: bool, start: bool, cluster_name: str | None, **kw) -> None:
    """Execute a command via SSH on a Ray cluster."""
    _refuse(kw)
    sys.exit(_commands().exec_cluster(cluster_config_file, cmd, start=start, stop=stop, cluster_name=cluster_name))


@click.command(context_settings={"ignore_unknown_options": True})
@_CONFIG
@click.argument("script", required=True, type=str)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--stop", is_flag=True, default=False, help="Stop the cluster after the command finishes running.")
@click.option("--start", is_flag=True, default=False, help="Start the cluster if needed.")
@click.option("--screen", is_flag=True, default=False, help="Run the command in a screen.")
@click.option("--tmux", is_flag=True, default=False, help="Run the command in tmux.")
@_NAME
@click.option("--no-config-cache", is_flag=True, default=False)
@click.option("-p", "--port-forward", multiple=True, type=int, help="Port to forward.")
@click.option("--disable-usage-stats", is_flag=True, default=False, hidden=True)
def submit(cluster_config_file: str, script: str, script_args: tuple[str, ...], stop: bool, start: bool,
           cluster_name: str | None, **kw) -> None:
    """Uploads and runs a script on the specified cluster (to the head's home directory, run with `python`)."""
    _refuse(kw)
    sys.exit(_commands().submit(cluster_config_file, script, list(script_args), start=start, stop=stop,
                                cluster_name=cluster_name))


@click.command(name="rsync-up")
@_CONFIG
@click.argument("source", required=True, type=str)
@click.argument("target", required=True, type=str)
@_NAME
@click.option("--all-nodes", "-A", is_flag=True, default=False, help="Upload to all nodes (workers and head).")
@click.option("-v", "--verbose", is_flag=True, default=False)
def rsync_up(cluster_config_file: str, source: str, target: str, cluster_name: str | None, all_nodes: bool,
             verbose: bool) -> None:
    """Upload specific files to a Ray cluster."""
    _commands().rsync(cluster_config_file, source, target, down=False, all_nodes=all_nodes, cluster_name=cluster_name)


@click.command(name="rsync-down")
@_CONFIG
@click.argument("source", required=True, type=str)
@click.argument("target", required=True, type=str)
@_NAME
def rsync_down(cluster_config_file: str, source: str, target: str, cluster_name: str | None) -> None:
    """Download specific files from a Ray cluster."""
    _commands().rsync(cluster_config_file, source, target, down=True, cluster_name=cluster_name)


@click.command(name="get-head-ip")
@_CONFIG
@_NAME
def get_head_ip(cluster_config_file: str, cluster_name: str | None) -> None:
    """Return the head node IP of a Ray cluster."""
    click.echo(_commands().get_head_ip(cluster_config_file, cluster_name))


@click.command(name="get-worker-ips")
@_CONFIG
@_NAME
def get_worker_ips(cluster_config_file: str, cluster_name: str | None) -> None:
    """Return the list of worker IPs of a Ray cluster."""
    ips = _commands().get_worker_ips(cluster_config_file, cluster_name)
    click.echo("\n".join(ips))


@click.command(name="cluster-node-ips", hidden=True)
def cluster_node_ips() -> None:
    """The addresses of the alive nodes of the cluster this machine runs, as JSON (for `ray up`)."""
    _commands().print_node_ips()


def alias(command: click.Command, name: str) -> click.Command:
    """A hidden copy of `command` under another name (Ray's `add_command_alias`: `rsync_up` for `rsync-up`)."""
    import copy

    other = copy.copy(command)
    other.name, other.hidden = name, True
    return other
