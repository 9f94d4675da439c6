"""The dashboard client is synchronous (the reconcilers' threads call it; no event loop of its own):
against a real HTTP server on localhost that speaks Ray's job API, directly and through a stand-in for
the API server's service proxy (TLS with its own CA, bearer token checked on every request)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ray_operator.credentials import ApiCredentials
from ray_operator.dashboard_client import DashboardClient, DashboardError, dashboard_factory

PROXY_PREFIX = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/services/(?P<svc>[^/:]+):(?P<port>\d+)/proxy")


class _JobApi(BaseHTTPRequestHandler):
    """Ray's `/api/jobs/` (what the operator calls), optionally behind the API server's proxy path."""

    jobs: dict[str, dict]
    seen: list[tuple[str, str, str | None]]
    proxy_token: str | None = None  # when set: only proxied requests carrying this token are served

    def _serve(self, method: str) -> None:
        self.seen.append((method, self.path, self.headers.get("Authorization")))
        path = self.path
        if self.proxy_token is not None:
            match = PROXY_PREFIX.match(path)
            if not match or (match["ns"], match["svc"], match["port"]) != ("ns1", "demo-head-svc", "8265"):
                return self._reply(404, {"message": "no such service"})
            if self.headers.get("Authorization") != f"Bearer {self.proxy_token}":
                return self._reply(401, {"message": "Unauthorized"})
            path = path[match.end():]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        if method == "GET" and (m := re.fullmatch(r"/api/jobs/([^/]+)", path)):
            job = self.jobs.get(m[1])
            return self._reply(200, job) if job else self._reply(404, {"message": f"Job {m[1]} does not exist"})
        if method == "POST" and path == "/api/jobs/":
            if "entrypoint" not in body:
                return self._reply(400, {"message": "entrypoint is required"})
            self.jobs[body["submission_id"]] = {"submission_id": body["submission_id"], "status": "PENDING",
                                                "entrypoint": body["entrypoint"], "metadata": body.get("metadata")}
            return self._reply(200, {"submission_id": body["submission_id"]})
        if method == "POST" and (m := re.fullmatch(r"/api/jobs/([^/]+)/stop", path)):
            if m[1] not in self.jobs:
                return self._reply(404, {"message": "no such job"})
            self.jobs[m[1]]["status"] = "STOPPED"
            return self._reply(200, {"stopped": True})
        return self._reply(500, {"message": f"unexpected {method} {path}"})

    def _reply(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 — http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def log_message(self, *_: object) -> None:
        return


def _start(handler: type, tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if tls else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def job_api() -> Iterator[tuple[str, type]]:
    handler = type("Dashboard", (_JobApi,), {"jobs": {}, "seen": []})
    server, url = _start(handler)
    try:
        yield url, handler
    finally:
        server.shutdown()
        server.server_close()


def test_submit_poll_stop_synchronously(job_api):
    url, handler = job_api
    client = DashboardClient(url, timeout_s=5)
    assert client.get_job_info("job-1") is None
    assert client.submit_job({"entrypoint": "python x.py", "submission_id": "job-1", "metadata": {"k": "v"}}) == "job-1"
    info = client.get_job_info("job-1")
    assert info["status"] == "PENDING" and info["metadata"] == {"k": "v"}
    assert client.stop_job("job-1") is True
    assert client.get_job_info("job-1")["status"] == "STOPPED"
    assert client.stop_job("nope") is False


def test_works_from_a_thread_that_runs_an_event_loop(job_api):
    """The old client ran `asyncio.run()` per request, which refuses to run inside a running loop."""
    url, _ = job_api
    client = DashboardClient(url, timeout_s=5)

    async def inside_a_loop() -> dict | None:
        return client.get_job_info("missing")

    assert asyncio.run(inside_a_loop()) is None


def test_error_answers_and_unreachable_dashboards_are_dashboard_errors(job_api):
    url, _ = job_api
    with pytest.raises(DashboardError, match="answered 400"):
        DashboardClient(url, timeout_s=5).submit_job({"submission_id": "x"})  # no entrypoint
    server, dead_url = _start(_JobApi)
    server.server_close()
    with pytest.raises(DashboardError, match="failed"):
        DashboardClient(dead_url, timeout_s=2).get_job_info("x")


def test_direct_factory_uses_the_rayjobs_dashboard_url(job_api):
    url, handler = job_api
    handler.jobs["j"] = {"status": "RUNNING"}
    make = dashboard_factory(timeout_s=5)
    rayjob = {"status": {"dashboardURL": url.removeprefix("http://")}}
    assert make(rayjob, {"metadata": {"name": "demo-head-svc", "namespace": "ns1"}}).get_job_info("j") == {"status": "RUNNING"}


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_service_proxy_mode_verifies_tls_and_sends_a_fresh_token(tls_files):
    cert, key = tls_files
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    handler = type("ApiServer", (_JobApi,), {"jobs": {"j": {"status": "SUCCEEDED"}}, "seen": [], "proxy_token": "t1"})
    server, url = _start(handler, tls)
    try:
        tokens = iter(["t1", "t2", "t3"])

        def credentials() -> ApiCredentials:  # as credentials.api_credentials would, token refreshed each time
            return ApiCredentials(server=url, authorization=f"Bearer {next(tokens)}", ca_path=str(cert),
                                  verify_tls=True, cert_path=None, key_path=None)

        make = dashboard_factory(timeout_s=5, proxy_credentials=credentials)  # takes t1 for the pool
        head_service = {"metadata": {"name": "demo-head-svc", "namespace": "ns1"}}
        handler.proxy_token = "t2"  # the API server rotated the token
        assert make({}, head_service).get_job_info("j") == {"status": "SUCCEEDED"}
        assert handler.seen[-1] == ("GET", "/api/v1/namespaces/ns1/services/demo-head-svc:8265/proxy/api/jobs/j",
                                    "Bearer t2")

        untrusted = ApiCredentials(server=url, authorization="Bearer t3", ca_path=None, verify_tls=True,
                                   cert_path=None, key_path=None)
        with pytest.raises(DashboardError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            dashboard_factory(timeout_s=5, proxy_credentials=lambda: untrusted)({}, head_service).get_job_info("j")
    finally:
        server.shutdown()
        server.server_close()
