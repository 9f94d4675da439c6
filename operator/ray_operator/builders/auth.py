"""Token authentication of a RayCluster (KubeRay's `spec.authOptions`): the Secret holding the token and
the environment every Ray container gets. Pure: dicts in, dicts out; the token is drawn by the caller.

Unlike KubeRay, a cluster without `authOptions` runs with a token too (secure by default);
`authOptions.mode: disabled` opts out. `secretName` names an existing Secret (key `auth_token`) to use
instead of the one the operator makes, `<cluster>` (KubeRay's name), owned by the RayCluster.
"""

from __future__ import annotations

import base64
from typing import Any

from ray_operator import constants as c
from ray_operator.builders import names


def _options(cluster: dict[str, Any]) -> dict[str, Any]:
    return (cluster.get("spec") or {}).get("authOptions") or {}


def auth_mode(cluster: dict[str, Any]) -> str:
    """`token` unless `authOptions.mode` says `disabled`."""
    return _options(cluster).get("mode") or c.AUTH_MODE_TOKEN


def token_enabled(cluster: dict[str, Any]) -> bool:
    return auth_mode(cluster) == c.AUTH_MODE_TOKEN


def secret_name(cluster: dict[str, Any]) -> str:
    """`authOptions.secretName`, else the cluster's name as KubeRay's CheckName shortens it."""
    return _options(cluster).get("secretName") or names.check_generate_name(names.cluster_name(cluster))


def operator_makes_secret(cluster: dict[str, Any]) -> bool:
    return token_enabled(cluster) and not _options(cluster).get("secretName")


def build_auth_secret(cluster: dict[str, Any], token: str) -> dict[str, Any]:
    """The Secret `<cluster>` with `token` under `auth_token`, owned by the RayCluster (deleted with it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(cluster),
            "namespace": names.cluster_namespace(cluster),
            "labels": {c.LABEL_CLUSTER: names.cluster_name(cluster), c.LABEL_CREATED_BY: c.CREATED_BY},
            "ownerReferences": [names.owner_reference(cluster)],
        },
        "data": {c.RAY_AUTH_TOKEN_SECRET_KEY: base64.b64encode(token.encode()).decode()},
    }


def token_from_secret(secret: dict[str, Any] | None) -> str | None:
    """The token a Secret holds under `auth_token` (None when the Secret or the key is missing)."""
    if not secret:
        return None
    if (secret.get("stringData") or {}).get(c.RAY_AUTH_TOKEN_SECRET_KEY):
        return secret["stringData"][c.RAY_AUTH_TOKEN_SECRET_KEY].strip() or None
    raw = (secret.get("data") or {}).get(c.RAY_AUTH_TOKEN_SECRET_KEY)
    if not raw:
        return None
    return base64.b64decode(raw).decode("utf-8", "replace").strip() or None


def read_token_command(cluster: dict[str, Any]) -> str:
    """The kubectl command that prints the cluster's token."""
    return (f"kubectl get secret {secret_name(cluster)} -n {names.cluster_namespace(cluster)} "
            f"-o jsonpath='{{.data.{c.RAY_AUTH_TOKEN_SECRET_KEY}}}' | base64 -d")


def auth_env(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """`RAY_AUTH_MODE` and, with a token, `RAY_AUTH_TOKEN` from the Secret, for a container of the cluster."""
    if not token_enabled(cluster):
        return [{"name": c.RAY_AUTH_MODE_ENV, "value": c.AUTH_MODE_DISABLED}]
    return [
        {"name": c.RAY_AUTH_MODE_ENV, "value": c.AUTH_MODE_TOKEN},
        {"name": c.RAY_AUTH_TOKEN_ENV, "valueFrom": {"secretKeyRef": {
            "name": secret_name(cluster), "key": c.RAY_AUTH_TOKEN_SECRET_KEY}}},
    ]


def add_auth_env(env: list[dict[str, Any]], cluster: dict[str, Any], hint: bool = False) -> None:
    """Append the auth variables to `env` where the container does not set them itself (as KubeRay does);
    with `hint`, also the text the runtime's 401 answers carry (how to read the token)."""
    present = {item.get("name") for item in env}
    extra = auth_env(cluster)
    if hint and token_enabled(cluster):
        extra.append({"name": c.AUTH_HINT_ENV, "value": f"On Kubernetes, read this cluster's token with: "
                                                       f"{read_token_command(cluster)}"})
    env.extend(item for item in extra if item["name"] not in present)
