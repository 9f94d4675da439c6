"""`ray.job_submission.JobSubmissionClient`: Ray's jobs SDK over the dashboard's REST API."""

from __future__ import annotations

import json
import logging
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ray._common import auth
from ray._common.runtime_env.packaging import upload_local_packages
from ray._common.runtime_env.validation import validate_runtime_env
from ray.dashboard.modules.job.common import JobStatus
from ray.dashboard.modules.job.models import JobDetails
from ray.exceptions import AuthenticationError

logger = logging.getLogger(__name__)

DEFAULT_DASHBOARD_ADDRESS = "http://127.0.0.1:8265"
_MIN_SERVER_VERSION = (2, 0)
_TIMEOUT_S = 60


# Where the dashboard records its address in the GCS KV (Ray's DASHBOARD_ADDRESS / KV_NAMESPACE_DASHBOARD).
DASHBOARD_ADDRESS_KEY = b"dashboard"
DASHBOARD_KV_NAMESPACE = b"dashboard"


def _local_cluster_gcs_address() -> str | None:
    """The GCS that `ray start` recorded on this machine, if any."""
    try:
        from ray._common import process_registry

        path = process_registry.current_cluster_file(process_registry.default_temp_dir())
        return path.read_text().strip() if path.exists() else None
    except Exception:
        return None


def dashboard_url_from_gcs(gcs_address: str) -> str | None:
    """The dashboard's URL as the cluster at `gcs_address` recorded it; None if that is no GCS."""
    try:
        from ray._common.gcs_client import GcsClient

        client = GcsClient(gcs_address, timeout_s=5)
        try:
            value = client.internal_kv_get(DASHBOARD_ADDRESS_KEY, DASHBOARD_KV_NAMESPACE)
        finally:
            client.close()
    except Exception:
        return None
    return f"http://{value.decode()}" if value else None


def resolve_address(address: str | None) -> str:
    """Ray's rules: RAY_API_SERVER_ADDRESS, else RAY_ADDRESS, else the argument; an http(s) URL is used
    as is, a cluster address ("host:port" of the GCS, "auto" or nothing) is looked up in the GCS."""
    address = os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or address
    if address and "://" in address:
        if address.startswith("ray://"):
            raise ValueError(
                f"{address!r} is a Ray Client address; the jobs API needs the dashboard's HTTP address, "
                "e.g. http://127.0.0.1:8265."
            )
        return address.rstrip("/")
    gcs_address = address if address and address != "auto" else _local_cluster_gcs_address()
    if gcs_address:
        url = dashboard_url_from_gcs(gcs_address)
        if url:
            return url
        if address and address != "auto":
            # Not a GCS: most likely the dashboard's host:port given without a scheme.
            return "http://" + address.rstrip("/")
    return DEFAULT_DASHBOARD_ADDRESS


class _Response:
    def __init__(self, status: int, body: bytes):
        self.status_code = status
        self.content = body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class JobSubmissionClient:
    """Submits and manages jobs on a cluster through its dashboard (default http://127.0.0.1:8265)."""

    def __init__(
        self,
        address: str | None = None,
        create_cluster_if_needed: bool = False,
        cookies: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        verify: str | bool | None = True,
    ):
        self._address = resolve_address(address)
        self._cookies = cookies or {}
        self._default_metadata = dict(metadata or {})
        self._headers = dict(headers or {})
        if not any(k.lower() == auth.AUTHORIZATION_HEADER for k in self._headers):
            # The cluster's token (Ray's sources), unless the caller brought their own Authorization.
            self._headers.update(auth.http_headers())
        self._sent_token = any(k.lower() in (auth.AUTHORIZATION_HEADER, auth.RAY_AUTHORIZATION_HEADER)
                               for k in self._headers)
        if self._cookies:
            self._headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self._cookies.items())
        self._ssl_context = self._make_ssl_context(verify)
        self._check_connection_and_version()

    @staticmethod
    def _make_ssl_context(verify: str | bool | None) -> ssl.SSLContext | None:
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if isinstance(verify, str):
            return ssl.create_default_context(cafile=verify)
        return None

    def get_address(self) -> str:
        return self._address

    def _do_request(
        self, method: str, endpoint: str, *, data: bytes | None = None, json_data: Any = None
    ) -> _Response:
        headers = dict(self._headers)
        if json_data is not None:
            data = json.dumps(json_data).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self._address + endpoint, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_S, context=self._ssl_context) as response:
                return _Response(response.status, response.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            message = auth.auth_error_body(e.code, body.decode("utf-8", "replace"), self._sent_token)
            if message is not None:
                raise AuthenticationError(message) from None
            return _Response(e.code, body)
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(
                f"Failed to connect to Ray at address: {self._address}. ({getattr(e, 'reason', e)})"
            ) from e

    @staticmethod
    def _raise_error(response: _Response) -> None:
        raise RuntimeError(f"Request failed with status code {response.status_code}: {response.text}.")

    def _check_connection_and_version(self) -> None:
        response = self._do_request("GET", "/api/version")
        if response.status_code == 404:
            raise RuntimeError(
                "Version check returned 404. Please ensure the cluster is running Ray 2.0 or higher."
            )
        if response.status_code != 200:
            self._raise_error(response)
        self._server_ray_version = response.json()["ray_version"]
        major_minor = tuple(int(p) for p in self._server_ray_version.split(".")[:2])
        if major_minor < _MIN_SERVER_VERSION:
            raise RuntimeError(
                f"Ray version {self._server_ray_version} is running on the cluster. "
                "Please ensure the cluster is running Ray 2.0 or higher."
            )

    def get_version(self) -> str:
        response = self._do_request("GET", "/api/version")
        if response.status_code != 200:
            self._raise_error(response)
        return response.json()["version"]

    def _package_exists(self, uri: str) -> bool:
        protocol, name = uri.split("://", 1)
        response = self._do_request("GET", f"/api/packages/{protocol}/{name}")
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        self._raise_error(response)
        return False

    def _upload_package(self, uri: str, data: bytes) -> None:
        protocol, name = uri.split("://", 1)
        logger.info("Uploading package %s.", uri)
        response = self._do_request("PUT", f"/api/packages/{protocol}/{name}", data=data)
        if response.status_code != 200:
            self._raise_error(response)

    def submit_job(
        self,
        *,
        entrypoint: str,
        job_id: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        submission_id: str | None = None,
        entrypoint_num_cpus: int | float | None = None,
        entrypoint_num_gpus: int | float | None = None,
        entrypoint_memory: int | None = None,
        entrypoint_resources: dict[str, float] | None = None,
        entrypoint_label_selector: dict[str, str] | None = None,
    ) -> str:
        """Submits `entrypoint` (a shell command) and returns its submission id."""
        if job_id is not None and submission_id is not None:
            raise ValueError("Cannot specify both job_id and submission_id; job_id is deprecated.")
        runtime_env = validate_runtime_env(dict(runtime_env or {}))
        runtime_env = upload_local_packages(runtime_env, self._package_exists, self._upload_package)
        body: dict[str, Any] = {
            "entrypoint": entrypoint,
            "submission_id": submission_id or job_id,
            "runtime_env": runtime_env,
            "metadata": {**self._default_metadata, **(metadata or {})},
        }
        optional = {
            "entrypoint_num_cpus": entrypoint_num_cpus,
            "entrypoint_num_gpus": entrypoint_num_gpus,
            "entrypoint_memory": entrypoint_memory,
            "entrypoint_resources": entrypoint_resources,
            "entrypoint_label_selector": entrypoint_label_selector,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        response = self._do_request("POST", "/api/jobs/", json_data=body)
        if response.status_code != 200:
            self._raise_error(response)
        return response.json()["submission_id"]

    def stop_job(self, job_id: str) -> bool:
        response = self._do_request("POST", f"/api/jobs/{job_id}/stop")
        if response.status_code != 200:
            self._raise_error(response)
        return bool(response.json()["stopped"])

    def delete_job(self, job_id: str) -> bool:
        response = self._do_request("DELETE", f"/api/jobs/{job_id}")
        if response.status_code != 200:
            self._raise_error(response)
        return bool(response.json()["deleted"])

    def get_job_info(self, job_id: str) -> JobDetails:
        response = self._do_request("GET", f"/api/jobs/{job_id}")
        if response.status_code != 200:
            self._raise_error(response)
        return JobDetails.from_dict(response.json())

    def list_jobs(self) -> list[JobDetails]:
        response = self._do_request("GET", "/api/jobs/")
        if response.status_code != 200:
            self._raise_error(response)
        return [JobDetails.from_dict(job) for job in response.json()]

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id: str) -> str:
        response = self._do_request("GET", f"/api/jobs/{job_id}/logs")
        if response.status_code != 200:
            self._raise_error(response)
        return response.json()["logs"]

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """Yields the job's logs as they are written, until the job finishes."""
        ws_address = self._address.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        async with aiohttp.ClientSession(headers=self._headers) as session:
            try:
                ws = await session.ws_connect(
                    f"{ws_address}/api/jobs/{job_id}/logs/tail",
                    ssl=self._ssl_context if self._ssl_context is not None else True,
                )
            except aiohttp.WSServerHandshakeError as e:
                message = auth.auth_error_body(e.status, e.message, self._sent_token)
                if message is not None:
                    raise AuthenticationError(message) from None
                raise RuntimeError(f"Request failed with status code {e.status}: {e.message}.") from e
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    yield msg.data
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    if ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE:
                        raise RuntimeError(
                            f"WebSocket connection closed unexpectedly with close code {ws.close_code}"
                        )
                    break
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise RuntimeError(f"WebSocket error for job {job_id}: {ws.exception()}")
