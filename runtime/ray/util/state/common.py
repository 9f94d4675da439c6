"""`ray.util.state.common`: the state API's schemas and constants (Ray's names)."""

from ray._common.state_schema import (  # noqa: F401 - re-exported
    DEFAULT_LIMIT,
    DEFAULT_LOG_LIMIT,
    DEFAULT_RPC_TIMEOUT,
    RAY_MAX_LIMIT_FROM_API_SERVER,
    RAY_MAX_LIMIT_FROM_DATA_SOURCE,
    ActorState,
    ClusterEventState,
    JobState,
    ListApiResponse,
    NodeState,
    ObjectState,
    PlacementGroupState,
    RuntimeEnvState,
    StateSchema,
    TaskState,
    WorkerState,
)
