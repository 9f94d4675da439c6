"""gRPC servicer of the runtime env agent protocol, backed by RuntimeEnvManager."""

from __future__ import annotations

import logging
import traceback

import grpc

from ray.agent.runtime_env.manager import RuntimeEnvManager, RuntimeEnvSetupFailed
from ray.protocol import runtime_env_agent_pb2, runtime_env_agent_pb2_grpc

logger = logging.getLogger(__name__)


class RuntimeEnvAgentServicer(runtime_env_agent_pb2_grpc.RuntimeEnvAgentServiceServicer):
    def __init__(self, manager: RuntimeEnvManager):
        self._manager = manager

    async def GetOrCreateRuntimeEnv(
        self, request: runtime_env_agent_pb2.GetOrCreateRuntimeEnvRequest, context: grpc.aio.ServicerContext
    ) -> runtime_env_agent_pb2.GetOrCreateRuntimeEnvReply:
        logger.info("GetOrCreateRuntimeEnv job=%s env=%s", request.job_id, request.serialized_runtime_env)
        try:
            env_context = await self._manager.get_or_create(request.serialized_runtime_env, request.job_id)
        except RuntimeEnvSetupFailed as e:
            logger.warning("Runtime env setup failed for job %s: %s", request.job_id, e)
            return runtime_env_agent_pb2.GetOrCreateRuntimeEnvReply(ok=False, error_message=str(e))
        except Exception:
            message = traceback.format_exc()
            logger.error("Unexpected error creating runtime env: %s", message)
            return runtime_env_agent_pb2.GetOrCreateRuntimeEnvReply(ok=False, error_message=message)
        return runtime_env_agent_pb2.GetOrCreateRuntimeEnvReply(
            ok=True, serialized_runtime_env_context=env_context.serialize()
        )

    async def DeleteRuntimeEnvIfPossible(
        self, request: runtime_env_agent_pb2.DeleteRuntimeEnvIfPossibleRequest, context: grpc.aio.ServicerContext
    ) -> runtime_env_agent_pb2.DeleteRuntimeEnvIfPossibleReply:
        ok = await self._manager.delete_if_possible(request.serialized_runtime_env)
        return runtime_env_agent_pb2.DeleteRuntimeEnvIfPossibleReply(ok=ok)
