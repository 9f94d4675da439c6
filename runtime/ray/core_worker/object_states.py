"""The refs one core worker holds, as the state API's ObjectState rows (Ray's GetCoreWorkerStats with memory
info): what `ray list objects` and `ray memory` show."""

from __future__ import annotations

import os
from typing import Any

from ray._common import task_events as te
from ray.core_worker.memory_store import IN_STORE

LOCAL_REFERENCE = "LOCAL_REFERENCE"
PINNED_IN_MEMORY = "PINNED_IN_MEMORY"
USED_BY_PENDING_TASK = "USED_BY_PENDING_TASK"
CAPTURED_IN_OBJECT = "CAPTURED_IN_OBJECT"
ACTOR_HANDLE = "ACTOR_HANDLE"


def object_rows(cw: Any) -> list[dict]:
    refs = cw.refs
    with refs._lock:
        local = dict(refs.local)
        submitted = dict(refs.submitted)
        owned = set(refs.owned)
    pending = cw.submitter._tasks if cw.submitter is not None else {}
    actor_scopes = cw._actor_scopes
    kind = "DRIVER" if cw.mode == "driver" else "WORKER"
    pid = os.getpid()
    rows = []
    for oid in {*local, *submitted, *owned}:
        stored = cw.memory_store.get(oid)
        if oid in actor_scopes:
            ref_type = ACTOR_HANDLE
        elif oid in local:
            ref_type = LOCAL_REFERENCE
        elif oid in submitted:
            ref_type = USED_BY_PENDING_TASK
        elif stored is not None and stored.kind == IN_STORE:
            ref_type = PINNED_IN_MEMORY
        else:
            ref_type = CAPTURED_IN_OBJECT
        task = pending.get(oid[:24])
        if stored is not None:
            status = te.FINISHED
        elif task is not None:
            status = te.SUBMITTED_TO_WORKER if task.worker is not None else te.PENDING_NODE_ASSIGNMENT
        else:
            status = te.NIL
        rows.append({"object_id": oid.hex(), "object_size": stored.size if stored is not None else -1,
                     "task_status": status, "attempt_number": task.attempt if task is not None else 0,
                     "reference_type": ref_type, "call_site": "disabled", "type": kind, "pid": pid,
                     "ip": cw.node_ip})
    return rows
