"""Errors of the state API SDK (Ray's names)."""


class RayStateApiException(Exception):
    """The dashboard refused a state API request or could not serve it (the message says why)."""


class ServerUnavailable(RayStateApiException):
    """The dashboard (the state API server) could not be reached."""
