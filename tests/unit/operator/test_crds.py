"""The committed CRD files are what the schema module renders, and the chart ships the same bytes."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray_operator.crd.render import render_files

REPO = Path(__file__).resolve().parents[3]


def test_committed_crds_are_current():
    for name, text in render_files().items():
        assert (REPO / "crds" / name).read_text() == text, f"crds/{name} is stale: run python -m ray_operator.crd"


def test_chart_ships_the_same_crd_files():
    top = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (REPO / "helm" / "crds").glob("*.yaml"))
    assert top == chart
    for name in top:
        assert (REPO / "crds" / name).read_bytes() == (REPO / "helm" / "crds" / name).read_bytes()


def _unknown_fields(value, schema, path):
    """Fields of `value` that the API server would prune under `schema`."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or not isinstance(value, dict):
        if isinstance(value, list) and "items" in schema:
            return [f for i, item in enumerate(value) for f in _unknown_fields(item, schema["items"], f"{path}[{i}]")]
        return []
    if "additionalProperties" in schema:
        return []
    found = []
    for key, item in value.items():
        if key not in schema.get("properties", {}):
            found.append(f"{path}.{key}")
        else:
            found += _unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    return found


def test_seed_rayjob_keeps_every_field_in_both_versions():
    seed = next(yaml.safe_load_all((REPO / "examples" / "rayjob-sample.yaml").read_text()))
    crd = yaml.safe_load((REPO / "crds" / "ray.io_rayjobs.yaml").read_text())
    for version in crd["spec"]["versions"]:
        spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert _unknown_fields(seed["spec"], spec_schema, "spec") == [], version["name"]


def test_versions_columns_and_status_subresource():
    crd = yaml.safe_load((REPO / "crds" / "ray.io_rayclusters.yaml").read_text())
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    assert versions["v1"]["storage"] and not versions["v1alpha1"]["storage"]
    assert versions["v1alpha1"]["served"] and versions["v1alpha1"]["deprecated"]
    assert all(v["subresources"] == {"status": {}} for v in versions.values())
    columns = [col["name"] for col in versions["v1"]["additionalPrinterColumns"]]
    assert columns[:8] == ["desired workers", "available workers", "cpus", "memory", "gpus", "tpus", "status", "age"]
