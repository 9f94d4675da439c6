"""OpenRay: a Ray-compatible distributed runtime in Python."""

__version__ = "2.60.0"
