"""The operator's credentials for the API server, read from the kubernetes client's configuration.

`kube.load_config` finds them (the pod's service account, or a kubeconfig); this module is the one
place that turns that configuration into what the operator's other HTTP clients need: kopf's watch
login (`controller`) and the dashboard client's service-proxy mode (`dashboard_client`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client

_BEARER = "bearer "


@dataclass(frozen=True)
class ApiCredentials:
    server: str  # e.g. https://10.96.0.1:443
    authorization: str | None  # the Authorization header's value ("Bearer <token>"), None with client certificates
    ca_path: str | None  # the CA bundle that signed the API server's certificate
    verify_tls: bool  # False when the kubeconfig says insecure-skip-tls-verify
    cert_path: str | None  # client certificate and key (kubeconfig client-certificate / client-key)
    key_path: str | None

    @property
    def token(self) -> str | None:
        """The bearer token alone, as kopf's ConnectionInfo takes it (None for other schemes)."""
        if self.authorization and self.authorization.lower().startswith(_BEARER):
            return self.authorization[len(_BEARER) :]
        return None


def api_credentials(configuration: client.Configuration) -> ApiCredentials:
    """The credentials as of now: an expiring token (the in-cluster one is re-read from its file, an
    exec plugin's is re-run) is refreshed first, so call this per connection, not once at start."""
    # The kubernetes client's loaders store "Bearer <token>" (in-cluster: "bearer <token>") under
    # "BearerToken"; hand-made configurations often use "authorization" with a separate prefix. This
    # call covers both and runs the refresh hook.
    authorization = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
    if authorization and " " not in authorization.strip():
        authorization = f"Bearer {authorization.strip()}"  # a bare token with no prefix configured
    return ApiCredentials(
        server=configuration.host,
        authorization=authorization or None,
        ca_path=configuration.ssl_ca_cert or None,
        verify_tls=bool(configuration.verify_ssl),
        cert_path=configuration.cert_file or None,
        key_path=configuration.key_file or None,
    )
