"""Scheduling policies (pure functions over the cluster resource view)."""
