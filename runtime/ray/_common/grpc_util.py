"""Every gRPC server and channel of the runtime is made here: the shared options, token authentication
(a server interceptor, and client interceptors that add the token), and what a failed call tells the user.

Authentication lives at this level, not in handlers, so a service added to a server later (placement
groups, autoscaler state, ...) is covered without a line of its own. `tests/unit/runtime/test_auth_wiring.py`
fails if any module makes a server or channel some other way.
"""

from __future__ import annotations

import collections

import grpc

from ray._common import auth
from ray._common.config import config
from ray.exceptions import AuthenticationError


def message_options() -> list[tuple[str, int]]:
    """Ray's `max_grpc_message_size` (512 MiB) both ways; gRPC's own default is 4 MiB, which a 5 MB
    working_dir or a remote function closing over a few MiB already exceeds."""
    limit = config().max_grpc_message_size
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]


def channel_options() -> list[tuple[str, int]]:
    # Reconnect backoff as Ray's GCS clients (gcs_grpc_{initial,min,max}_reconnect_backoff_ms): a restarted
    # GCS is found within ~2 s rather than gRPC's default of up to 120 s.
    return [*message_options(), ("grpc.enable_http_proxy", 0), ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 1000), ("grpc.max_reconnect_backoff_ms", 2000),
            # A GCS that comes back elsewhere (a new head pod behind a headless Service) is looked up again
            # within seconds, not gRPC's default 30 s.
            ("grpc.dns_min_time_between_resolutions_ms", 2000)]


def too_large(error: grpc.RpcError) -> str | None:
    """The user-facing reason when a call failed because a message was over the size limit, else None."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    limit = config().max_grpc_message_size
    return (f"A message was larger than the gRPC limit of {limit / 2**20:.0f} MiB ({error.details()}). "
            "Keep large data out of remote function closures and runtime_env packages (use ray.put or "
            "excludes), or raise the limit on every node with RAY_max_grpc_message_size.")


def unauthenticated(error: grpc.RpcError, where: str) -> AuthenticationError | None:
    """The error to raise when `where` refused the call for its token (UNAUTHENTICATED), else None."""
    if error.code() != grpc.StatusCode.UNAUTHENTICATED:
        return None
    try:
        sent = auth.process_token() is not None
    except AuthenticationError:
        sent = False
    return AuthenticationError(auth.refused_message(where, sent))


# ---------------------------------------------------------------------------------------------- server
async def _deny_unary(request: bytes, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, auth.GRPC_UNAUTHENTICATED_DETAILS)


async def _deny_stream(request: bytes, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, auth.GRPC_UNAUTHENTICATED_DETAILS)
    yield b""  # never reached: makes this an async generator, as a streaming handler must be


# Deserializers are left out on purpose: the request of a refused call stays raw bytes, never parsed.
_DENY = {
    (False, False): grpc.unary_unary_rpc_method_handler(_deny_unary),
    (False, True): grpc.unary_stream_rpc_method_handler(_deny_stream),
    (True, False): grpc.stream_unary_rpc_method_handler(_deny_unary),
    (True, True): grpc.stream_stream_rpc_method_handler(_deny_stream),
}


class TokenServerInterceptor(grpc.aio.ServerInterceptor):
    """Refuses (UNAUTHENTICATED) every call whose `authorization` metadata is not `Bearer <token>`.

    Checked on the call's metadata, before its request message is read or deserialized; the token is
    compared in constant time.
    """

    def __init__(self, token: str):
        self._expected = (auth.BEARER_PREFIX + token).encode()

    async def intercept_service(self, continuation, handler_call_details):
        for key, value in handler_call_details.invocation_metadata or ():
            if key == auth.AUTHORIZATION_HEADER:
                given = value.encode() if isinstance(value, str) else value
                if auth.tokens_equal(given, self._expected):
                    return await continuation(handler_call_details)
                break
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: gRPC answers UNIMPLEMENTED, as without the interceptor
        return _DENY[(handler.request_streaming, handler.response_streaming)]


def new_server(options: list[tuple[str, int]] | None = None) -> grpc.aio.Server:
    """A grpc.aio server with the runtime's message limits that, while token authentication is on (the
    default), serves only calls carrying this process's token. Raises AuthenticationError when it is on
    and there is no token."""
    token = auth.process_token()
    interceptors = [TokenServerInterceptor(token)] if token is not None else []
    return grpc.aio.server(options=[*(options or []), *message_options()], interceptors=interceptors)


# ---------------------------------------------------------------------------------------------- client
class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class _SyncTokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                            grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call of a synchronous channel."""

    def __init__(self, token: str):
        self._pair = (auth.AUTHORIZATION_HEADER, auth.BEARER_PREFIX + token)

    def _details(self, d):
        return _CallDetails(d.method, d.timeout, (*(d.metadata or ()), self._pair), d.credentials,
                            getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _AioTokenInterceptorBase:
    def __init__(self, token: str):
        self._pair = (auth.AUTHORIZATION_HEADER, auth.BEARER_PREFIX + token)

    def _details(self, d: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(d.metadata or ()), self._pair)
        return grpc.aio.ClientCallDetails(d.method, d.timeout, metadata, d.credentials, d.wait_for_ready)


class _AioUnaryUnary(_AioTokenInterceptorBase, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _AioUnaryStream(_AioTokenInterceptorBase, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _AioStreamUnary(_AioTokenInterceptorBase, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


class _AioStreamStream(_AioTokenInterceptorBase, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


def new_channel(address: str) -> grpc.Channel:
    """A synchronous channel that sends this process's token with every call (none when disabled).
    Raises AuthenticationError when authentication is on and there is no token."""
    channel = grpc.insecure_channel(address, options=channel_options())
    token = auth.process_token()
    return channel if token is None else grpc.intercept_channel(channel, _SyncTokenInterceptor(token))


def new_aio_channel(address: str) -> grpc.aio.Channel:
    """The grpc.aio counterpart of `new_channel` (create it inside the running loop)."""
    token = auth.process_token()
    interceptors = None if token is None else [
        cls(token) for cls in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)]
    return grpc.aio.insecure_channel(address, options=channel_options(), interceptors=interceptors)
