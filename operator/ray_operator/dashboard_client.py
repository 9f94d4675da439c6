"""Ray's job API on the head's dashboard (port 8265), over aiohttp — used by HTTPMode and status polling.

With `use_kubernetes_proxy`, requests go through the API server's `services/proxy`, so an operator
running outside the cluster can still reach a dashboard that only has a cluster DNS name.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp


class DashboardError(RuntimeError):
    """The dashboard could not be reached or answered with an error."""


class DashboardClient:
    """Calls `GET /api/jobs/<id>`, `POST /api/jobs/`, `POST /api/jobs/<id>/stop` on one dashboard."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 2.0,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.headers = headers or {}
        self.ssl_context = ssl_context

    async def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        url = f"{self.base_url}{path}"
        try:
            async with aiohttp.ClientSession(timeout=self.timeout, headers=self.headers) as session:
                async with session.request(method, url, json=body, ssl=self.ssl_context) as response:
                    text = await response.text()
                    try:
                        payload: Any = await response.json(content_type=None) if text else None
                    except ValueError:
                        payload = text
                    return response.status, payload
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise DashboardError(f"{method} {url} failed: {err!r}") from err

    async def get_job_info(self, job_id: str) -> dict[str, Any] | None:
        """Ray's JobDetails for `job_id`, or None when the dashboard does not know it (404)."""
        status, payload = await self._request("GET", f"/api/jobs/{job_id}")
        if status == 404:
            return None
        if status != 200 or not isinstance(payload, dict):
            raise DashboardError(f"GET /api/jobs/{job_id} answered {status}: {payload}")
        return payload

    async def submit_job(self, body: dict[str, Any]) -> str:
        status, payload = await self._request("POST", "/api/jobs/", body)
        if status != 200 or not isinstance(payload, dict):
            raise DashboardError(f"POST /api/jobs/ answered {status}: {payload}")
        return payload.get("submission_id") or payload.get("job_id") or body.get("submission_id", "")

    async def stop_job(self, job_id: str) -> bool:
        status, payload = await self._request("POST", f"/api/jobs/{job_id}/stop")
        if status == 404:
            return False
        if status != 200:
            raise DashboardError(f"POST /api/jobs/{job_id}/stop answered {status}: {payload}")
        return bool((payload or {}).get("stopped", True))

    # Reconcilers run in worker threads without an event loop; these run one request each.
    def get_job_info_sync(self, job_id: str) -> dict[str, Any] | None:
        return asyncio.run(self.get_job_info(job_id))

    def submit_job_sync(self, body: dict[str, Any]) -> str:
        return asyncio.run(self.submit_job(body))

    def stop_job_sync(self, job_id: str) -> bool:
        return asyncio.run(self.stop_job(job_id))


def proxy_client(api_client: Any, namespace: str, service: str, port: int, timeout_s: float = 10.0) -> DashboardClient:
    """A client that reaches `service:port` through the API server's services/proxy, with the operator's credentials."""
    cfg = api_client.configuration
    headers: dict[str, str] = {}
    token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    if token:
        prefix = (cfg.api_key_prefix or {}).get("authorization", "")
        headers["Authorization"] = f"{prefix} {token}".strip() if not token.lower().startswith("bearer") else token
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cfg.cert_file and cfg.key_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    base = f"{cfg.host}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
    return DashboardClient(base, timeout_s=timeout_s, headers=headers, ssl_context=context)
