"""`ray.util.state`: the cluster's state through the dashboard (Ray's state API SDK). Logs: `list_logs`,
`get_log` (`logs.py`)."""

from ray.util.state.logs import get_log, list_logs

__all__ = ["get_log", "list_logs"]
