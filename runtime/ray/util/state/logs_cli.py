"""`ray logs`: Ray's log CLI over `ray.util.state.list_logs/get_log`.

    ray logs [GLOB]                 = ray logs cluster [GLOB]
    ray logs cluster [GLOB]         list the files matching GLOB on a node (the head by default), or print
                                    the file when exactly one matches
    ray logs actor --id ID          an actor's worker stdout (--err: stderr)
    ray logs task --id ID           what a task printed (--attempt-number N, --err)
    ray logs worker --pid PID       a worker's stdout on a node (--node-id/--node-ip, default the head)
    ray logs job --id SUBMISSION    a submitted job's driver log
    common: --address, --node-id, --node-ip, -f/--follow, --tail N (default 1000, -1: all), --interval,
            --timeout, --encoding, --encoding-errors
"""

from __future__ import annotations

import sys

import click

from ray.util.state.exception import RayStateApiException
from ray.util.state.logs import DEFAULT_LOG_LIMIT, DEFAULT_RPC_TIMEOUT, get_log, list_logs


def _common(f):
    options = [
        click.option("--address", default=None, help="The dashboard's address (default: this machine's cluster)."),
        click.option("--node-id", "-id", default=None, help="The node's id (default: the head node)."),
        click.option("--node-ip", "-ip", default=None, help="The node's IP address."),
        click.option("--follow", "-f", is_flag=True, default=False, help="Keep printing new lines."),
        click.option("--tail", type=int, default=DEFAULT_LOG_LIMIT,
                     help="How many of the last lines to print first (-1: the whole file)."),
        click.option("--interval", type=float, default=None, help="How often to check for new lines (s)."),
        click.option("--timeout", type=int, default=DEFAULT_RPC_TIMEOUT, help="Seconds before giving up."),
        click.option("--encoding", default="utf-8", help="The file's text encoding."),
        click.option("--encoding-errors", default="strict", help="What to do with undecodable bytes."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _print(**kwargs) -> None:
    try:
        for chunk in get_log(**kwargs):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except (RayStateApiException, ConnectionError) as e:
        raise click.ClickException(str(e)) from e
    except KeyboardInterrupt:
        pass


class _LogsGroup(click.Group):
    """`ray logs GLOB` means `ray logs cluster GLOB`, as in Ray."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["cluster", *args]
        return super().parse_args(ctx, args)


@click.group(name="logs", cls=_LogsGroup)
def logs_state_cli_group() -> None:
    """Print or list the cluster's log files (worker, raylet, GCS, dashboard, job drivers)."""


@logs_state_cli_group.command(name="cluster")
@click.argument("glob_filter", required=False, default="*")
@_common
def log_cluster(glob_filter, address, node_id, node_ip, follow, tail, interval, timeout, encoding, encoding_errors):
    """List the files matching GLOB_FILTER on a node, or print the one that matches."""
    try:
        files = list_logs(address=address, node_id=node_id, node_ip=node_ip, glob_filter=glob_filter,
                          timeout=timeout)
    except (RayStateApiException, ConnectionError) as e:
        raise click.ClickException(str(e)) from e
    names = [name for category in files.values() for name in category]
    if len(names) == 1:
        _print(address=address, node_id=node_id, node_ip=node_ip, filename=names[0], follow=follow, tail=tail,
               timeout=timeout, _interval=interval, encoding=encoding, errors=encoding_errors)
        return
    if not names:
        raise click.ClickException(f"No log file matches {glob_filter!r} on the node.")
    where = f"node id {node_id}" if node_id else f"node ip {node_ip}" if node_ip else "the head node"
    click.echo(f"======== Log files on {where} ========")
    for category, category_files in files.items():
        click.echo(f"------ {category} ------")
        for name in category_files:
            click.echo(name)
        click.echo("")
    click.echo("To print a file: ray logs <file name> (add -f to follow it).")


@logs_state_cli_group.command(name="actor")
@click.option("--id", "-a", "actor_id", required=True, help="The actor's id.")
@click.option("--err", is_flag=True, default=False, help="Print its stderr instead of its stdout.")
@_common
def log_actor(actor_id, err, address, node_id, node_ip, follow, tail, interval, timeout, encoding,
              encoding_errors):
    """Print an actor's worker output."""
    _print(address=address, actor_id=actor_id, suffix="err" if err else "out", follow=follow, tail=tail,
           timeout=timeout, _interval=interval, encoding=encoding, errors=encoding_errors)


@logs_state_cli_group.command(name="task")
@click.option("--id", "task_id", required=True, help="The task's id.")
@click.option("--attempt-number", type=int, default=0, help="The attempt (0: the first run; retries count up).")
@click.option("--err", is_flag=True, default=False, help="Print its stderr instead of its stdout.")
@_common
def log_task(task_id, attempt_number, err, address, node_id, node_ip, follow, tail, interval, timeout, encoding,
             encoding_errors):
    """Print what a task wrote to its worker's stdout (--err: stderr) while it ran."""
    _print(address=address, task_id=task_id, attempt_number=attempt_number, suffix="err" if err else "out",
           follow=follow, tail=tail, timeout=timeout, _interval=interval, encoding=encoding, errors=encoding_errors)


@logs_state_cli_group.command(name="worker")
@click.option("--pid", "-pid", type=int, required=True, help="The worker's process id.")
@click.option("--err", is_flag=True, default=False, help="Print its stderr instead of its stdout.")
@_common
def log_worker(pid, err, address, node_id, node_ip, follow, tail, interval, timeout, encoding, encoding_errors):
    """Print a worker's output."""
    _print(address=address, node_id=node_id, node_ip=node_ip, pid=pid, suffix="err" if err else "out",
           follow=follow, tail=tail, timeout=timeout, _interval=interval, encoding=encoding,
           errors=encoding_errors)


@logs_state_cli_group.command(name="job")
@click.option("--id", "submission_id", required=True, help="The job's submission id.")
@_common
def log_job(submission_id, address, node_id, node_ip, follow, tail, interval, timeout, encoding, encoding_errors):
    """Print a submitted job's driver log."""
    _print(address=address, submission_id=submission_id, follow=follow, tail=tail, timeout=timeout,
           _interval=interval, encoding=encoding, errors=encoding_errors)
