"""The seed's RayJob program and runtime env (examples/rayjob-sample.yaml), submitted as a job."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray.raylet.main", reason="the sample uses actors, which need the runtime's raylet")
pytestmark = pytest.mark.timeout(900)

SAMPLE = Path(__file__).resolve().parents[3] / "examples" / "rayjob-sample.yaml"


def test_seed_counter_job_with_its_runtime_env(head, tmp_path):
    docs = list(yaml.safe_load_all(SAMPLE.read_text()))
    rayjob = next(d for d in docs if d and d.get("kind") == "RayJob")
    configmap = next(d for d in docs if d and d.get("kind") == "ConfigMap")
    runtime_env = json.loads(base64.b64decode(rayjob["spec"]["runtimeEnv"]))
    (tmp_path / "sample_code.py").write_text(configmap["data"]["sample_code.py"])
    proc = head.ray(
        "job", "submit", f"--address={head.dashboard_url}", "--submission-id=rayjob-sample-local",
        f"--runtime-env-json={json.dumps(runtime_env)}", "--", "python", str(tmp_path / "sample_code.py"),
        timeout=900, check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert [f"test_counter got {i}" for i in range(1, 6)] == re.findall(r"test_counter got \d", output)
    assert "\n2.26.0\n" in proc.stdout  # the driver sees the pip env's requests, not the runtime's
    assert "Job 'rayjob-sample-local' succeeded" in output
