"""Autoscaling: `ray.autoscaler.sdk` (request_resources) is the public API; `ray.autoscaler._private` is the
autoscaler process (a process of its own: it knows the GCS only through the protocol)."""
