"""The CustomResourceDefinitions, written as Python so v1 and v1alpha1 share one schema.

`python -m ray_operator.crd` regenerates `crds/*.yaml` and the chart's copies in `helm/crds/`;
a unit test fails when the committed files are stale.
"""
