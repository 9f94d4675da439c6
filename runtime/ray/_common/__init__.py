"""The common layer: what every OpenRay process shares (ids, config, framing, serialization,
resources, the GCS client, runtime-env plumbing). Imports only `ray.protocol`, `ray.exceptions`, `ray._version`."""
