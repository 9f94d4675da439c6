"""The GCS server: cluster metadata (nodes, jobs, actors, internal KV, pub/sub)."""
