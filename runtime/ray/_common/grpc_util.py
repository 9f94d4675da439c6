"""Options every gRPC channel and server of the runtime shares, and what a failed call tells the user."""

from __future__ import annotations

import grpc

from ray._common.config import config


def message_options() -> list[tuple[str, int]]:
    """Ray's `max_grpc_message_size` (512 MiB) both ways; gRPC's own default is 4 MiB, which a 5 MB
    working_dir or a remote function closing over a few MiB already exceeds."""
    limit = config().max_grpc_message_size
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]


def channel_options() -> list[tuple[str, int]]:
    return [*message_options(), ("grpc.enable_http_proxy", 0)]


def too_large(error: grpc.RpcError) -> str | None:
    """The user-facing reason when a call failed because a message was over the size limit, else None."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    limit = config().max_grpc_message_size
    return (f"A message was larger than the gRPC limit of {limit / 2**20:.0f} MiB ({error.details()}). "
            "Keep large data out of remote function closures and runtime_env packages (use ray.put or "
            "excludes), or raise the limit on every node with RAY_max_grpc_message_size.")
