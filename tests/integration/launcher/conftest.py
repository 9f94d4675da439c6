"""Cluster launcher tests: hosts are network namespaces running a real sshd each (see ssh_hosts.py)."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(autouse=True)
def _needs_root_and_ip():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ssh") is None:
        pytest.skip("needs root, iproute2 and an ssh client to make SSH hosts of network namespaces")
