"""Plain-dict fixtures: the seed's RayJob and a RayCluster as a user would write them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def seed_rayjob() -> dict:
    docs = list(yaml.safe_load_all((REPO / "examples" / "rayjob-sample.yaml").read_text()))
    rayjob = docs[0]
    rayjob["metadata"].update(namespace="default", uid="job-uid-1")
    return rayjob


@pytest.fixture
def raycluster() -> dict:
    return copy.deepcopy(
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": "demo", "namespace": "ns1", "uid": "uid-1", "generation": 1},
            "spec": {
                "rayVersion": "2.60.0",
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "ray-head",
                                    "image": "localhost/openray-head:dev",
                                    "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
                                }
                            ]
                        }
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "small",
                        "replicas": 3,
                        "minReplicas": 1,
                        "maxReplicas": 2,
                        "rayStartParams": {},
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "ray-worker",
                                        "image": "localhost/openray-worker:dev",
                                        "resources": {
                                            "limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"},
                                            "requests": {"cpu": "500m"},
                                        },
                                    }
                                ]
                            }
                        },
                    }
                ],
            },
        }
    )
