"""`ray.get_runtime_context()`: ids, namespace and resources of the current driver/task/actor."""

from __future__ import annotations

import json
import os

from ray._common.placement_groups import original_resources


class RuntimeContext:
    def __init__(self, worker):
        self._worker = worker

    @property
    def _cw(self):
        cw = self._worker.core_worker
        if cw is None:
            raise RuntimeError("Ray has not been started yet. You can start Ray with 'ray.init()'.")
        return cw

    def get_job_id(self) -> str:
        return self._cw.job_id.hex()

    def get_node_id(self) -> str:
        return self._cw.node_id

    def get_worker_id(self) -> str:
        return self._cw.worker_id.hex()

    def get_task_id(self) -> str | None:
        if self._worker.mode == "driver":
            return None
        task_id = self._cw.task_context("task_id")
        return task_id.hex() if task_id is not None else None

    def get_actor_id(self) -> str | None:
        if self._worker.mode == "driver":
            return None
        actor_id = self._cw.task_context("actor_id")
        return actor_id.hex() if actor_id is not None else None

    def get_actor_name(self) -> str | None:
        return self._cw.task_context("actor_name") or None

    @property
    def namespace(self) -> str:
        return self._cw.task_context("namespace") or self._cw.namespace

    def get_assigned_resources(self) -> dict[str, float]:
        if self._worker.mode == "driver":
            return {}
        # Inside a placement group the lease holds renamed resources (CPU_group_...); Ray reports the user's.
        return original_resources(dict(self._cw.task_context("resources", {}) or {}))

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        ids = [] if self._worker.mode == "driver" else self._cw.task_context("gpu_ids", []) or []
        return {"GPU": [str(i) for i in ids]}

    def get_runtime_env_string(self) -> str:
        if self._worker.mode == "driver":
            return json.dumps(self._cw.runtime_env)
        return os.environ.get("RAY_RUNTIME_ENV_JSON", "{}")

    @property
    def runtime_env(self) -> dict:
        return json.loads(self.get_runtime_env_string())

    @property
    def gcs_address(self) -> str:
        return self._cw.gcs_address

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return bool(self._cw.task_context("actor_restarted", False))

    def get(self) -> dict:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "namespace": self.namespace,
                "task_id": self.get_task_id(), "actor_id": self.get_actor_id()}


def get_runtime_context() -> RuntimeContext:
    from ray._private.worker import global_worker

    global_worker.ensure_connected()
    return RuntimeContext(global_worker)
