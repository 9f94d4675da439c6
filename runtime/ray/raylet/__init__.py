"""The raylet: one per node; resources + scheduler, worker pool, shared-memory object store."""
