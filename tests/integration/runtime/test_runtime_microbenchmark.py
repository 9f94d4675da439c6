"""`ray microbenchmark` prints Ray's rows in Ray's format (users compare clusters with it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_ray_microbenchmark_prints_rays_rows(tmp_path):
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path), "RAY_MICROBENCHMARK_WARMUP_S": "0",
           "TESTS_TO_RUN": "single client tasks sync"}
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    out = subprocess.run([ray_cli, "microbenchmark"], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Tip: set TESTS_TO_RUN='pattern' to run a subset of benchmarks\n")
    rows = re.findall(r"^(.+) per second (\d+(?:\.\d+)?) \+- (\d+(?:\.\d+)?)$", out.stdout, re.M)
    assert [name for name, _, _ in rows] == ["single client tasks sync"]  # only the selected row
    assert float(rows[0][1]) > 0
