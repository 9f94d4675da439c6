"""The per-node agent: runtime env service (gRPC) and health endpoints (HTTP)."""
