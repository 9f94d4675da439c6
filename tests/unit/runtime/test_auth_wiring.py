"""Authentication is wired at the transport level, so new code cannot bypass it by accident: checked on
the runtime's source.

- gRPC servers and channels are made only in `ray._common.grpc_util` (the token interceptors);
- listening and connecting sockets for the framed protocol only in `ray._common.framing` (the handshake);
- every aiohttp application has the token middleware of `ray._common.auth_http`.
A service or message added later (placement groups, autoscaler state, ...) is covered without a line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ray

RUNTIME = Path(ray.__file__).resolve().parent

GRPC_FACTORIES = {"server", "insecure_channel", "secure_channel", "intercept_channel"}
# Port probes: they connect and close, sending and reading nothing (is the dashboard / agent listening yet?).
PROBES = {("_private/node.py", "create_connection"), ("raylet/runtime_envs.py", "open_connection")}
SOCKET_FACTORIES = {"create_server", "create_unix_server", "create_connection", "create_unix_connection",
                    "start_server", "start_unix_server", "open_connection", "open_unix_connection"}


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                yield node, func.attr, ast.unparse(func.value)
            elif isinstance(func, ast.Name):
                yield node, func.id, ""


def _sources():
    return [p for p in sorted(RUNTIME.rglob("*.py")) if "protocol" not in p.relative_to(RUNTIME).parts]


def test_grpc_servers_and_channels_come_from_grpc_util():
    offenders = []
    for path in _sources():
        if path.relative_to(RUNTIME).as_posix() == "_common/grpc_util.py":
            continue
        for node, name, owner in _calls(path):
            if name in GRPC_FACTORIES and owner in ("grpc", "grpc.aio", "aio"):
                offenders.append(f"{path.relative_to(RUNTIME)}:{node.lineno}: {owner}.{name}")
    assert not offenders, "make gRPC servers/channels with ray._common.grpc_util (token auth):\n" + "\n".join(offenders)


def test_framed_sockets_come_from_framing():
    offenders = []
    for path in _sources():
        if path.relative_to(RUNTIME).as_posix() == "_common/framing.py":
            continue
        for node, name, owner in _calls(path):
            if (path.relative_to(RUNTIME).as_posix(), name) in PROBES:
                continue
            if name in SOCKET_FACTORIES or (name == "Connection" and owner.endswith("framing")):
                offenders.append(f"{path.relative_to(RUNTIME)}:{node.lineno}: {owner}.{name}")
    assert not offenders, ("listen and connect with ray._common.framing.serve/connect (the authenticated "
                           "handshake):\n" + "\n".join(offenders))


def test_every_http_app_has_the_token_middleware():
    apps = []
    for path in _sources():
        source = path.read_text()
        for node, name, owner in _calls(path):
            if name == "Application" and owner == "web":
                apps.append(path.relative_to(RUNTIME).as_posix())
                assert "auth_http.token_middleware(" in source, (
                    f"{path.relative_to(RUNTIME)}:{node.lineno} makes an aiohttp app without the token middleware")
    assert sorted(set(apps)) == ["agent/agent.py", "dashboard/dashboard.py"], apps
