"""Thin reconcilers: read the world, call the builders, apply the difference, write status."""
