"""Ray Client's pure parts: addresses, and the calls a client may forward exist on the real core worker."""

from __future__ import annotations

import pytest
from ray._common.gcs_client import GcsClient
from ray._private import client_mode
from ray.core_worker.core_worker import CoreWorker
from ray.core_worker.placement_groups import PlacementGroupClient


@pytest.mark.parametrize(("address", "expected"), [
    ("ray://localhost:10001", ("localhost", 10001)),
    ("ray://10.0.0.5", ("10.0.0.5", 10001)),
    ("ray://head-svc:23456/", ("head-svc", 23456)),
    ("ray://[::1]:10001", ("::1", 10001)),
])
def test_parse_address(address, expected):
    assert client_mode.parse_address(address) == expected


@pytest.mark.parametrize("address", ["ray://", "ray://host:port"])
def test_parse_address_rejects_nonsense_clearly(address):
    with pytest.raises(ValueError, match="Invalid Ray Client address"):
        client_mode.parse_address(address)


def test_forwarded_calls_exist_on_the_core_worker_and_gcs_client():
    assert all(callable(getattr(CoreWorker, name, None)) for name in client_mode.FORWARDED)
    assert all(callable(getattr(GcsClient, name, None)) for name in client_mode.GCS_FORWARDED)
    assert all(callable(getattr(PlacementGroupClient, name, None))
               for name in client_mode.PLACEMENT_GROUPS_FORWARDED)


def test_unknown_calls_are_not_forwarded():
    cw = client_mode.ClientCoreWorker("ray://127.0.0.1:1")
    with pytest.raises(AttributeError):
        cw.start_worker_process  # noqa: B018
    with pytest.raises(AttributeError):
        cw.gcs.drain_node  # noqa: B018
