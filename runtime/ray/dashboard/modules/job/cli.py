"""`ray job submit|status|logs|stop|list|delete`: Ray's job CLI (flags, output and exit codes)."""

from __future__ import annotations

import asyncio
import json
import os
import pprint
import shlex
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import yaml

from ray.dashboard.modules.job.common import JobStatus
from ray.dashboard.modules.job.sdk import JobSubmissionClient
from ray.exceptions import AuthenticationError


def _parse_verify(value: str | bool) -> str | bool:
    if isinstance(value, bool):
        return value
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return value  # a CA bundle path


def _json_option_value(name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"is not valid JSON ({e}): {value!r}", param_hint=f"--{name}") from e


def _handle_headers(headers: str | None) -> dict[str, Any] | None:
    if headers is None:
        headers = os.environ.get("RAY_JOB_HEADERS")
    if headers is None:
        return None
    parsed = _json_option_value("headers", headers)
    if not isinstance(parsed, dict):
        raise click.BadParameter(f'expected a JSON object like {{"KEY": "VALUE"}}, got {headers!r}',
                                 param_hint="--headers")
    return parsed


def _get_sdk_client(address: str | None, headers: str | None, verify: str | bool) -> JobSubmissionClient:
    client = JobSubmissionClient(address, headers=_handle_headers(headers), verify=_parse_verify(verify))
    click.echo(f"Job submission server address: {client.get_address()}")
    return client


def _friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Connection problems and server refusals become one clear line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConnectionError, RuntimeError, ValueError, TypeError, AuthenticationError) as e:
            raise click.ClickException(str(e)) from e

    return wrapper


def _common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--headers", type=str, default=None,
        help='JSON headers for every request, e.g. \'{"Authorization": "Bearer x"}\' (env RAY_JOB_HEADERS).',
    )(fn)
    fn = click.option(
        "--verify", default=True, show_default=True,
        help="Verify the server's TLS certificate: true, false, or a CA bundle path.",
    )(fn)
    fn = click.option(
        "--address", type=str, default=None,
        help="Address of the Ray cluster's dashboard, e.g. http://127.0.0.1:8265. Can also be given with "
        "the RAY_API_SERVER_ADDRESS environment variable (falls back to RAY_ADDRESS).",
    )(fn)
    return fn


def _big_message(text: str, color: str) -> None:
    click.echo()
    click.secho("-" * len(text), fg=color)
    click.secho(text, fg=color)
    click.secho("-" * len(text), fg=color)
    click.echo()


def _log_job_status(client: JobSubmissionClient, job_id: str) -> JobStatus:
    info = client.get_job_info(job_id)
    if info.status == JobStatus.SUCCEEDED:
        _big_message(f"Job '{job_id}' succeeded", "green")
    elif info.status == JobStatus.STOPPED:
        click.secho(f"Job '{job_id}' was stopped", fg="yellow")
    elif info.status == JobStatus.FAILED:
        _big_message(f"Job '{job_id}' failed", "red")
        if info.message is not None:
            click.echo(f"Status message: {info.message}")
    else:
        click.echo(f"Status for job '{job_id}': {info.status}")
        if info.message is not None:
            click.echo(f"Status message: {info.message}")
    return info.status


async def _tail_logs(client: JobSubmissionClient, job_id: str) -> JobStatus:
    async for lines in client.tail_job_logs(job_id):
        click.echo(lines, nl=False)
    return _log_job_status(client, job_id)


def parse_runtime_env_args(
    runtime_env: str | None, runtime_env_json: str | None, working_dir: str | None
) -> dict[str, Any] | None:
    if runtime_env and runtime_env_json:
        raise click.UsageError("Only one of --runtime-env and --runtime-env-json can be provided.")
    final: dict[str, Any] | None = None
    if runtime_env:
        try:
            with open(runtime_env) as f:
                final = yaml.safe_load(f) or {}
        except OSError as e:
            raise click.BadParameter(f"cannot read {runtime_env!r}: {e}", param_hint="--runtime-env") from e
        except yaml.YAMLError as e:
            raise click.BadParameter(f"{runtime_env!r} is not valid YAML: {e}", param_hint="--runtime-env") from e
    elif runtime_env_json:
        final = _json_option_value("runtime-env-json", runtime_env_json)
    if final is not None and not isinstance(final, dict):
        raise click.BadParameter(f"the runtime env must be a mapping, got {type(final).__name__}",
                                 param_hint="--runtime-env/--runtime-env-json")
    if working_dir:
        final = dict(final or {})
        if final.get("working_dir"):
            click.secho("Overriding runtime_env working_dir with --working-dir option", fg="yellow")
        final["working_dir"] = working_dir
    return final


@click.group("job")
def job_cli_group() -> None:
    """Submit, stop, delete, or list Ray jobs."""


@job_cli_group.command()
@_common_options
@click.option("--job-id", type=str, default=None, help="DEPRECATED: use --submission-id.")
@click.option("--submission-id", type=str, default=None, help="Submission ID to give the job (must be unique).")
@click.option("--runtime-env", type=str, default=None, help="Path to a local YAML file with a runtime_env.")
@click.option("--runtime-env-json", type=str, default=None, help="JSON-serialized runtime_env dictionary.")
@click.option("--working-dir", type=str, default=None,
              help="Directory (or remote URI) with the job's files; overrides the runtime_env's working_dir.")
@click.option("--metadata-json", type=str, default=None, help="JSON-serialized dictionary of metadata.")
@click.option("--entrypoint-num-cpus", type=float, default=None, help="CPUs to reserve for the entrypoint.")
@click.option("--entrypoint-num-gpus", type=float, default=None, help="GPUs to reserve for the entrypoint.")
@click.option("--entrypoint-memory", type=int, default=None, help="Memory (bytes) to reserve for the entrypoint.")
@click.option("--entrypoint-resources", type=str, default=None,
              help="JSON-serialized dictionary of custom resources to reserve for the entrypoint.")
@click.option("--entrypoint-label-selector", type=str, default=None,
              help="JSON-serialized label selector for the node that runs the entrypoint.")
@click.option("--no-wait", is_flag=True, default=False, help="Do not stream logs and wait for the job to exit.")
@click.argument("entrypoint", nargs=-1, required=True, type=click.UNPROCESSED)
@_friendly_errors
def submit(
    address: str | None, verify: str | bool, headers: str | None, job_id: str | None, submission_id: str | None,
    runtime_env: str | None, runtime_env_json: str | None, working_dir: str | None, metadata_json: str | None,
    entrypoint_num_cpus: float | None, entrypoint_num_gpus: float | None, entrypoint_memory: int | None,
    entrypoint_resources: str | None, entrypoint_label_selector: str | None, no_wait: bool,
    entrypoint: tuple[str, ...],
) -> None:
    """Submits a job to be run on the cluster.

    Example: `ray job submit -- python my_script.py --arg=val`
    """
    if job_id:
        click.secho("--job-id option is deprecated. Please use --submission-id instead.", fg="yellow")
    resources = _json_option_value("entrypoint-resources", entrypoint_resources)
    label_selector = _json_option_value("entrypoint-label-selector", entrypoint_label_selector)
    metadata = _json_option_value("metadata-json", metadata_json)
    final_runtime_env = parse_runtime_env_args(runtime_env, runtime_env_json, working_dir)
    client = _get_sdk_client(address, headers, verify)
    job_id = client.submit_job(
        entrypoint=shlex.join(entrypoint),
        submission_id=submission_id or job_id,
        runtime_env=final_runtime_env,
        metadata=metadata,
        entrypoint_num_cpus=entrypoint_num_cpus,
        entrypoint_num_gpus=entrypoint_num_gpus,
        entrypoint_memory=entrypoint_memory,
        entrypoint_resources=resources,
        entrypoint_label_selector=label_selector,
    )
    _big_message(f"Job '{job_id}' submitted successfully", "green")
    click.echo("Next steps")
    click.echo("  Query the logs of the job:")
    click.echo(f"    ray job logs {job_id}")
    click.echo("  Query the status of the job:")
    click.echo(f"    ray job status {job_id}")
    click.echo("  Request the job to be stopped:")
    click.echo(f"    ray job stop {job_id}")
    click.echo()
    sys.stdout.flush()  # the id must show before the log tail starts (KubeRay's kubectl plugin reads it)
    if not no_wait:
        click.echo("Tailing logs until the job exits (disable with --no-wait):")
        status = asyncio.run(_tail_logs(client, job_id))
        if status == JobStatus.FAILED:
            raise SystemExit(1)


@job_cli_group.command()
@_common_options
@click.argument("job-id", type=str)
@_friendly_errors
def status(address: str | None, verify: str | bool, headers: str | None, job_id: str) -> None:
    """Queries for the current status of a job.

    Example: `ray job status <my_job_id>`
    """
    client = _get_sdk_client(address, headers, verify)
    _log_job_status(client, job_id)


@job_cli_group.command()
@_common_options
@click.option("--no-wait", is_flag=True, default=False, help="Do not wait for the job to exit.")
@click.argument("job-id", type=str)
@_friendly_errors
def stop(address: str | None, verify: str | bool, headers: str | None, no_wait: bool, job_id: str) -> None:
    """Attempts to stop a job.

    Example: `ray job stop <my_job_id>`
    """
    client = _get_sdk_client(address, headers, verify)
    click.echo(f"Attempting to stop job '{job_id}'")
    client.stop_job(job_id)
    if no_wait:
        return
    click.echo(f"Waiting for job '{job_id}' to exit (disable with --no-wait):")
    while True:
        job_status = client.get_job_status(job_id)
        if job_status.is_terminal():
            _log_job_status(client, job_id)
            return
        click.echo(f"Job has not exited yet. Status: {job_status}")
        time.sleep(1)


@job_cli_group.command()
@_common_options
@click.argument("job-id", type=str)
@_friendly_errors
def delete(address: str | None, verify: str | bool, headers: str | None, job_id: str) -> None:
    """Deletes a stopped job and its associated data from memory.

    Only supported for jobs that are already in a terminal state.
    Example: `ray job delete <my_job_id>`
    """
    client = _get_sdk_client(address, headers, verify)
    client.delete_job(job_id)
    click.echo(f"Job '{job_id}' deleted successfully")


@job_cli_group.command()
@_common_options
@click.option("-f", "--follow", is_flag=True, default=False, help="Stream the logs until the job exits.")
@click.argument("job-id", type=str)
@_friendly_errors
def logs(address: str | None, verify: str | bool, headers: str | None, follow: bool, job_id: str) -> None:
    """Gets the logs of a job.

    Example: `ray job logs <my_job_id>`
    """
    client = _get_sdk_client(address, headers, verify)
    if follow:
        asyncio.run(_tail_logs(client, job_id))
    else:
        click.echo(client.get_job_logs(job_id), nl=False)


@job_cli_group.command(name="list")
@_common_options
@_friendly_errors
def list_jobs(address: str | None, verify: str | bool, headers: str | None) -> None:
    """Lists all running jobs and their information.

    Example: `ray job list`
    """
    client = _get_sdk_client(address, headers, verify)
    click.echo(pprint.pformat(client.list_jobs()))
