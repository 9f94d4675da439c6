"""The dashboard client's error path (its calls against OpenRay's real dashboard are in
tests/integration/operator/test_dashboard_client_real.py)."""

from __future__ import annotations

import socket

import pytest
from ray_operator.dashboard_client import DashboardClient, DashboardError


def test_unreachable_dashboard_is_a_dashboard_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DashboardError, match="failed"):
        DashboardClient(f"http://127.0.0.1:{port}", timeout_s=2).get_job_info("x")
