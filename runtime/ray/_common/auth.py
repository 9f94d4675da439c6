"""Token authentication: the mode, where the token comes from, and what every process says about it.

On by default for every cluster (Ray turns it on by default for local clusters from 2.59 and for all
clusters from 2.61); `RAY_AUTH_MODE=disabled` opts out, with a warning. The token is looked up in
Ray's order: `RAY_AUTH_TOKEN`, then the file named by `RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token`.
A node passes the token it runs with to every process it starts (`child_env`), so raylets, workers,
agents, job supervisors and job entrypoints all hold the same one.

Where it is checked: gRPC servers (`grpc_util`, a server interceptor before any request is decoded),
the framed sockets (`framing`, a handshake before the first frame), the HTTP servers (`auth_http`,
a middleware). This module has no I/O beyond reading and writing the token file.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import tempfile
from pathlib import Path

from ray.exceptions import AuthenticationError

logger = logging.getLogger(__name__)

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
TOKEN = "token"
DISABLED = "disabled"
# Set by the operator on a head pod: how to read the token there (the kubectl command); the dashboard adds it
# to its 401/403 answers and login page.
HINT_ENV = "OPENRAY_AUTH_HINT"

# HTTP: Ray's header and cookie names (python/ray/_private/authentication/authentication_constants.py).
AUTHORIZATION_HEADER = "authorization"
RAY_AUTHORIZATION_HEADER = "x-ray-authorization"
BEARER_PREFIX = "Bearer "
COOKIE_NAME = "ray-authentication-token"
COOKIE_MAX_AGE_S = 30 * 24 * 60 * 60

# Ray's texts.
TOKEN_SETUP_INSTRUCTIONS = (
    "Please provide an authentication token using one of these methods:\n"
    "  1. Set the RAY_AUTH_TOKEN environment variable\n"
    "  2. Set the RAY_AUTH_TOKEN_PATH environment variable (pointing to a token file)\n"
    "  3. Create a token file at the default location: ~/.ray/auth_token"
)
NO_TOKEN_MESSAGE = (
    "Token authentication is enabled but no authentication token was found. " + TOKEN_SETUP_INSTRUCTIONS
)
INVALID_TOKEN_MESSAGE = "Token authentication is enabled but the authentication token is invalid or incorrect."
HTTP_MISSING_TOKEN_TEXT = "Unauthorized: Missing authentication token"
HTTP_INVALID_TOKEN_TEXT = "Forbidden: Invalid authentication token"
GRPC_UNAUTHENTICATED_DETAILS = "Invalid or missing authentication token"
DISABLED_WARNING = (
    "Token authentication is disabled for this Ray cluster (RAY_AUTH_MODE=disabled). Anyone with network "
    "access to the cluster can run arbitrary code and access its data. To turn it back on, unset "
    "RAY_AUTH_MODE (token authentication is the default); `ray get-auth-token --generate` makes a token."
)
DISABLED_HERE_HINT = (
    "This process has RAY_AUTH_MODE=disabled and sends no token; unset RAY_AUTH_MODE and provide the "
    "cluster's token.\n" + TOKEN_SETUP_INSTRUCTIONS
)


def auth_mode() -> str:
    """`token` (the default, also when RAY_AUTH_MODE is unset or empty) or `disabled`."""
    raw = (os.environ.get(MODE_ENV) or "").strip().lower()
    if raw in ("", TOKEN):
        return TOKEN
    if raw == DISABLED:
        return DISABLED
    raise ValueError(f"{MODE_ENV}={os.environ.get(MODE_ENV)!r} is not a valid authentication mode; "
                     f"use '{TOKEN}' (the default) or '{DISABLED}'.")


def token_auth_enabled() -> bool:
    return auth_mode() == TOKEN


def default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def _read_token_file(path: str | Path) -> str:
    """The file's first line, stripped; "" when it cannot be read (Ray reads the first line only)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return ""


def load_token() -> str | None:
    """The token from Ray's sources in Ray's order, whatever the mode; None when there is none.

    A set RAY_AUTH_TOKEN_PATH whose file is missing or empty is an error (as in Ray): a token the user
    pointed at must not be silently replaced by ~/.ray/auth_token.
    """
    value = (os.environ.get(TOKEN_ENV) or "").strip()
    if value:
        return value
    path = os.environ.get(TOKEN_PATH_ENV)
    if path:
        value = _read_token_file(os.path.expanduser(path))
        if not value:
            raise AuthenticationError(f"{TOKEN_PATH_ENV} is set but file cannot be opened or is empty: {path}")
        return value
    return _read_token_file(default_token_path()) or None


def token_source() -> str:
    """Where `load_token` finds the token, in words (for messages)."""
    if (os.environ.get(TOKEN_ENV) or "").strip():
        return f"the {TOKEN_ENV} environment variable"
    if os.environ.get(TOKEN_PATH_ENV):
        return f"{os.environ[TOKEN_PATH_ENV]} ({TOKEN_PATH_ENV})"
    return str(default_token_path())


# The process's token, keyed by the variables that decide it, so a changed environment (tests, a driver
# that generated ~/.ray/auth_token) is seen. Only a found token is cached: "none yet" is asked again.
_cache: tuple[tuple, str | None] | None = None


def process_token() -> str | None:
    """The token this process sends and accepts: None when authentication is disabled.

    Raises AuthenticationError (Ray's message) when it is enabled and no source has a token.
    """
    global _cache
    key = (os.environ.get(MODE_ENV), os.environ.get(TOKEN_ENV), os.environ.get(TOKEN_PATH_ENV))
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1]
    if auth_mode() == DISABLED:
        _cache = (key, None)
        return None
    token = load_token()
    if token is None:
        raise AuthenticationError(NO_TOKEN_MESSAGE)
    _cache = (key, token)
    return token


def reset_cache() -> None:
    global _cache
    _cache = None


def generate_token() -> str:
    """A new random token: 256 bits, hex (as Ray's `ray get-auth-token --generate`)."""
    return secrets.token_hex(32)


def save_default_token(token: str) -> Path:
    """Write `token` to ~/.ray/auth_token (mode 0600) unless a token file is already there, atomically:
    concurrent starters agree on one token. Returns the path."""
    path = default_token_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".auth_token.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # fails if the file exists: someone else's token stays
        except FileExistsError:
            if not _read_token_file(path):  # an empty leftover file: replace it
                os.replace(tmp, path)
                tmp = ""
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    reset_cache()
    return path


def ensure_token_for_new_cluster() -> str | None:
    """For a head this process starts (`ray.init()`'s local cluster, `ray start --head`): the token from
    Ray's sources, generated into ~/.ray/auth_token when there is none. None (with Ray's warning) when
    authentication is disabled."""
    if auth_mode() == DISABLED:
        logger.warning(DISABLED_WARNING)
        return None
    token = load_token()
    if token is None:
        path = save_default_token(generate_token())
        logger.info("Generated a new authentication token and saved it to %s.", path)
        token = load_token()
    reset_cache()
    return token


def child_env(token: str | None) -> dict[str, str]:
    """The variables every process a node starts gets, so that it authenticates with the node's token."""
    if token is None:
        return {MODE_ENV: DISABLED}
    return {MODE_ENV: TOKEN, TOKEN_ENV: token}


def http_headers() -> dict[str, str]:
    """`Authorization: Bearer <token>` for this process's HTTP requests ({} when disabled or none)."""
    try:
        token = process_token()
    except AuthenticationError:
        return {}
    return {"Authorization": BEARER_PREFIX + token} if token else {}


def strip_bearer(value: str) -> str:
    """The token in an `Authorization`-style value (`Bearer <token>`, the scheme case-insensitive)."""
    value = value.strip()
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return value


def tokens_equal(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison."""
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def refused_message(where: str, sent_token: bool) -> str:
    """What a client says when `where` refused it: no token sent, or the wrong one."""
    if not sent_token:
        return (f"{where} requires token authentication, but this process sent no token. "
                + (DISABLED_HERE_HINT if auth_mode() == DISABLED else TOKEN_SETUP_INSTRUCTIONS))
    return (f"{where} refused this process's authentication token (from {token_source()}). "
            f"{INVALID_TOKEN_MESSAGE} Use the token the cluster was started with.\n" + TOKEN_SETUP_INSTRUCTIONS)


def auth_error_body(status: int, body: str, sent_token: bool) -> str | None:
    """What an HTTP client tells the user for a 401/403 from a Ray endpoint (None for other statuses)."""
    if status == 401:
        if not sent_token:
            hint = DISABLED_HERE_HINT if auth_mode() == DISABLED else NO_TOKEN_MESSAGE
        else:
            hint = ("This process sent its token, but the server did not see it (a proxy in between may drop the "
                    "Authorization header; X-Ray-Authorization: Bearer <token> passes most proxies).")
        return f"Authentication required: {body.strip()}\n\n{hint}"
    if status == 403:
        return (f"Authentication failed: {body.strip()}\n\n{INVALID_TOKEN_MESSAGE} "
                f"(this process's token is from {token_source()}).\n{TOKEN_SETUP_INSTRUCTIONS}")
    return None
