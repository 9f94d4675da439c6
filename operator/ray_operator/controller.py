"""Wires kopf's watches to the reconcilers through work queues.

kopf watches RayClusters, RayJobs and the pods and Jobs the operator made, and only enqueues keys
(`on.event` handlers store nothing on the objects: no kopf annotations, no kopf finalizers).
Worker threads run the level-based reconcilers; a periodic resync re-enqueues every object.

Why a work queue of our own rather than kopf's per-object handlers: an event on one kind must wake
a reconcile of another (a pod wakes its RayCluster; a RayCluster or submitter Job wakes its RayJob),
one key is never reconciled by two threads at once, and failures back off per key, as client-go's
queue does. kopf's change handlers would also write progress annotations and finalizers onto users'
objects. Leader election is a coordination.k8s.io Lease (`leader`), the RBAC KubeRay's chart grants,
instead of kopf's peering CRDs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from typing import Any

import kopf

from ray_operator import constants as c
from ray_operator.config import OperatorConfig
from ray_operator.credentials import ApiCredentials, api_credentials
from ray_operator.dashboard_client import DashboardFactory
from ray_operator.handlers.raycluster import reconcile_raycluster
from ray_operator.handlers.rayjob import default_dashboard_factory, reconcile_rayjob
from ray_operator.kube import Kube
from ray_operator.workqueue import WorkQueue, run_workers

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, kube: Kube, cfg: OperatorConfig, dashboards: DashboardFactory | None = None) -> None:
        self.kube = kube
        self.cfg = cfg
        # Built once, so every reconcile shares its connection pool.
        self.dashboards = dashboards or default_dashboard_factory(kube, cfg)
        self.clusters = WorkQueue(base_backoff_s=cfg.error_requeue_s)
        self.jobs = WorkQueue(base_backoff_s=cfg.error_requeue_s)
        self._stop = threading.Event()
        self._seen: dict[tuple[str, str, str], tuple] = {}
        self._seen_lock = threading.Lock()

    def _spec_changed(self, kind: str, body: dict[str, Any], event_type: str | None) -> bool:
        """Like controller-runtime's GenerationChanged/LabelChanged/AnnotationChanged predicates: our own
        status writes must not wake the reconciler again (that would defeat the failure back-off)."""
        meta = body.get("metadata", {})
        key = (kind, *_key(body))
        fingerprint = (
            meta.get("generation"),
            repr(sorted((meta.get("labels") or {}).items())),
            repr(sorted((meta.get("annotations") or {}).items())),
            meta.get("deletionTimestamp"),
            tuple(meta.get("finalizers") or ()),
        )
        with self._seen_lock:
            if event_type == "DELETED":
                self._seen.pop(key, None)
                return True
            changed = self._seen.get(key) != fingerprint
            self._seen[key] = fingerprint
            return changed

    def _cluster_work(self, key: Hashable) -> tuple[float | None, bool]:
        namespace, name = key  # type: ignore[misc]
        result = reconcile_raycluster(self.kube, self.cfg, namespace, name)
        return result.requeue_after, result.failed

    def _job_work(self, key: Hashable) -> tuple[float | None, bool]:
        namespace, name = key  # type: ignore[misc]
        result = reconcile_rayjob(self.kube, self.cfg, namespace, name, self.dashboards)
        return result.requeue_after, result.failed

    def start(self) -> None:
        run_workers(self.clusters, self._cluster_work, self.cfg.reconcile_concurrency, "raycluster")
        run_workers(self.jobs, self._job_work, self.cfg.reconcile_concurrency, "rayjob")
        threading.Thread(target=self._resync_loop, name="resync", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.clusters.close()
        self.jobs.close()

    def _resync_loop(self) -> None:
        """Every object is looked at again now and then, even if no watch event arrives."""
        while not self._stop.wait(min(self.cfg.raycluster_requeue_s, 60.0)):
            for namespace in self.cfg.watch_namespaces or [None]:
                try:
                    for obj in self.kube.list_custom(c.RAYCLUSTER_PLURAL, namespace):
                        self.clusters.add(_key(obj))
                    for obj in self.kube.list_custom(c.RAYJOB_PLURAL, namespace):
                        self.jobs.add(_key(obj))
                except Exception as err:  # the next round tries again
                    log.warning("resync failed: %s", err)

    def on_cluster_event(self, body: dict[str, Any], event_type: str | None = None) -> None:
        if self._spec_changed("RayCluster", body, event_type):
            self.clusters.add(_key(body))
        # A RayJob waits on its cluster's status, so every change of the cluster wakes it.
        labels = body.get("metadata", {}).get("labels") or {}
        if labels.get(c.LABEL_ORIGINATED_FROM_CRD) == c.ORIGINATED_FROM_RAYJOB:
            self.jobs.add((body["metadata"].get("namespace"), labels[c.LABEL_ORIGINATED_FROM_CR_NAME]))

    def on_pod_event(self, body: dict[str, Any]) -> None:
        labels = body.get("metadata", {}).get("labels") or {}
        self.clusters.add((body["metadata"].get("namespace"), labels[c.LABEL_CLUSTER]))

    def on_job_event(self, body: dict[str, Any], event_type: str | None = None) -> None:
        if self._spec_changed("RayJob", body, event_type):
            self.jobs.add(_key(body))

    def on_submitter_event(self, body: dict[str, Any]) -> None:
        labels = body.get("metadata", {}).get("labels") or {}
        self.jobs.add((body["metadata"].get("namespace"), labels[c.LABEL_ORIGINATED_FROM_CR_NAME]))


def _key(body: dict[str, Any]) -> tuple[str, str]:
    return (body["metadata"].get("namespace", "default"), body["metadata"]["name"])


def kopf_connection_info(credentials: ApiCredentials) -> kopf.ConnectionInfo:
    """kopf's watches log in with exactly the credentials the reconcilers use (in-cluster, or --kubeconfig)."""
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_path=credentials.ca_path,
        insecure=not credentials.verify_tls,
        certificate_path=credentials.cert_path,
        private_key_path=credentials.key_path,
        token=credentials.token,
    )


def register(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    """The kopf handlers; each only enqueues work for the controller."""

    @kopf.on.startup(registry=registry)
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True  # leader election is ours (a Lease), not kopf's peering CRDs
        settings.posting.enabled = False  # events come from the reconcilers, with KubeRay's reasons
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.scanning.disabled = True  # no cluster-wide CRD watch: works with namespaced RBAC too
        controller.start()

    @kopf.on.login(registry=registry)
    def _login(**_: Any) -> kopf.ConnectionInfo:
        return kopf_connection_info(api_credentials(controller.kube.api_client.configuration))

    @kopf.on.cleanup(registry=registry)
    def _cleanup(**_: Any) -> None:
        controller.stop()

    @kopf.on.event(c.GROUP, c.VERSION, c.RAYCLUSTER_PLURAL, registry=registry)
    async def _cluster(body: kopf.Body, type: str | None, **_: Any) -> None:  # noqa: A002 — kopf's name
        controller.on_cluster_event(dict(body), type)

    @kopf.on.event("", "v1", "pods", labels={c.LABEL_CLUSTER: kopf.PRESENT}, registry=registry)
    async def _pod(body: kopf.Body, **_: Any) -> None:
        controller.on_pod_event(dict(body))

    @kopf.on.event(c.GROUP, c.VERSION, c.RAYJOB_PLURAL, registry=registry)
    async def _rayjob(body: kopf.Body, type: str | None, **_: Any) -> None:  # noqa: A002 — kopf's name
        controller.on_job_event(dict(body), type)

    @kopf.on.event("batch", "v1", "jobs", labels={c.LABEL_ORIGINATED_FROM_CRD: c.ORIGINATED_FROM_RAYJOB}, registry=registry)
    async def _submitter(body: kopf.Body, **_: Any) -> None:
        controller.on_submitter_event(dict(body))
