"""`ray memory`: the object refs every driver and worker holds, grouped and sorted as Ray prints them, then
the object stores' usage. Reads the raylets directly (as Ray's does), through the cluster's GCS."""

from __future__ import annotations

import asyncio
import datetime
import os

import click

_UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}
_REF_TYPES = ("LOCAL_REFERENCE", "PINNED_IN_MEMORY", "USED_BY_PENDING_TASK", "CAPTURED_IN_OBJECT", "ACTOR_HANDLE")
_SUMMARY_LABELS = ("Mem Used by Objects", "Local References", "Pinned", "Used by task", "Captured in Objects",
                   "Actor Handles")
_SUMMARY_LINE = "{:<19}  {:<16}  {:<12}  {:<13}  {:<19}  {:<13}\n"
_REF_LABELS = ("IP Address", "PID", "Type", "Call Site", "Status", "Attempt", "Size", "Reference Type", "Object Ref")
_REF_LINE = "{:<13} | {:<8} | {:<7} | {:<9} | {:<9} | {:<8} | {:<8} | {:<14} | {:<10}\n"


def memory_summary(reports: dict[str, dict], group_by: str = "NODE_ADDRESS", sort_by: str = "OBJECT_SIZE",
                   units: str = "B", num_entries: int | None = None, stats_only: bool = False) -> str:
    rows = [row for r in reports.values() for row in r.get("objects", [])]
    unit = _UNITS[units]
    text = ""
    if not stats_only:
        key_of = (lambda r: r["ip"]) if group_by == "NODE_ADDRESS" else (lambda r: r["pid"])
        sort_key = {"OBJECT_SIZE": lambda r: -r["object_size"], "REFERENCE_TYPE": lambda r: r["reference_type"],
                    "PID": lambda r: r["pid"]}[sort_by]
        groups: dict[object, list[dict]] = {}
        for row in rows:
            groups.setdefault(key_of(row), []).append(row)
        group_name = group_by.lower().replace("_", " ")
        text += (f"Grouping by {group_name}...        Sorting by {sort_by.lower().replace('_', ' ')}...        "
                 f"Display {num_entries if num_entries is not None else 'all'} entries per group...\n\n\n")
        for key, entries in groups.items():
            counts = dict.fromkeys(_REF_TYPES, 0)
            sizes = dict.fromkeys(_REF_TYPES, 0)
            total = 0
            for e in entries:
                counts[e["reference_type"]] = counts.get(e["reference_type"], 0) + 1
                size = max(e["object_size"], 0)
                sizes[e["reference_type"]] = sizes.get(e["reference_type"], 0) + size
                total += size
            text += f"--- Summary for {group_name}: {key} ---\n"
            text += _SUMMARY_LINE.format(*_SUMMARY_LABELS)
            text += _SUMMARY_LINE.format(f"{total / unit} {units}",
                                         *(f"{counts[t]}, ({sizes[t] / unit} {units})" for t in _REF_TYPES)) + "\n"
            text += f"--- Object references for {group_name}: {key} ---\n"
            text += _REF_LINE.format(*_REF_LABELS)
            for n, e in enumerate(sorted(entries, key=sort_key)):
                if num_entries is not None and n >= num_entries:
                    break
                size = f"{e['object_size'] / unit} {units}" if e["object_size"] > -1 else "?"
                text += "\n" + _REF_LINE.format(e["ip"], e["pid"], e["type"], e["call_site"], e["task_status"],
                                                e["attempt_number"], size, e["reference_type"], e["object_id"])
            text += "\n"
        text += ("To record callsite information for each ObjectRef created, set env variable "
                 "RAY_record_ref_creation_sites=1\n\n")
    used = sum(r.get("store", {}).get("object_store_used_bytes", 0) for r in reports.values())
    count = sum(r.get("store", {}).get("num_objects", 0) for r in reports.values())
    capacity = sum(r.get("store", {}).get("capacity", 0) for r in reports.values()) or 1
    text += "--- Aggregate object store stats across all nodes ---\n"
    text += (f"Plasma memory usage {int(used / 2**20)} MiB, {count} objects, {round(100 * used / capacity, 2)}% full, "
             f"{round(100 * used / capacity, 2)}% needed\n")
    spilled = sum(r.get("store", {}).get("spilled_bytes_total", 0) for r in reports.values())
    if spilled:
        text += f"Spilled {int(spilled / 2**20)} MiB\n"
    return text


@click.command()
@click.option("--address", default=None, help="The GCS address (host:port) of the cluster.")
@click.option("--group-by", default="NODE_ADDRESS", type=click.Choice(["NODE_ADDRESS", "STACK_TRACE"]),
              help="Group object references by a GroupByType (e.g. NODE_ADDRESS or STACK_TRACE).")
@click.option("--sort-by", default="OBJECT_SIZE", type=click.Choice(["PID", "OBJECT_SIZE", "REFERENCE_TYPE"]),
              help="Sort object references in ascending order by a SortingType (e.g. PID, OBJECT_SIZE, or "
                   "REFERENCE_TYPE).")
@click.option("--units", default="B", type=click.Choice(["B", "KB", "MB", "GB"]),
              help="Specify unit metrics for displaying object sizes (e.g. B, KB, MB, GB).")
@click.option("--no-format", is_flag=True, default=True, help="Accepted for compatibility.")
@click.option("--stats-only", is_flag=True, default=False, help="Display plasma store stats only.")
@click.option("--num-entries", "--n", type=int, default=None, help="Specify number of sorted entries per group.")
def memory(address: str | None, group_by: str, sort_by: str, units: str, no_format: bool, stats_only: bool,
           num_entries: int | None) -> None:
    """Print object references held in a Ray cluster."""
    from ray._common.gcs_client import GcsClient
    from ray.dashboard.modules.job.sdk import _local_cluster_gcs_address
    from ray.dashboard.modules.state.objects import ObjectsSource

    address = os.environ.get("RAY_ADDRESS") if address is None else address
    gcs_address = address if address and address != "auto" else _local_cluster_gcs_address()
    if not gcs_address:
        raise click.ClickException("Could not find a running Ray cluster on this machine; start one with "
                                   "'ray start --head' or pass --address <GCS host:port>.")
    gcs = GcsClient(gcs_address, timeout_s=10)
    try:
        reports, warnings = asyncio.run(ObjectsSource(gcs).node_reports(30))
    except ConnectionError as e:
        raise click.ClickException(str(e)) from e
    finally:
        gcs.close()
    for warning in warnings:
        click.echo(f"WARNING: {warning}", err=True)
    header = "=" * 8 + f" Object references status: {datetime.datetime.now()} " + "=" * 8
    # STACK_TRACE groups by call site, which is not recorded: every ref is in one group, as in Ray without it.
    click.echo(f"{header}\n{memory_summary(reports, group_by if group_by == 'NODE_ADDRESS' else 'PID', sort_by, units, num_entries, stats_only)}")
