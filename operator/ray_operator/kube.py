"""A thin, dict-in dict-out layer over the Kubernetes API (the only module that calls it)."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from ray_operator.builders.timestamps import format_time

log = logging.getLogger(__name__)


def now_rfc3339() -> str:
    return format_time(datetime.datetime.now(datetime.UTC))


def load_config(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (`$KUBECONFIG` or ~/.kube/config)."""
    if kubeconfig:
        api_client = config.new_client_from_config(config_file=kubeconfig)
    else:
        try:
            config.load_incluster_config()
            api_client = client.ApiClient()
        except config.ConfigException:
            api_client = config.new_client_from_config()
    if not api_client.configuration.verify_ssl:
        # The kubeconfig asked for insecure-skip-tls-verify; warning on every request adds nothing.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return api_client


def is_not_found(err: Exception) -> bool:
    return isinstance(err, ApiException) and err.status == 404


class Kube:
    """The calls the reconcilers make, on plain dicts (camelCase, as `kubectl get -o json` shows them)."""

    def __init__(self, api_client: client.ApiClient, component: str = c.CREATED_BY) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.component = component

    def _dict(self, obj: Any) -> dict[str, Any]:
        return self.api_client.sanitize_for_serialization(obj)

    # Custom resources -------------------------------------------------------------------------------
    def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, plural, name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_custom(self, plural: str, namespace: str | None = None, label_selector: str = "") -> list[dict]:
        if namespace:
            result = self.custom.list_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, plural, label_selector=label_selector
            )
        else:
            result = self.custom.list_cluster_custom_object(c.GROUP, c.VERSION, plural, label_selector=label_selector)
        return result.get("items", [])

    def create_custom(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"]["namespace"]
        return self.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, plural, body)

    def patch_custom(self, plural: str, namespace: str, name: str, patch: dict[str, Any] | list[dict]) -> dict[str, Any]:
        """A merge patch (dict) or a JSON patch (list of operations)."""
        content_type = "application/json-patch+json" if isinstance(patch, list) else "application/merge-patch+json"
        return self.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, plural, name, patch, _content_type=content_type
        )

    def patch_custom_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object_status(
            c.GROUP, c.VERSION, namespace, plural, name, {"status": status}
        )

    def delete_custom(self, plural: str, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, plural, name, propagation_policy="Background"
            )
        except ApiException as err:
            if err.status != 404:
                raise

    # Pods -------------------------------------------------------------------------------------------
    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=label_selector)
        return [self._dict(p) for p in pods.items]

    def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.core.create_namespaced_pod(body["metadata"]["namespace"], body))

    def delete_pod(self, namespace: str, name: str) -> bool:
        """True when it was deleted now, False when it was already gone."""
        try:
            self.core.delete_namespaced_pod(name, namespace)
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    # Services ---------------------------------------------------------------------------------------
    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._dict(self.core.read_namespaced_service(name, namespace))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create_service(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.core.create_namespaced_service(body["metadata"]["namespace"], body))

    def patch_service(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.core.patch_namespaced_service(name, namespace, patch))

    # The autoscaler's ServiceAccount, Role and RoleBinding -------------------------------------------
    def _read(self, reader, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._dict(reader(name, namespace))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(self.core.read_namespaced_service_account, namespace, name)

    def create_service_account(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.core.create_namespaced_service_account(body["metadata"]["namespace"], body))

    def get_role(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(self.rbac.read_namespaced_role, namespace, name)

    def create_role(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.rbac.create_namespaced_role(body["metadata"]["namespace"], body))

    def get_role_binding(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(self.rbac.read_namespaced_role_binding, namespace, name)

    def create_role_binding(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.rbac.create_namespaced_role_binding(body["metadata"]["namespace"], body))

    # Secrets ----------------------------------------------------------------------------------------
    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._dict(self.core.read_namespaced_secret(name, namespace))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create_secret(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.core.create_namespaced_secret(body["metadata"]["namespace"], body))

    # Jobs -------------------------------------------------------------------------------------------
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._dict(self.batch.read_namespaced_job(name, namespace))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.batch.create_namespaced_job(body["metadata"]["namespace"], body))

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as err:
            if err.status != 404:
                raise

    # Events -----------------------------------------------------------------------------------------
    def event(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on `obj` (what `kubectl describe` and `kubectl get events` show). Never raises."""
        meta = obj["metadata"]
        stamp = now_rfc3339()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace", "default")},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace", "default"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(body["metadata"]["namespace"], body)
        except ApiException as err:  # an event is a courtesy; reconciling goes on without it
            log.warning("could not post event %s on %s/%s: %s", reason, meta.get("namespace"), meta["name"], err.reason)
