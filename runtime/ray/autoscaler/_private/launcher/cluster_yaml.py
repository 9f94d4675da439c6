"""Ray's cluster YAML for the `local` provider: read it, reject what is wrong with a message that says which
key and how to fix it, fill Ray's defaults (python/ray/autoscaler/local/defaults.yaml), hash what a node's
set-up depends on."""

from __future__ import annotations

import copy
import getpass
import hashlib
import json
import os
from typing import Any

import yaml

# Ray's defaults for the local provider.
DEFAULT_HEAD_START_RAY_COMMANDS = [
    "ray stop",
    "ulimit -c unlimited && ray start --head --port=6379 --autoscaling-config=~/ray_bootstrap_config.yaml",
]
DEFAULT_WORKER_START_RAY_COMMANDS = ["ray stop", "ray start --address=$RAY_HEAD_IP:6379"]
LOCAL_NODE_TYPE = "local.cluster.node"

COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands")
# Keys of Ray's schema (ray-schema.json) this launcher uses.
USED_KEYS = {"cluster_name", "provider", "auth", "min_workers", "max_workers", "idle_timeout_minutes",
             "upscaling_speed", "file_mounts", "rsync_exclude", "rsync_filter", *COMMAND_KEYS}
# Keys of Ray's schema that are accepted and passed on to the head's bootstrap config, but do nothing here.
IGNORED_KEYS = {"available_node_types", "head_node_type", "cluster_synced_files", "file_mounts_sync_continuously",
                "metadata", "head_node", "worker_nodes", "docker"}
PROVIDER_KEYS = {"type", "head_ip", "worker_ips", "external_head_ip", "coordinator_address", "use_internal_ips",
                 "cache_stopped_nodes", "disable_launch_config_check", "foreground_node_launch"}
AUTH_KEYS = {"ssh_user", "ssh_private_key", "ssh_public_key", "ssh_proxy_command"}


class ConfigError(ValueError):
    """A cluster YAML that cannot be used; the message names the file, the key and the fix."""


def _unknown(keys: set[str], known: set[str], where: str, path: str) -> None:
    extra = sorted(keys - known)
    if extra:
        raise ConfigError(
            f"{path}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(repr(k) for k in extra)} {where} "
            f"(known keys: {', '.join(sorted(known))}). Remove {'them' if len(extra) > 1 else 'it'} or fix the "
            "spelling.")


def _str_list(config: dict, key: str, path: str) -> list[str]:
    value = config.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a list of strings (shell commands), got {value!r}.")
    return value


def _non_negative_int(config: dict, key: str, path: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{path}: {key} must be a non-negative integer, got {value!r}.")
    return value


def load(path: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checked config with Ray's defaults filled in; `overrides` replace top-level keys (`-n`, ...)."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"Cluster config file {path} not found.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a cluster config is a YAML mapping (cluster_name, provider, auth, ...).")
    config = copy.deepcopy(raw)
    for k, v in (overrides or {}).items():
        if v is not None:
            config[k] = v
    return validate(config, path)


def validate(config: dict[str, Any], path: str = "cluster config") -> dict[str, Any]:
    _unknown(set(config), USED_KEYS | IGNORED_KEYS, "at the top level", path)
    docker = config.get("docker") or {}
    if isinstance(docker, dict) and docker.get("image"):
        raise ConfigError(f"{path}: docker.image is set, but OpenRay's launcher runs Ray on the hosts directly "
                          "(no containers). Remove the docker section.")
    name = config.setdefault("cluster_name", "default")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"{path}: cluster_name must be a non-empty string without '/', got {name!r}.")

    provider = config.get("provider")
    if not isinstance(provider, dict):
        raise ConfigError(f"{path}: the provider section is missing. Add\n  provider:\n    type: local\n"
                          "    head_ip: <head host>\n    worker_ips: [<worker host>, ...]")
    _unknown(set(provider), PROVIDER_KEYS, "in provider", path)
    if provider.get("type") != "local":
        raise ConfigError(f"{path}: provider.type is {provider.get('type')!r}; OpenRay's launcher supports only "
                          "`type: local` (a fixed list of hosts reached over SSH).")
    if provider.get("coordinator_address"):
        raise ConfigError(f"{path}: provider.coordinator_address (Ray's coordinator server) is not supported; "
                          "list the hosts with head_ip and worker_ips instead.")
    head_ip = provider.get("head_ip")
    if not isinstance(head_ip, str) or not head_ip.strip():
        raise ConfigError(f"{path}: provider.head_ip is missing: the local provider needs the head node's "
                          "address, e.g.\n  provider:\n    type: local\n    head_ip: 192.168.1.10")
    worker_ips = provider.get("worker_ips") or []
    if not isinstance(worker_ips, list) or not all(isinstance(w, str) and w.strip() for w in worker_ips):
        raise ConfigError(f"{path}: provider.worker_ips must be a list of host names or addresses, got "
                          f"{provider.get('worker_ips')!r}.")
    if head_ip in worker_ips or len(set(worker_ips)) != len(worker_ips):
        raise ConfigError(f"{path}: provider.worker_ips lists a host twice or the head itself: {worker_ips!r}.")
    provider["worker_ips"] = worker_ips
    external = provider.get("external_head_ip")
    if external is not None and (not isinstance(external, str) or not external):
        raise ConfigError(f"{path}: provider.external_head_ip must be a host name or address, got {external!r}.")

    # Without auth (the shape of Ray's docs' short example), log in as ssh itself would: this machine's
    # user name, with ssh's default keys and agent.
    auth = config.setdefault("auth", {})
    if not isinstance(auth, dict):
        raise ConfigError(f"{path}: auth must be a mapping, e.g.\n  auth:\n    ssh_user: ubuntu\n"
                          "    ssh_private_key: ~/.ssh/id_rsa")
    _unknown(set(auth), AUTH_KEYS, "in auth", path)
    if "ssh_user" not in auth:
        auth["ssh_user"] = getpass.getuser()
    if not isinstance(auth["ssh_user"], str) or not auth["ssh_user"]:
        raise ConfigError(f"{path}: auth.ssh_user must be a user name, got {auth['ssh_user']!r}.")
    key = auth.get("ssh_private_key")
    if key is not None:
        if not isinstance(key, str) or not os.path.isfile(os.path.expanduser(key)):
            raise ConfigError(f"{path}: auth.ssh_private_key {key!r} is not a readable file on this machine.")
        auth["ssh_private_key"] = os.path.abspath(os.path.expanduser(key))

    lo, hi = _non_negative_int(config, "min_workers", path), _non_negative_int(config, "max_workers", path)
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"{path}: min_workers ({lo}) is larger than max_workers ({hi}).")
    # Ray's prepare_manual: both default to the number of worker hosts (keep them all) and are capped at it.
    # `ray up` starts min_workers of them; the head's autoscaler starts the others on demand, up to max_workers.
    n = len(worker_ips)
    warnings = []
    for key, value in (("min_workers", lo), ("max_workers", hi)):
        if value is not None and value > n:
            warnings.append(f"The value of `{key}` supplied ({value}) is greater than the number of available "
                            f"worker ips ({n}). Setting `{key}={n}`.")
    config["min_workers"] = n if lo is None else min(lo, n)
    config["max_workers"] = n if hi is None else min(hi, n)
    config["_warnings"] = warnings
    idle = config.setdefault("idle_timeout_minutes", 5)
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or idle < 0:
        raise ConfigError(f"{path}: idle_timeout_minutes must be a non-negative number, got {idle!r}.")
    config.setdefault("upscaling_speed", 1.0)

    # A start-command key the user wrote replaces Ray's default, even as an empty list ("start nothing").
    config.setdefault("head_start_ray_commands", list(DEFAULT_HEAD_START_RAY_COMMANDS))
    config.setdefault("worker_start_ray_commands", list(DEFAULT_WORKER_START_RAY_COMMANDS))
    for k in COMMAND_KEYS:
        config[k] = _str_list(config, k, path)
    for k in ("rsync_exclude", "rsync_filter"):
        config[k] = _str_list(config, k, path)

    mounts = config.get("file_mounts") or {}
    if not isinstance(mounts, dict):
        raise ConfigError(f"{path}: file_mounts maps remote paths to local ones, got {mounts!r}.")
    for remote, local in mounts.items():
        if not isinstance(remote, str) or not isinstance(local, str):
            raise ConfigError(f"{path}: file_mounts entry {remote!r}: {local!r} must map a path to a path.")
        if not os.path.exists(os.path.expanduser(local)):
            raise ConfigError(f"{path}: file_mounts[{remote!r}]: the local path {local!r} does not exist.")
    config["file_mounts"] = {r: os.path.abspath(os.path.expanduser(v)) for r, v in mounts.items()}
    # Ray's single node type for on-prem clusters: no resources (Ray detects them on each node; the autoscaler
    # learns them from the nodes that run), the workers' min/max.
    config["available_node_types"] = {LOCAL_NODE_TYPE: {"resources": {}, "node_config": {},
                                                        "min_workers": config["min_workers"],
                                                        "max_workers": config["max_workers"]}}
    config["head_node_type"] = LOCAL_NODE_TYPE
    return config


def _hash_path(h: Any, path: str) -> None:
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(os.path.relpath(full, path).encode())
                _hash_path(h, full)
    elif os.path.isfile(path):
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)


def runtime_hash(config: dict[str, Any], role: str) -> str:
    """What a node of `role` ('head' or 'worker') is set up from: its commands and the file mounts'
    contents (Ray's ray-runtime-config tag). A node whose hash is unchanged needs no new set-up. (The head's
    ~/ray_bootstrap_config.yaml is not in it: `ray up` rewrites that file every time, restarting nothing.)"""
    h = hashlib.sha1()
    h.update(json.dumps({k: config[k] for k in ("initialization_commands", "setup_commands",
                                                f"{role}_setup_commands", f"{role}_start_ray_commands")},
                        sort_keys=True).encode())
    for remote, local in sorted(config["file_mounts"].items()):
        h.update(remote.encode())
        _hash_path(h, local)
    return h.hexdigest()


def bootstrap_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config the head gets as ~/ray_bootstrap_config.yaml (for an autoscaler there): the key path
    rewritten to the copy the head gets, as Ray does."""
    out = {k: v for k, v in config.items() if not k.startswith("_")}
    out = copy.deepcopy(out)
    if out["auth"].get("ssh_private_key"):
        out["auth"]["ssh_private_key"] = "~/ray_bootstrap_key.pem"
    return out
