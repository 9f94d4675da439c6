"""Common layer shared by every OpenRay process (config, ids, resources, serialization, protocol helpers)."""
