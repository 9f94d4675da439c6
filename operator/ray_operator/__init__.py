"""OpenRay's KubeRay-compatible operator (kopf): RayCluster and RayJob (ray.io/v1, v1alpha1) into pods.

Layout:
- `builders/`   pure functions, dicts in and out: pods and the `ray start` line, Services, status,
                the RayJob's cluster and submitter Job, runtime env decoding, spec validation.
- `handlers/`   level-based reconcilers (`reconcile_raycluster`, `reconcile_rayjob`): read, build,
                apply the difference, write status, say when to look again.
- `controller`  kopf watches that only enqueue keys; `workqueue` runs the reconcilers.
- `kube`        the only module that calls the Kubernetes API; `dashboard_client` Ray's job API.
- `crd/`        the CRDs' schema (`python -m ray_operator.crd` writes crds/ and helm/crds/).
- `metrics`, `leader`, `config`, `__main__` (`python -m ray_operator`, KubeRay's flags).
"""
