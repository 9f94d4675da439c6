"""The core worker: the part of every driver and worker process that owns objects and submits tasks."""
