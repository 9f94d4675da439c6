"""Fixtures: a real head node per test module, always torn down (jobs, agent and dashboard included)."""

import pytest
from jobs_cluster import HeadNode


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    node = HeadNode(tmp_path_factory.mktemp("jobs-head"))
    try:
        node.start()
        yield node
    finally:
        node.stop()
