"""The dashboard: HTTP on the head (Ray's job API, packages, version and health endpoints)."""
