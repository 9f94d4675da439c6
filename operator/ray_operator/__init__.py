"""OpenRay's KubeRay-compatible operator (kopf)."""
