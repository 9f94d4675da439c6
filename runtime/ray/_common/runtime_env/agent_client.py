"""Client of the node agent's runtime env gRPC service (used by the raylet and the job supervisor)."""

from __future__ import annotations

import grpc

from ray._common.grpc_util import new_aio_channel, unauthenticated
from ray._common.runtime_env.context import RuntimeEnvContext
from ray.exceptions import RuntimeEnvSetupError
from ray.protocol import runtime_env_agent_pb2, runtime_env_agent_pb2_grpc

# pip installs can take minutes; the env's own setup_timeout_seconds bounds them in the agent.
_CREATE_TIMEOUT_S = 3600


class RuntimeEnvAgentClient:
    def __init__(self, address: str):
        self.address = address
        self._channel: grpc.aio.Channel | None = None
        self._stub: runtime_env_agent_pb2_grpc.RuntimeEnvAgentServiceStub | None = None

    def _get_stub(self) -> runtime_env_agent_pb2_grpc.RuntimeEnvAgentServiceStub:
        # Created lazily so the channel belongs to the event loop that uses it.
        if self._stub is None:
            self._channel = new_aio_channel(self.address)
            self._stub = runtime_env_agent_pb2_grpc.RuntimeEnvAgentServiceStub(self._channel)
        return self._stub

    async def get_or_create_runtime_env(self, serialized_runtime_env: str, job_id: str) -> RuntimeEnvContext:
        request = runtime_env_agent_pb2.GetOrCreateRuntimeEnvRequest(
            serialized_runtime_env=serialized_runtime_env, job_id=job_id
        )
        try:
            reply = await self._get_stub().GetOrCreateRuntimeEnv(request, timeout=_CREATE_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            if (refused := unauthenticated(e, f"The runtime env agent at {self.address}")) is not None:
                raise RuntimeEnvSetupError(str(refused)) from e
            raise RuntimeEnvSetupError(
                f"The runtime env agent at {self.address} could not be reached: {e.code().name} {e.details()}"
            ) from e
        if not reply.ok:
            raise RuntimeEnvSetupError(reply.error_message)
        return RuntimeEnvContext.deserialize(reply.serialized_runtime_env_context)

    async def delete_runtime_env_if_possible(self, serialized_runtime_env: str) -> bool:
        request = runtime_env_agent_pb2.DeleteRuntimeEnvIfPossibleRequest(serialized_runtime_env=serialized_runtime_env)
        reply = await self._get_stub().DeleteRuntimeEnvIfPossible(request, timeout=30)
        return reply.ok

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None
