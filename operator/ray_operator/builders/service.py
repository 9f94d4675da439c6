"""The head Service `<cluster>-head-svc` and the RayJob's own copy `<rayjob>-head-svc`."""

from __future__ import annotations

import copy
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import names


def head_service_labels(cluster: dict[str, Any]) -> dict[str, str]:
    """Labels of the head Service, which are also its selector (they pick exactly the head pod)."""
    name = names.cluster_name(cluster)
    return {
        c.LABEL_CLUSTER: name,
        c.LABEL_NODE_TYPE: c.NODE_TYPE_HEAD,
        c.LABEL_IDENTIFIER: f"{name}-{c.NODE_TYPE_HEAD}",
        c.LABEL_APP_NAME: c.APP_NAME,
        c.LABEL_CREATED_BY: c.CREATED_BY,
    }


def head_service_ports(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """The head container's ports (KubeRay's five defaults when it declares none), plus metrics, sorted by name."""
    container = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    declared = container.get("ports") or []
    ports: dict[str, int] = {}
    if declared:
        for port in declared:
            number = int(port["containerPort"])
            ports[port.get("name") or f"{number}-port"] = number
    else:
        ports.update(c.DEFAULT_HEAD_PORTS)
    if c.METRICS_PORT_NAME not in ports and c.DEFAULT_METRICS_PORT not in ports.values():
        ports[c.METRICS_PORT_NAME] = c.DEFAULT_METRICS_PORT
    return [
        {"name": name, "port": number, "targetPort": number, "protocol": "TCP", "appProtocol": "tcp"}
        for name, number in sorted(ports.items())
    ]


def build_head_service(cluster: dict[str, Any], cluster_ip_service: bool = False) -> dict[str, Any]:
    """`<cluster>-head-svc`: headless unless a serviceType other than ClusterIP is asked for.

    Headless (with `publishNotReadyAddresses`) lets workers resolve the head before it turns Ready,
    which the `wait-gcs-ready` init container needs. `cluster_ip_service` is KubeRay's
    ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE switch.
    """
    group = cluster["spec"]["headGroupSpec"]
    custom = copy.deepcopy(group.get("headService") or {})
    custom_meta = custom.get("metadata") or {}
    labels = {**(custom_meta.get("labels") or {}), **head_service_labels(cluster)}
    annotations = {**(custom_meta.get("annotations") or {}), **(cluster["spec"].get("headServiceAnnotations") or {})}
    spec = custom.get("spec") or {}
    spec["selector"] = head_service_labels(cluster)
    if not spec.get("ports"):
        spec["ports"] = head_service_ports(cluster)
    service_type = group.get("serviceType") or spec.get("type") or "ClusterIP"
    spec["type"] = service_type
    if service_type == "ClusterIP" and not cluster_ip_service:
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    metadata: dict[str, Any] = {
        "name": names.head_service_name(cluster),
        "namespace": names.cluster_namespace(cluster),
        "labels": labels,
        "ownerReferences": [names.owner_reference(cluster)],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def build_rayjob_head_service(rayjob: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """`<rayjob>-head-svc`: a stable name for the current cluster's head, kept across retries."""
    service = build_head_service(cluster)
    service["metadata"]["name"] = f"{rayjob['metadata']['name']}-head-svc"
    service["metadata"]["ownerReferences"] = [names.owner_reference(rayjob)]
    service["metadata"]["labels"][c.LABEL_ORIGINATED_FROM_CR_NAME] = rayjob["metadata"]["name"]
    service["metadata"]["labels"][c.LABEL_ORIGINATED_FROM_CRD] = c.ORIGINATED_FROM_RAYJOB
    return service


def endpoints(service: dict[str, Any]) -> dict[str, str]:
    """`status.endpoints`: port name → port, from the Service."""
    return {p["name"]: str(p["port"]) for p in service.get("spec", {}).get("ports", []) if p.get("name")}
