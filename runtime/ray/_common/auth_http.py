"""Token authentication for the HTTP servers (dashboard, node agent): an aiohttp middleware, and the
dashboard's login page that sets the browser's cookie.

A request is let through when it carries the cluster's token in any of Ray's three places:
`Authorization: Bearer <token>` (SDKs, the CLI, curl), `X-Ray-Authorization: Bearer <token>` (what
KubeRay sends; it survives proxies that consume `Authorization`, such as the API server's service
proxy) or the `ray-authentication-token` cookie (the browser, set by the login page). No credentials:
401 "Unauthorized: Missing authentication token"; credentials that do not match: 403 "Forbidden:
Invalid authentication token" (Ray's texts). A browser asking for a page gets the login page instead,
with the same status. Health endpoints stay open, as Ray keeps them (KubeRay's probes call them).

Every URL the login page and its redirects use is relative (the form posts to `login` relative to the page,
`next` is a path relative to the dashboard's root, redirects say `./...`), so signing in works through
`kubectl port-forward`, the API server's service proxy or any reverse proxy that serves the dashboard under
a path prefix.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from aiohttp import web

from ray._common import auth

# What the dashboard serves without a token (Ray's public paths, less its SPA's index and static files:
# OpenRay's UI shows cluster data from its first byte, so a browser without the cookie gets the login page).
DASHBOARD_PUBLIC_PATHS = frozenset({
    "/api/gcs_healthz", "/api/healthz", "/api/local_raylet_healthz", "/-/healthz",
    "/api/authentication_mode", "/api/authenticate", "/login", "/logout", "/favicon.ico",
})
AGENT_PUBLIC_PATHS = frozenset({"/api/healthz", "/api/local_raylet_healthz"})


def _credentials(request: web.Request) -> list[str]:
    found = []
    for header in (auth.AUTHORIZATION_HEADER, auth.RAY_AUTHORIZATION_HEADER):
        value = request.headers.get(header)
        if value:
            found.append(auth.strip_bearer(value))
    cookie = request.cookies.get(auth.COOKIE_NAME)
    if cookie:
        found.append(cookie.strip())
    return found


def request_status(request: web.Request, token: str) -> int:
    """200 when the request carries `token`, 401 when it carries no credentials, 403 when they are wrong."""
    given = _credentials(request)
    if not given:
        return 401
    # Every candidate is compared (constant time each), so timing does not say which one matched.
    matches = [auth.tokens_equal(g, token) for g in given]
    return 200 if any(matches) else 403


def _wants_page(request: web.Request) -> bool:
    return (request.method in ("GET", "HEAD") and not request.path.startswith("/api/")
            and "text/html" in request.headers.get("Accept", ""))


def token_middleware(token: str, public_paths: Iterable[str], login_page: bool = False, hint: str | None = None):
    """The middleware that lets only requests with `token` reach the handlers (except `public_paths`).
    `hint` (where to find the token, e.g. the kubectl command on Kubernetes) follows Ray's text in refusals."""
    public = frozenset(public_paths)
    suffix = f"\n\n{hint}" if hint else ""

    @web.middleware
    async def authenticate(request: web.Request, handler):
        if request.path in public:
            return await handler(request)
        status = request_status(request, token)
        if status == 200:
            return await handler(request)
        if login_page and _wants_page(request):
            note = "" if status == 401 else "The saved token is not this cluster's token; enter it again."
            return login_response(request.path_qs, note, status, hint, page_path=request.path)
        text = auth.HTTP_MISSING_TOKEN_TEXT if status == 401 else auth.HTTP_INVALID_TOKEN_TEXT
        return web.Response(status=status, text=text + suffix)

    return authenticate


# ------------------------------------------------------------------------------------------- login page
_LOGIN_STYLE = ("body{font-family:sans-serif;margin:4em auto;max-width:36em}input[type=password]{width:100%;"
                "padding:6px;font-family:monospace}button{margin-top:1em;padding:6px 16px}.note{color:#b00}"
                "code{background:#eee;padding:1px 3px}")


def _safe_next(target: str | None) -> str:
    """Where to go after signing in, as a path relative to the dashboard's root (`./`, `./#/actors`): it
    stays under whatever prefix a proxy serves the dashboard at, and is never `//host` or a URL (no open
    redirect). A path from the server's view (`/api/jobs/`) counts from the root too."""
    if not target:
        return "./"
    if target.startswith("./"):
        rest = target[2:]
    elif target.startswith("/") and not target.startswith("//"):
        rest = target[1:]
    else:
        return "./"
    if rest.startswith(("/", "\\")) or "\\" in rest:
        return "./"
    return "./" + rest


def _to_root(path: str) -> str:
    """The relative way from the page at server path `path` back to the dashboard's root (`./`, `../../`)."""
    depth = path.count("/") - 1
    return "../" * depth if depth > 0 else "./"


def login_response(next_path: str = "./", note: str = "", status: int = 200, hint: str | None = None,
                   page_path: str = "/login") -> web.Response:
    """The sign-in page, served at server path `page_path` (any page a browser asks for without the token):
    its form posts to the login route relative to that page."""
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>OpenRay dashboard: sign in</title>"
        '<link rel="icon" href="data:,">'  # no request for /favicon.ico at the host's root, outside a prefix
        f"<style>{_LOGIN_STYLE}</style></head><body><h1>This Ray cluster requires a token</h1>"
        + (f'<p class="note">{html.escape(note)}</p>' if note else "")
        + f'<form method="post" action="{html.escape(_to_root(page_path), quote=True)}login">'
        f'<input type="hidden" name="next" value="{html.escape(_safe_next(next_path), quote=True)}">'
        '<label>Authentication token<br><input type="password" name="token" autofocus '
        'autocomplete="current-password"></label><br><button type="submit">Sign in</button></form>'
        "<p>The token is printed by <code>ray get-auth-token</code> on a machine of the cluster. "
        + (f"<code>{html.escape(hint)}</code>" if hint else "On Kubernetes: <code>kubectl get secret "
           "&lt;raycluster-name&gt; -o jsonpath='{.data.auth_token}' | base64 -d</code>.")
        + "</p><p>The browser keeps it in a cookie for 30 days.</p></body></html>"
    )
    return web.Response(status=status, text=page, content_type="text/html")


def _set_cookie(response: web.StreamResponse, request: web.Request, token: str) -> None:
    response.set_cookie(auth.COOKIE_NAME, token, max_age=auth.COOKIE_MAX_AGE_S, path="/", httponly=True,
                        samesite="Strict", secure=request.secure)


def add_login_routes(app: web.Application, token: str | None, hint: str | None = None) -> None:
    """`GET/POST /login` (the form), `GET /logout`, and Ray's `POST /api/authenticate` and
    `GET /api/authentication_mode` (which the real Ray's dashboard UI calls)."""

    async def authentication_mode(request: web.Request) -> web.Response:
        mode = auth.TOKEN if token is not None else auth.DISABLED
        response = web.json_response({"authentication_mode": mode})
        if token is None:
            response.del_cookie(auth.COOKIE_NAME, path="/")
        return response

    async def authenticate(request: web.Request) -> web.Response:
        if token is None:
            return web.Response(status=401, text="Unauthorized: Token authentication is not enabled")
        header = request.headers.get(auth.AUTHORIZATION_HEADER, "")
        if not header:
            return web.Response(status=401, text=auth.HTTP_MISSING_TOKEN_TEXT)
        given = auth.strip_bearer(header)
        if not auth.tokens_equal(given, token):
            return web.Response(status=403, text=auth.HTTP_INVALID_TOKEN_TEXT)
        response = web.json_response({"status": "authenticated", "message": "Token is valid"})
        _set_cookie(response, request, token)
        return response

    async def login_form(request: web.Request) -> web.Response:
        if token is None:
            raise web.HTTPSeeOther("./")
        return login_response(request.query.get("next", "./"), hint=hint)

    async def login_submit(request: web.Request) -> web.Response:
        if token is None:
            raise web.HTTPSeeOther("./")
        form = await request.post()
        given = str(form.get("token") or "").strip()
        next_path = _safe_next(str(form.get("next") or "./"))
        if not given:
            return login_response(next_path, "Enter the token.", 401, hint)
        if not auth.tokens_equal(auth.strip_bearer(given), token):
            return login_response(next_path, "That is not this cluster's token.", 403, hint)
        response = web.HTTPSeeOther(next_path)
        _set_cookie(response, request, token)
        return response

    async def logout(request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("login")
        response.del_cookie(auth.COOKIE_NAME, path="/")
        return response

    app.router.add_get("/api/authentication_mode", authentication_mode)
    app.router.add_post("/api/authenticate", authenticate)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_get("/logout", logout)
