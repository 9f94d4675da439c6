"""The seed's RayJob sample must stay exactly as the seed document has it."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"


def _seed_rayjob_block() -> str:
    seed = next(SEEDS.glob("001_*.txt")).read_text()
    start = seed.index("```yaml\napiVersion: ray.io/v1alpha1") + len("```yaml\n")
    return seed[start : seed.index("```", start)]


def test_rayjob_sample_is_the_seeds_file_unchanged():
    if not SEEDS.is_dir():
        pytest.skip("../shared/seeds is not beside this checkout")
    assert (REPO / "examples" / "rayjob-sample.yaml").read_text() == _seed_rayjob_block()


def test_rayjob_sample_holds_a_rayjob_and_its_configmap():
    docs = list(yaml.safe_load_all((REPO / "examples" / "rayjob-sample.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["RayJob", "ConfigMap"]
    assert docs[0]["apiVersion"] == "ray.io/v1alpha1"
    assert "sample_code.py" in docs[1]["data"]
