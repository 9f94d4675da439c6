"""Token authentication's sources, modes and messages (ray._common.auth), and the HTTP check (auth_http)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from ray._common import auth, auth_http
from ray.exceptions import AuthenticationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No token anywhere: a home of its own, none of the variables."""
    for name in (auth.MODE_ENV, auth.TOKEN_ENV, auth.TOKEN_PATH_ENV):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    auth.reset_cache()
    yield home
    auth.reset_cache()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_token_sources_in_rays_order(clean_env, monkeypatch, tmp_path):
    assert auth.load_token() is None
    _write(clean_env / ".ray" / "auth_token", "from-default-file\n")
    assert auth.load_token() == "from-default-file"
    monkeypatch.setenv(auth.TOKEN_PATH_ENV, str(_write(tmp_path / "t", "  from-path-file  \nsecond line\n")))
    assert auth.load_token() == "from-path-file"  # first line only, stripped
    monkeypatch.setenv(auth.TOKEN_ENV, "  from-env \n")
    assert auth.load_token() == "from-env"
    monkeypatch.setenv(auth.TOKEN_ENV, "")  # empty counts as unset
    assert auth.load_token() == "from-path-file"


def test_a_token_path_that_cannot_be_read_is_an_error_not_a_fallback(clean_env, monkeypatch, tmp_path):
    _write(clean_env / ".ray" / "auth_token", "from-default-file")
    monkeypatch.setenv(auth.TOKEN_PATH_ENV, str(tmp_path / "missing"))
    with pytest.raises(AuthenticationError, match="RAY_AUTH_TOKEN_PATH is set but file cannot be opened or is empty"):
        auth.load_token()
    monkeypatch.setenv(auth.TOKEN_PATH_ENV, str(_write(tmp_path / "empty", "\n")))
    with pytest.raises(AuthenticationError):
        auth.load_token()


def test_mode_is_token_unless_disabled(monkeypatch):
    assert auth.auth_mode() == "token" and auth.token_auth_enabled()
    for raw, mode in (("", "token"), ("TOKEN", "token"), (" disabled ", "disabled"), ("Disabled", "disabled")):
        monkeypatch.setenv(auth.MODE_ENV, raw)
        assert auth.auth_mode() == mode
    monkeypatch.setenv(auth.MODE_ENV, "k8s")
    with pytest.raises(ValueError, match="not a valid authentication mode"):
        auth.auth_mode()


def test_process_token_says_rays_message_when_there_is_none(monkeypatch):
    with pytest.raises(AuthenticationError) as err:
        auth.process_token()
    text = str(err.value)
    assert text.startswith("Token authentication is enabled but no authentication token was found")
    for source in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token"):
        assert source in text
    monkeypatch.setenv(auth.MODE_ENV, "disabled")
    assert auth.process_token() is None
    monkeypatch.setenv(auth.MODE_ENV, "token")
    monkeypatch.setenv(auth.TOKEN_ENV, "t1")
    assert auth.process_token() == "t1"
    monkeypatch.setenv(auth.TOKEN_ENV, "t2")  # a changed environment is seen (no stale cache)
    assert auth.process_token() == "t2"


def test_a_new_cluster_generates_the_default_token_once(clean_env):
    token = auth.ensure_token_for_new_cluster()
    path = clean_env / ".ray" / "auth_token"
    assert token and len(token) == 64 and int(token, 16) >= 0
    assert path.read_text() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.ensure_token_for_new_cluster() == token  # an existing token is kept
    assert auth.process_token() == token


def test_concurrent_generation_agrees_on_one_token(clean_env):
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(auth.ensure_token_for_new_cluster())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert (clean_env / ".ray" / "auth_token").read_text() == results[0]
    assert not [p for p in (clean_env / ".ray").iterdir() if p.name != "auth_token"]  # no temp files left


def test_a_disabled_cluster_makes_no_token_and_warns(monkeypatch, clean_env, caplog):
    monkeypatch.setenv(auth.MODE_ENV, "disabled")
    with caplog.at_level("WARNING"):
        assert auth.ensure_token_for_new_cluster() is None
    assert "Token authentication is disabled" in caplog.text and "arbitrary code" in caplog.text
    assert not (clean_env / ".ray" / "auth_token").exists()
    assert auth.child_env(None) == {"RAY_AUTH_MODE": "disabled"}
    assert auth.child_env("t") == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "t"}


def test_http_headers_and_refusal_messages(monkeypatch):
    assert auth.http_headers() == {}  # on, but no token: nothing to send
    monkeypatch.setenv(auth.TOKEN_ENV, "secret")
    assert auth.http_headers() == {"Authorization": "Bearer secret"}
    refused = auth.refused_message("The GCS at h:1", sent_token=True)
    assert "invalid or incorrect" in refused and "RAY_AUTH_TOKEN environment variable" in refused
    assert "Could not reach" not in refused
    assert "sent no token" in auth.refused_message("The GCS at h:1", sent_token=False)
    assert auth.auth_error_body(401, "Unauthorized: Missing authentication token", False).startswith(
        "Authentication required: Unauthorized: Missing authentication token")
    assert auth.auth_error_body(403, "Forbidden: Invalid authentication token", True).startswith(
        "Authentication failed: Forbidden: Invalid authentication token")
    assert auth.auth_error_body(404, "", True) is None


def _request(headers: dict[str, str] | None = None, path: str = "/api/jobs/"):
    return make_mocked_request("GET", path, headers=headers or {})


def test_http_check_takes_rays_three_places():
    token = "s3cret"
    assert auth_http.request_status(_request(), token) == 401
    assert auth_http.request_status(_request({"Authorization": "Bearer s3cret"}), token) == 200
    assert auth_http.request_status(_request({"Authorization": "bearer s3cret"}), token) == 200
    assert auth_http.request_status(_request({"X-Ray-Authorization": "Bearer s3cret"}), token) == 200
    assert auth_http.request_status(_request({"Cookie": "ray-authentication-token=s3cret"}), token) == 200
    assert auth_http.request_status(_request({"Authorization": "Bearer nope"}), token) == 403
    assert auth_http.request_status(_request({"Authorization": "Basic czNjcmV0"}), token) == 403
    # Behind the API server's proxy `Authorization` is the proxy's; X-Ray-Authorization still counts.
    both = {"Authorization": "Bearer kube-token", "X-Ray-Authorization": "Bearer s3cret"}
    assert auth_http.request_status(_request(both), token) == 200


def test_login_redirects_stay_on_this_server_and_under_its_prefix():
    # Relative to the dashboard's root, so a proxy's path prefix is kept; the server's own paths count from it.
    assert auth_http._safe_next("/api/jobs/") == "./api/jobs/"
    assert auth_http._safe_next("./?x=1") == "./?x=1"
    for bad in ("//evil.example/x", "https://evil.example/", "evil", "/\\evil", ".//evil.example", "./\\x", None, ""):
        assert auth_http._safe_next(bad) == "./"


def test_the_login_form_posts_relative_to_the_page_it_is_on():
    def action(page_path: str) -> str:
        body = auth_http.login_response("/", page_path=page_path).text
        return body.split('<form method="post" action="', 1)[1].split('"', 1)[0]

    assert action("/") == "./login" and action("/login") == "./login"
    assert action("/static/app/main.js") == "../../login" and action("/nodes/") == "../login"
    assert 'value="./"' in auth_http.login_response("/").text


def test_env_is_not_changed_by_loading(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_ENV, "x")
    before = dict(os.environ)
    auth.process_token()
    auth.http_headers()
    assert dict(os.environ) == before
