"""The local provider's record of its nodes, as Ray keeps it: `<temp dir>/cluster-<cluster_name>.state`, JSON
`{ip: {"tags": {...}, "state": "running" | "terminated"}}`, on the machine that runs `ray up`, behind a file
lock. Tags are Ray's (`ray-node-type`, `ray-node-status`, `ray-runtime-config`, `ray-user-node-type`)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

TAG_NODE_KIND = "ray-node-type"  # head | worker
TAG_NODE_STATUS = "ray-node-status"
TAG_RUNTIME_CONFIG = "ray-runtime-config"
TAG_USER_NODE_TYPE = "ray-user-node-type"
TAG_NODE_NAME = "ray-node-name"
STATUS_UNINITIALIZED = "uninitialized"
STATUS_WAITING_FOR_SSH = "waiting-for-ssh"
STATUS_SYNCING_FILES = "syncing-files"
STATUS_SETTING_UP = "setting-up"
STATUS_UPDATE_FAILED = "update-failed"
STATUS_UP_TO_DATE = "up-to-date"


def state_path(cluster_name: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"cluster-{cluster_name}.state")


class ClusterState:
    def __init__(self, cluster_name: str):
        self.cluster_name = cluster_name
        self.path = state_path(cluster_name)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                nodes = self._read()
                yield nodes
                tmp = f"{self.path}.{os.getpid()}.tmp"
                with open(tmp, "w") as f:
                    json.dump(nodes, f, indent=2, sort_keys=True)
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def nodes(self) -> dict[str, Any]:
        return self._read()

    def set_tags(self, ip: str, kind: str, **tags: str) -> None:
        with self._locked() as nodes:
            node = nodes.setdefault(ip, {"tags": {}, "state": "running"})
            node["state"] = "running"
            node["tags"].update({TAG_NODE_KIND: kind, TAG_USER_NODE_TYPE: "local.cluster.node",
                                 TAG_NODE_NAME: f"ray-{self.cluster_name}-{kind}"})
            node["tags"].update({k.replace("_", "-"): v for k, v in tags.items()})

    def terminate(self, ip: str) -> None:
        with self._locked() as nodes:
            if ip in nodes:
                nodes[ip]["state"] = "terminated"
                nodes[ip]["tags"][TAG_NODE_STATUS] = STATUS_UNINITIALIZED
                nodes[ip]["tags"].pop(TAG_RUNTIME_CONFIG, None)

    def running(self, kind: str) -> list[str]:
        return [ip for ip, n in self._read().items()
                if n.get("state") == "running" and n.get("tags", {}).get(TAG_NODE_KIND) == kind]

    def tags(self, ip: str) -> dict[str, str]:
        return dict(self._read().get(ip, {}).get("tags", {}))
