"""Ray's state CLI: `ray list <resource>`, `ray get <resource> <id>`, `ray summary tasks|actors|objects`,
`ray timeline` and `ray memory`, with Ray's flags and output layout."""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import warnings
from typing import Any

import click
import yaml

from ray._common import state_schema as ss
from ray._common.timeline import chrome_tracing_dump
from ray.util.state._table import tabulate
from ray.util.state.api import StateApiClient
from ray.util.state.exception import RayStateApiException

RESOURCE_CHOICES = ["actors", "jobs", "placement-groups", "nodes", "workers", "tasks", "objects", "runtime-envs",
                    "cluster-events"]
GET_CHOICES = ["actors", "placement-groups", "nodes", "workers", "tasks", "objects", "jobs"]
FORMATS = ["default", "json", "yaml", "table"]


def parse_filter(text: str) -> tuple[str, str, str]:
    """`key=value` or `key!=value` (Ray's `_parse_filter`)."""
    for i, char in enumerate(text):
        if char == "=":
            key, predicate, value = text[:i], "=", text[i + 1:]
            break
        if char == "!" and text[i + 1:i + 2] == "=":
            key, predicate, value = text[:i], "!=", text[i + 2:]
            break
    else:
        raise click.BadParameter(f"The format of a given filter {text} is invalid: Cannot find the predicate. "
                                 "Please provide key=val or key!=val format string.")
    if not key or not value:
        raise click.BadParameter(f"The format of a given filter {text} is invalid: Cannot identify key {key} or "
                                 f"value, {value}. Please provide key=val or key!=val format string.")
    return key, predicate, value


def _normalize_keys(resource: str, filters: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    columns = ss.SCHEMA_OF[resource].list_columns(detail=True)
    by_lower = {c.lower(): c for c in columns}
    out = []
    for key, predicate, value in filters:
        column = by_lower.get(key.lower())
        if column is None:
            raise click.BadParameter(f"Invalid filter key {key!r} for resource {resource!r}. Available filter keys "
                                     f"are: {', '.join(columns)}")
        out.append((column, predicate, value))
    return out


def table_output(rows: list[dict], schema: type, detail: bool) -> str:
    header = "=" * 8 + f" List: {datetime.datetime.now()} " + "=" * 8
    columns = schema.list_columns(detail=detail)
    headers: list[str] = []
    table = []
    for row in rows:
        row = {k: (yaml.dump(v, indent=2) if isinstance(v, dict) else v) for k, v in row.items()}
        headers = [c.upper() for c in columns if c in row]
        table.append([row[h.lower()] for h in headers])
    return (f"\n{header}\nStats:\n------------------------------\nTotal: {len(rows)}\n\nTable:\n"
            f"------------------------------\n{tabulate(table, headers, showindex=True)}\n")


def output(rows: list[dict], schema: type, fmt: str, detail: bool) -> str:
    if fmt == "json":
        return json.dumps(rows)
    if fmt == "yaml":
        return yaml.dump(rows, indent=4, explicit_start=True, sort_keys=False, explicit_end=True)
    return table_output(rows, schema, detail)


@click.command(name="list")
@click.argument("resource", type=click.Choice(RESOURCE_CHOICES))
@click.option("--format", "fmt", default="default", type=click.Choice(FORMATS))
@click.option("-f", "--filter", "filters", multiple=True,
              help="A key, predicate, and value to filter the result. E.g., --filter 'key=value' or --filter "
                   "'key!=value'. You can specify multiple --filter options; all must hold. String filter values "
                   "are case-insensitive.")
@click.option("--limit", default=ss.DEFAULT_LIMIT, type=int, help="Maximum number of entries to return. 100 by default.")
@click.option("--detail", is_flag=True, default=False,
              help="If the flag is set, the output will contain data in more details.")
@click.option("--timeout", type=int, default=ss.DEFAULT_RPC_TIMEOUT, help="Timeout in seconds for the API requests.")
@click.option("--address", default=None, help="The address of the Ray cluster (GCS host:port or dashboard URL).")
def ray_list(resource: str, fmt: str, filters: tuple[str, ...], limit: int, detail: bool, timeout: int,
             address: str | None) -> None:
    """List all states of a given resource (`ray list actors --filter state=ALIVE --limit 10`)."""
    resource = resource.replace("-", "_")
    parsed = _normalize_keys(resource, [parse_filter(f) for f in filters])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = StateApiClient(address=address).list(resource, filters=parsed, limit=limit, timeout=timeout,
                                                         detail=detail, raise_on_missing_output=False)
        for w in caught:
            click.echo(f"WARNING: {w.message}", err=True)
    except (RayStateApiException, ValueError) as e:
        raise click.UsageError(str(e)) from e
    if not data:
        click.echo("No resource in the cluster")
        return
    if detail and fmt == "default":
        fmt = "yaml"
    click.echo(output([d.asdict() for d in data], ss.SCHEMA_OF[resource], fmt, detail))


@click.command(name="get")
@click.argument("resource", type=click.Choice(GET_CHOICES))
@click.argument("id", required=False)
@click.option("--address", default=None, help="The address of the Ray cluster (GCS host:port or dashboard URL).")
@click.option("--timeout", type=int, default=ss.DEFAULT_RPC_TIMEOUT, help="Timeout in seconds for the API requests.")
def ray_get(resource: str, id: str | None, address: str | None, timeout: int) -> None:
    """Get the state of one resource by id (`ray get actors <actor-id>`), as YAML."""
    if not id:
        raise click.BadParameter(f"Missing argument 'ID'. Do you mean 'ray list {resource}'?")
    resource = resource.replace("-", "_")
    try:
        data = StateApiClient(address=address).get(resource, id, timeout=timeout)
    except (RayStateApiException, ValueError) as e:
        raise click.UsageError(str(e)) from e
    if not data:
        click.echo(f"Resource with id={id} not found in the cluster.")
        return
    states = data if isinstance(data, list) else [data]
    click.echo(output([s.asdict() for s in states], ss.SCHEMA_OF[resource], "yaml", True))


def _summary_text(state: dict, resource: str) -> str:
    if not state:
        return "No resource in the cluster"
    cluster = dict(state["cluster"])
    summaries, summary_by = cluster.pop("summary"), cluster.pop("summary_by")
    stats = yaml.dump(cluster, indent=2)
    now = datetime.datetime.now()
    if resource == "objects":
        tables = []
        for callsite, summary in summaries.items():
            summary = {k: (yaml.dump(v, indent=2) if isinstance(v, dict) else v) for k, v in summary.items()}
            headers = sorted(k.upper() for k in summary)
            table = tabulate([[summary[h.lower()] for h in headers]], headers, showindex=True, numalign="left",
                             underline=True)
            tables.append(f"{callsite.replace('|', chr(10) + '|')}\n{table}")
        body = "\n\n\n\n".join(tables)
        return (f"\n{'=' * 8} Object Summary: {now} {'=' * 8}\nStats:\n------------------------------------\n"
                f"{stats}\n\nTable (group by {summary_by})\n------------------------------------\n{body}\n")
    rows, headers = [], []
    for summary in (summaries.values() if isinstance(summaries, dict) else summaries):
        summary = {k: (yaml.dump(v, indent=2) if isinstance(v, dict) else v) for k, v in summary.items()
                   if k not in ("children", "link", "key", "timestamp")}
        headers = sorted(k.upper() for k in summary)
        rows.append([summary[h.lower()] for h in headers])
    table = tabulate(rows, headers, showindex=True, numalign="left")
    return (f"\n{'=' * 8} {resource.capitalize()} Summary: {now} {'=' * 8}\nStats:\n"
            f"------------------------------------\n{stats}\n\nTable (group by {summary_by}):\n"
            f"------------------------------------\n{table}\n")


@click.group(name="summary")
def summary_group() -> None:
    """Return the summarized information of a given resource."""


def _summary_command(resource: str, help_text: str):
    @click.command(name=resource, help=help_text)
    @click.option("--timeout", type=int, default=ss.DEFAULT_RPC_TIMEOUT)
    @click.option("--address", default=None)
    def command(timeout: int, address: str | None) -> None:
        try:
            data = StateApiClient(address=address).summary(resource, timeout=timeout, raise_on_missing_output=False)
        except RayStateApiException as e:
            raise click.UsageError(str(e)) from e
        click.echo(_summary_text(data, resource))

    return command


summary_group.add_command(_summary_command(
    "tasks", "Summarize the task state of the cluster: per function, how many tasks are in each state."))
summary_group.add_command(_summary_command(
    "actors", "Summarize the actor state of the cluster: per class, how many actors are in each state."))
summary_group.add_command(_summary_command(
    "objects", "Summarize the object state of the cluster, grouped by call site."))


def timeline_events(address: str | None = None, job_id: str | None = None) -> list[dict[str, Any]]:
    filters = [("job_id", "=", job_id)] if job_id else []
    tasks = StateApiClient(address=address).list("tasks", filters=filters, limit=ss.RAY_MAX_LIMIT_FROM_API_SERVER,
                                                 detail=True, raise_on_missing_output=False)
    return chrome_tracing_dump([t.asdict() for t in tasks])


@click.command(name="timeline")
@click.option("--address", default=None, help="The address of the Ray cluster.")
@click.option("--output", default=None, help="Where to write the trace (default: a timestamped file in /tmp).")
def timeline(address: str | None, output: str | None) -> None:
    """Write the cluster's task timeline as Chrome trace JSON (open it in chrome://tracing or ui.perfetto.dev)."""
    try:
        events = timeline_events(address)
    except RayStateApiException as e:
        raise click.ClickException(str(e)) from e
    if output is None:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        output = os.path.join(tempfile.gettempdir(), f"ray-timeline-{stamp}.json")
    with open(output, "w") as f:
        json.dump(events, f)
    click.echo(f"Trace file written to {output} ({len(events)} events).")
    click.echo("You can open this with chrome://tracing in the Chrome browser.")
