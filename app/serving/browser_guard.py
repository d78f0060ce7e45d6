"""Keep web pages from using the local API: the one ASGI layer every request meets first.

A server on 127.0.0.1 is reachable from every page the person's browser opens. A page cannot
read a cross-origin answer, but it does not need to: a form or a `fetch(..., {mode:
"no-cors"})` POST with `Content-Type: text/plain` is sent without a preflight, and the model
generates (CSRF). And a page whose own name is rebound to 127.0.0.1 (DNS rebinding) is
same-origin with the server, so it can read answers too. Three rules, for every path:

- Host: while the server listens on loopback only, the Host header must name this machine
  ("localhost", "127.0.0.1", "[::1]"), so a rebound name is refused (`host_not_allowed`).
- Origin: a request that carries an Origin header, or that a browser marks as cross-site
  (`Sec-Fetch-Site`), is refused unless its origin is one the person allowed
  (`origin_not_allowed`). None are allowed by default. Clients that are not browsers (curl,
  the openai library) send neither header and are not affected.
- Content-Type: a body must be declared `application/json` (`unsupported_media_type`); the
  media types a page may send without a preflight are refused whatever their origin.

For allowed origins the server answers CORS: preflight `OPTIONS` requests, and the
`Access-Control-Allow-Origin` header on answers (streams included), through Starlette's
CORSMiddleware inside this guard.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BrowserGuard", "host_names_this_machine"]

# What a browser may send cross-origin without a preflight includes every method but these
# three with a body; they are the ones whose body must be JSON.
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Sec-Fetch-Site values that mean another site's page made the request.
_CROSS_SITE = frozenset({"cross-site", "same-site"})
# How long a browser may cache a preflight answer (seconds).
PREFLIGHT_MAX_AGE_S = 600


class BrowserGuard:
    """ASGI middleware applying the rules above, in front of `app`.

    Args:
        app: the API.
        allowed_origins: origins as browsers send them ("https://app.example"), already
            normalized (`app.settings.validate_origins`).
        loopback_only: the server listens on loopback addresses only, so Host must name
            this machine.
        refuse: builds the error answer (request path, status, message, code) in the shape
            of the API the path belongs to.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_origins: Collection[str],
        loopback_only: bool,
        refuse: Callable[[str, int, str, str], Response],
    ) -> None:
        self.allowed_origins = frozenset(allowed_origins)
        self.loopback_only = loopback_only
        self.refuse = refuse
        self.app: ASGIApp = CORSMiddleware(
            app,
            allow_origins=sorted(self.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],  # the openai library sends its own X-Stainless-* headers
            expose_headers=["Retry-After"],
            max_age=PREFLIGHT_MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.check(
            Headers(scope=scope), str(scope.get("method", "")), str(scope.get("path", "/"))
        )
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, headers: Headers, method: str, path: str = "/") -> Response | None:
        """The refusal for a request to `path` with these headers, or None to let it
        through."""
        if self.loopback_only:
            host = _host_name(headers.get("host", ""))
            if not host_names_this_machine(host):
                return self.refuse(
                    path,
                    403,
                    f"Requests must address this server as 127.0.0.1 or localhost, not "
                    f"{host!r}. Serve on another address, with an API key, to accept other "
                    "names.",
                    "host_not_allowed",
                )
        origin = headers.get("origin")
        if origin is not None and origin not in self.allowed_origins:
            return self.refuse(
                path,
                403,
                f"Web pages from {origin!r} may not use this server. Add the origin to the "
                "allowed origins (modeldeck serve --allow-origin) to let it.",
                "origin_not_allowed",
            )
        if origin is None and headers.get("sec-fetch-site", "").lower() in _CROSS_SITE:
            return self.refuse(
                path,
                403,
                "Web pages from other sites may not use this server.",
                "origin_not_allowed",
            )
        if method in _METHODS_WITH_BODY and not _is_json(headers.get("content-type", "")):
            return self.refuse(
                path,
                415,
                "Send the request body as JSON, with the header Content-Type: application/json.",
                "unsupported_media_type",
            )
        return None


def _is_json(content_type: str) -> bool:
    """Whether a Content-Type header says JSON in UTF-8 ("application/json", with an
    optional charset=utf-8)."""
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if media_type != "application/json":
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def _host_name(header: str) -> str:
    """The host of a Host header, without its port ("[::1]:8080" -> "::1")."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def host_names_this_machine(host: str) -> bool:
    """Whether `host` (from a Host header, port removed) names a loopback address."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
