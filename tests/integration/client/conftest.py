"""Ray Client tests: the client runs in a network namespace of its own (see ../netns_hosts.py)."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(autouse=True)
def _needs_root_and_ip():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make network namespaces")
