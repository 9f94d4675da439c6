"""Ray's public runtime env types: `from ray.runtime_env import RuntimeEnv, RuntimeEnvConfig`."""

from ray.runtime_env.runtime_env import RuntimeEnv, RuntimeEnvConfig

__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
