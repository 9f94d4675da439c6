"""The per-node agent: runtime envs (gRPC service, `runtime_env/`), the job agent, health endpoints (HTTP)."""
