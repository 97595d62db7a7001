"""The edge every request and response passes: allowed hosts, CORS, security headers.

- **Hosts**: a request whose ``Host`` is not in ``server.allowed_hosts`` is 400
  ``http.host_not_allowed`` before anything else runs (``*`` allows any). Litestar's own
  allowed-hosts middleware answers with a body of its own rather than a problem document,
  and compares the host with its port; this one compares the name.
- **CORS**: Litestar's, for the origins in ``server.cors_origins`` (none: off).
- **Headers**: ``X-Content-Type-Options``, ``Referrer-Policy``, ``X-Frame-Options`` and a
  Content-Security-Policy on every response (the API's forbids everything; the docs
  page's allows what it loads), and HSTS when ``server.hsts_seconds`` is set (production).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.response.base import ASGIResponse

from app.kernel.context import current_context
from app.kernel.problems import PROBLEM_MEDIA_TYPE, TYPE_PREFIX, Problem

if TYPE_CHECKING:
    from litestar.types import ASGIApp, BeforeMessageSendHookHandler, Message, Receive, Scope, Send

    from app.kernel.config import ServerSettings

__all__ = ("CSP_OPT", "AllowedHosts", "cors", "security_headers")

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# A route (or router) whose opt names a policy under this key gets it instead (the web UI's pages).
CSP_OPT = "content_security_policy"
# The docs page (Swagger UI, vendored: app.composition.openapi) loads everything from this
# server and runs no inline script; its stylesheet draws icons from data: URIs. It fetches the
# document and tries requests out on this origin (connect-src).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# What a browser script from an allowed origin may send and read.
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID"]
CORS_RESPONSE_HEADERS = [
    "ETag",
    "Location",
    "Retry-After",
    "Idempotent-Replayed",
    "X-Request-ID",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
]


def cors(settings: ServerSettings) -> CORSConfig | None:
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_RESPONSE_HEADERS,
        allow_credentials=False,  # bearer tokens, not cookies
        max_age=600,
    )


def security_headers(settings: ServerSettings, *, docs_path: str) -> BeforeMessageSendHookHandler:
    """A ``before_send`` hook that stamps the security headers on every response."""
    fixed = {
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    }
    if settings.hsts_seconds:
        fixed["strict-transport-security"] = f"max-age={settings.hsts_seconds}; includeSubDomains"

    async def stamp(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        for name, value in fixed.items():
            headers[name] = value
        on_docs = docs_path and scope.get("path", "").startswith(docs_path)
        handler = scope.get("route_handler")
        own = handler.opt.get(CSP_OPT) if handler is not None else None  # the web UI's pages
        headers["content-security-policy"] = own or (DOCS_CSP if on_docs else API_CSP)

    return stamp


class AllowedHosts:
    """ASGI: answer 400 ``http.host_not_allowed`` to a request for a host not configured."""

    __slots__ = ("_app", "_exact", "_suffixes")

    def __init__(self, app: ASGIApp, hosts: list[str]) -> None:
        self._app = app
        self._exact = frozenset(h.lower() for h in hosts if not h.startswith("*."))
        self._suffixes = tuple(h[1:].lower() for h in hosts if h.startswith("*."))  # ".example.com"

    @staticmethod
    def needed(hosts: list[str]) -> bool:
        return "*" not in hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or self._allows(_host_of(scope)):
            await self._app(scope, receive, send)
            return
        code = "http.host_not_allowed"
        body = msgspec.json.encode(
            Problem(
                type=f"{TYPE_PREFIX}{code}",
                title="Bad Request",
                status=400,
                code=code,
                detail="This server does not answer for that host.",
                instance=scope.get("path"),
                correlation_id=current_context().correlation_id,
            )
        )
        await ASGIResponse(body=body, status_code=400, media_type=PROBLEM_MEDIA_TYPE)(scope, receive, send)

    def _allows(self, host: str) -> bool:
        return host in self._exact or (bool(host) and host.endswith(self._suffixes))


def _host_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # [::1]:8000
                return host.partition("]")[0] + "]"
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""
