"""The core worker's front door for placement groups: create, remove, look up and wait on them at the GCS."""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol

from ray import exceptions
from ray._common.ids import JobID, PlacementGroupID
from ray.core_worker.memory_store import MemoryStore, StoredObject, error_object
from ray.core_worker.object_ref import ObjectRef
from ray.core_worker.reference_counter import ReferenceCounter
from ray.protocol import placement_group_pb2 as ppb


class Owner(Protocol):
    """What the placement group calls need of their core worker (which owns this client)."""

    gcs: Any
    job_id: JobID
    namespace: str
    connected: bool
    address: dict
    memory_store: MemoryStore
    refs: ReferenceCounter

    def task_context(self, name: str, default: Any = None) -> Any: ...

    def next_put_id(self) -> bytes: ...

    def store_value(self, oid: bytes, value: Any, owned: bool = True, is_error: bool = False) -> StoredObject: ...


class PlacementGroupClient:
    def __init__(self, core_worker: Owner) -> None:
        self.cw = core_worker

    def create(self, bundles: list[dict[str, float]], strategy: str, name: str, detached: bool,
                               max_cpu_fraction_per_node: float, label_selectors: list[dict[str, str]]) -> bytes:
        """Register a placement group with the GCS, which reserves it; returns its id. RaySystemError: a taken name."""
        pg_id = PlacementGroupID.of(self.cw.job_id).binary()
        actor_id = self.cw.task_context("actor_id")
        spec = ppb.PlacementGroupTableData(
            placement_group_id=pg_id, name=name, strategy=ppb.PlacementStrategy.Value(strategy),
            bundles=[ppb.Bundle(bundle_index=i, unit_resources=bundle,
                                label_selector=label_selectors[i] if i < len(label_selectors) else {})
                     for i, bundle in enumerate(bundles)],
            creator_job_id=self.cw.job_id.binary(), creator_actor_id=actor_id.binary() if actor_id else b"",
            is_detached=detached, ray_namespace=self.cw.task_context("namespace") or self.cw.namespace,
            max_cpu_fraction_per_node=max_cpu_fraction_per_node)
        reply = self.cw.gcs.call(self.cw.gcs.stubs.placement_group.CreatePlacementGroup,
                              ppb.CreatePlacementGroupRequest(placement_group_spec=spec))
        if reply.code != 0:
            raise exceptions.RaySystemError(reply.error_message)
        if reply.warning:
            print(f"Warning: {reply.warning}", file=sys.stderr, flush=True)
        return pg_id

    def remove(self, pg_id: bytes) -> None:
        self.cw.gcs.call(self.cw.gcs.stubs.placement_group.RemovePlacementGroup,
                      ppb.RemovePlacementGroupRequest(placement_group_id=pg_id))

    def info(self, pg_id: bytes | None = None, name: str | None = None, namespace: str = ""):
        """A group's `PlacementGroupTableData` by id or by name (in `namespace`), or None."""
        stubs = self.cw.gcs.stubs.placement_group
        if name is not None:
            reply = self.cw.gcs.call(stubs.GetNamedPlacementGroup,
                                  ppb.GetNamedPlacementGroupRequest(name=name, ray_namespace=namespace))
        else:
            reply = self.cw.gcs.call(stubs.GetPlacementGroup, ppb.GetPlacementGroupRequest(placement_group_id=pg_id))
        return reply.placement_group_table_data if reply.found else None

    def all(self) -> list:
        reply = self.cw.gcs.call(self.cw.gcs.stubs.placement_group.GetAllPlacementGroup, ppb.GetAllPlacementGroupRequest())
        return list(reply.placement_group_table_data)

    def wait_ready(self, pg_id: bytes, timeout_s: float) -> tuple[bool, str]:
        """Blocks until the group is created (True), removed (False, why) or `timeout_s` passes (False, "")."""
        req = ppb.WaitPlacementGroupUntilReadyRequest(placement_group_id=pg_id, timeout_s=max(timeout_s, 0.001))
        reply = self.cw.gcs.call(self.cw.gcs.stubs.placement_group.WaitPlacementGroupUntilReady, req,
                              timeout_s=timeout_s + 30)
        return reply.ready, reply.error_message

    def ready_ref(self, pg_id: bytes, value: Any) -> ObjectRef:
        """An owned ref that gets `value` once the group is created (Ray's `pg.ready()`), or an error if it is
        removed first. Waits without a thread: a long-poll whose reply callback asks again until it ends."""
        oid = self.cw.next_put_id()
        ref = ObjectRef(oid, self.cw.address)
        method = self.cw.gcs.stubs.placement_group.WaitPlacementGroupUntilReady
        req = ppb.WaitPlacementGroupUntilReadyRequest(placement_group_id=pg_id, timeout_s=30)

        def ask() -> None:
            method.future(req, timeout=60, wait_for_ready=True).add_done_callback(answered)

        def answered(fut) -> None:
            try:
                reply = fut.result()
            except Exception:  # noqa: BLE001 - the GCS is restarting or slow: ask again
                if self.cw.connected:
                    threading.Timer(0.5, ask).start()
                return
            if not reply.ready and not reply.error_message:
                if self.cw.connected and oid in self.cw.refs.owned:
                    ask()
                return
            # Removed before it was ready: Ray's error for the ready ref is the task's.
            stored = (self.cw.store_value(oid, value) if reply.ready
                      else error_object(exceptions.TaskPlacementGroupRemoved()))
            if oid in self.cw.refs.owned:
                self.cw.memory_store.put(oid, stored)

        ask()
        return ref
