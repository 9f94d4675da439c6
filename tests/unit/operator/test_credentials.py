"""One credential helper: what kopf's login and the dashboard's service-proxy client get from the
kubernetes client's configuration (kubeconfig, in-cluster service account, hand-made)."""

from __future__ import annotations

from kubernetes import client
from ray_operator.controller import kopf_connection_info
from ray_operator.credentials import api_credentials


def _configuration(**fields) -> client.Configuration:
    cfg = client.Configuration()
    cfg.host = "https://10.96.0.1:443"
    for name, value in fields.items():
        setattr(cfg, name, value)
    return cfg


def test_kubeconfig_token():
    creds = api_credentials(_configuration(api_key={"BearerToken": "Bearer abc"}, ssl_ca_cert="/ca.crt"))
    assert creds.authorization == "Bearer abc" and creds.token == "abc"
    assert creds.server == "https://10.96.0.1:443" and creds.ca_path == "/ca.crt" and creds.verify_tls


def test_in_cluster_token_is_lower_case_bearer():
    creds = api_credentials(_configuration(api_key={"BearerToken": "bearer xyz"}))
    assert creds.token == "xyz" and creds.authorization == "bearer xyz"


def test_separate_prefix_and_bare_token():
    creds = api_credentials(_configuration(api_key={"authorization": "abc"}, api_key_prefix={"authorization": "Bearer"}))
    assert creds.authorization == "Bearer abc" and creds.token == "abc"
    bare = api_credentials(_configuration(api_key={"authorization": "abc"}))
    assert bare.authorization == "Bearer abc" and bare.token == "abc"


def test_an_expired_token_is_refreshed_on_every_call():
    tokens = iter(["Bearer first", "Bearer second"])

    def refresh(cfg: client.Configuration) -> None:
        cfg.api_key["BearerToken"] = next(tokens)

    cfg = _configuration(api_key={"BearerToken": "Bearer stale"}, refresh_api_key_hook=refresh)
    assert api_credentials(cfg).token == "first"
    assert api_credentials(cfg).token == "second"


def test_client_certificates_and_insecure():
    creds = api_credentials(_configuration(cert_file="/c.crt", key_file="/c.key", verify_ssl=False))
    assert creds.authorization is None and creds.token is None
    assert (creds.cert_path, creds.key_path, creds.verify_tls) == ("/c.crt", "/c.key", False)


def test_kopf_logs_in_with_the_same_credentials():
    creds = api_credentials(_configuration(api_key={"BearerToken": "Bearer abc"}, ssl_ca_cert="/ca.crt",
                                           cert_file="/c.crt", key_file="/c.key", verify_ssl=False))
    info = kopf_connection_info(creds)
    assert (info.server, info.token, info.ca_path, info.insecure) == ("https://10.96.0.1:443", "abc", "/ca.crt", True)
    assert (info.certificate_path, info.private_key_path) == ("/c.crt", "/c.key")
