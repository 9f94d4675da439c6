"""Errors of the state API SDK (Ray's names)."""


class RayStateApiException(Exception):
    pass


class ServerUnavailable(RayStateApiException):
    """The dashboard (the state API server) could not be reached."""
