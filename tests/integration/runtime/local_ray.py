"""A one-node cluster started by this test process (`ray.init`) with its dashboard on a free port: the tests of
the state API, task events and thread-pushed work share it per module, as `with local_ray_with_dashboard(...)`.
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
from polling import wait_for
from ray._common import auth
from ray._common.net import free_port


def dashboard_serving(url: str) -> bool:
    """Whether the dashboard at `url` answers `/api/version` (with this process's token)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/api/version", headers=auth.http_headers()),
                                    timeout=5) as reply:
            return reply.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def local_ray_with_dashboard(temp_dir: Path, num_cpus: int = 2, **init_kwargs: Any) -> Iterator[dict[str, str]]:
    """`ray.init` with a dashboard, yielded once the dashboard answers as {"url": ..., "gcs": ...};
    `ray.shutdown()` afterwards, also when the test failed."""
    port = free_port()
    ctx = ray.init(num_cpus=num_cpus, dashboard_port=port, _temp_dir=str(temp_dir), **init_kwargs)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: dashboard_serving(url), 60, interval=0.3)
        yield {"url": url, "gcs": ctx.address_info["gcs_address"]}
    finally:
        ray.shutdown()
