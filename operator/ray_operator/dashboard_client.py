"""Ray's job API on the head's dashboard (port 8265): HTTPMode submission, status polling, stop on delete.

Synchronous, like every other call a reconciler makes: reconcilers run in the work queue's threads
(see `controller`), and kopf's event loop only watches. urllib3 is the kubernetes client's own HTTP
library; its PoolManager is thread-safe and keeps connections to each dashboard open between polls.

With `--use-kubernetes-proxy`, requests go through the API server's `services/proxy`, so an operator
running outside the cluster can still reach a dashboard that only has a cluster DNS name.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from typing import Any

import urllib3

from ray_operator import constants as c
from ray_operator.credentials import ApiCredentials

# Connections kept open per dashboard (or to the API server): more than the reconcile threads that
# may talk to one at once, so urllib3 never has to discard one.
_CONNECTIONS_PER_HOST = 8


class DashboardError(RuntimeError):
    """The dashboard could not be reached or answered with an error."""


class DashboardClient:
    """Calls `GET /api/jobs/<id>`, `POST /api/jobs/`, `POST /api/jobs/<id>/stop` on one dashboard.

    With `token` (the cluster's, from its Secret) every request carries `X-Ray-Authorization: Bearer
    <token>`, as KubeRay's client sends it: the header reaches the dashboard through the API server's
    service proxy too, which consumes `Authorization`. `auth_hint` says where the token is when the
    dashboard refuses it (401/403).
    """

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 2.0,
        headers: dict[str, str] | None = None,
        pool: urllib3.PoolManager | None = None,
        token: str | None = None,
        auth_hint: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = urllib3.Timeout(total=timeout_s)
        self.headers = dict(headers or {})
        self.token = token
        if token:
            self.headers[c.RAY_AUTHORIZATION_HEADER] = f"Bearer {token}"
        self.auth_hint = auth_hint
        self.pool = pool or urllib3.PoolManager()

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        url = f"{self.base_url}{path}"
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            # No retries: the work queue retries the whole reconcile, and the status-check timeout
            # counts from the first failure.
            response = self.pool.request(method, url, body=data, headers=headers, timeout=self.timeout, retries=False)
        except urllib3.exceptions.HTTPError as err:
            raise DashboardError(f"{method} {url} failed: {err!r}") from err
        text = response.data.decode("utf-8", "replace")
        if response.status in (401, 403):
            raise DashboardError(self._refusal(method, path, response.status, text))
        try:
            payload: Any = json.loads(text) if text else None
        except ValueError:
            payload = text
        return response.status, payload

    def _refusal(self, method: str, path: str, status: int, text: str) -> str:
        """A 401/403: the cluster requires its token (and says which text it answered with)."""
        first_line = (text.strip().splitlines() or [""])[0]
        if c.RAY_AUTHORIZATION_HEADER not in self.headers:
            why = "the operator had no token to send: the cluster's Secret is missing or has no auth_token"
        else:
            why = "the dashboard refused the token from the cluster's Secret"
        message = f"{method} {path} answered {status}: {first_line} ({why})."
        return f"{message} {self.auth_hint}" if self.auth_hint else message

    def get_job_info(self, job_id: str) -> dict[str, Any] | None:
        """Ray's JobDetails for `job_id`, or None when the dashboard does not know it (404)."""
        status, payload = self._request("GET", f"/api/jobs/{job_id}")
        if status == 404:
            return None
        if status != 200 or not isinstance(payload, dict):
            raise DashboardError(f"GET /api/jobs/{job_id} answered {status}: {payload}")
        return payload

    def submit_job(self, body: dict[str, Any]) -> str:
        status, payload = self._request("POST", "/api/jobs/", body)
        if status != 200 or not isinstance(payload, dict):
            raise DashboardError(f"POST /api/jobs/ answered {status}: {payload}")
        return payload.get("submission_id") or payload.get("job_id") or body.get("submission_id", "")

    def stop_job(self, job_id: str) -> bool:
        status, payload = self._request("POST", f"/api/jobs/{job_id}/stop")
        if status == 404:
            return False
        if status != 200:
            raise DashboardError(f"POST /api/jobs/{job_id}/stop answered {status}: {payload}")
        return bool((payload or {}).get("stopped", True))


def api_server_pool(credentials: ApiCredentials) -> urllib3.PoolManager:
    """Connections to the API server, verified and authenticated as the kubernetes client's are."""
    return urllib3.PoolManager(
        maxsize=_CONNECTIONS_PER_HOST,
        cert_reqs=ssl.CERT_REQUIRED if credentials.verify_tls else ssl.CERT_NONE,
        ca_certs=credentials.ca_path,
        cert_file=credentials.cert_path,
        key_file=credentials.key_path,
    )


def proxy_client(
    credentials: ApiCredentials,
    namespace: str,
    service: str,
    port: int,
    timeout_s: float = 10.0,
    pool: urllib3.PoolManager | None = None,
    token: str | None = None,
    auth_hint: str = "",
) -> DashboardClient:
    """A client that reaches `service:port` through the API server's services/proxy, with the operator's
    credentials (take them fresh from `credentials.api_credentials`: tokens expire)."""
    headers = {"Authorization": credentials.authorization} if credentials.authorization else {}
    base = f"{credentials.server}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
    return DashboardClient(base, timeout_s=timeout_s, headers=headers, pool=pool or api_server_pool(credentials),
                           token=token, auth_hint=auth_hint)


# (the RayJob, its cluster's head Service, the cluster's token or None, where that token is) -> a client of
# that cluster's dashboard
DashboardFactory = Callable[..., DashboardClient]


def dashboard_factory(
    timeout_s: float, proxy_credentials: Callable[[], ApiCredentials] | None = None
) -> DashboardFactory:
    """Clients of the RayJobs' dashboards, sharing one connection pool: plain HTTP to the RayJob's
    `status.dashboardURL`, or, given the API server's credentials (`--use-kubernetes-proxy`), through
    the API server's service proxy to the head Service."""
    if proxy_credentials is None:
        direct_pool = urllib3.PoolManager(num_pools=64, maxsize=_CONNECTIONS_PER_HOST)

        def direct(rayjob: dict[str, Any], head_service: dict[str, Any], token: str | None = None,
                   auth_hint: str = "") -> DashboardClient:
            return DashboardClient(f"http://{rayjob['status']['dashboardURL']}", timeout_s=timeout_s, pool=direct_pool,
                                   token=token, auth_hint=auth_hint)

        return direct

    proxy_pool = api_server_pool(proxy_credentials())

    def proxied(rayjob: dict[str, Any], head_service: dict[str, Any], token: str | None = None,
                auth_hint: str = "") -> DashboardClient:
        meta = head_service["metadata"]
        return proxy_client(
            proxy_credentials(), meta["namespace"], meta["name"], c.DEFAULT_DASHBOARD_PORT, timeout_s, proxy_pool,
            token=token, auth_hint=auth_hint,
        )

    return proxied
