"""OpenRay's KubeRay-compatible operator (kopf): RayCluster and RayJob (ray.io/v1, v1alpha1) into pods.

Layout:
- `builders/`   pure functions, dicts in and out (no kopf, no API client): pods and the `ray start`
                line, Services, status, the RayJob's cluster and submitter Job, runtime env decoding,
                spec validation, and the RayJob state machine (`rayjob_state.decide` → `rayjob_actions`).
- `handlers/`   level-based reconcilers (`reconcile_raycluster`, `reconcile_rayjob`): read, build or
                decide, apply the difference, write status, say when to look again.
- `controller`  kopf's event loop only watches and enqueues keys; `workqueue` threads run the
                reconcilers with synchronous I/O (one concurrency model).
- `kube`        the only module that calls the Kubernetes API; `dashboard_client` Ray's job API;
                `credentials` turns the API client's configuration into what kopf and the proxy need.
- `events`      the Kubernetes event reasons (KubeRay's); `constants` KubeRay's other names.
- `crd/`        the CRDs' schema (`python -m ray_operator.crd` writes crds/ and helm/crds/).
- `metrics`, `leader`, `config`, `__main__` (`python -m ray_operator`, KubeRay's flags).
"""
