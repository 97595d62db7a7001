"""The gateway: public routes of modules running in another group, proxied to their owner.

Bodies stream both ways; status, headers and problem details pass through untouched.
``/internal`` is never proxied, so from outside it answers 404.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
from litestar import HttpMethod, Request, Response, route
from litestar.enums import ScopeType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from app.kernel.context import REQUEST_ID_HEADER, current_context
from app.kernel.module import API_PREFIX, Module
from app.kernel.problems import PROBLEM_MEDIA_TYPE, TYPE_PREFIX, Problem
from app.kernel.rpc import RemoteGroup, SimulatedNetwork
from app.kernel.security import public
from app.kernel.telemetry.tracing import current_trace_headers
from contracts import DependencyUnavailable

__all__ = ("proxy_route", "proxy_routes")

log = logging.getLogger("tessera.gateway")

# OPTIONS too: the owner knows which methods a path serves, the gateway does not.
METHODS = [
    HttpMethod.GET,
    HttpMethod.POST,
    HttpMethod.PUT,
    HttpMethod.PATCH,
    HttpMethod.DELETE,
    HttpMethod.OPTIONS,
]
FORWARDED_FOR = "x-forwarded-for"
# Connection-level headers belong to one hop, not to the message (RFC 9110 §7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "date",  # this server stamps its own
        "server",
        REQUEST_ID_HEADER,
        FORWARDED_FOR,  # the gateway's own, naming the client, set below
        "traceparent",  # the gateway's own span's, set below
        "tracestate",
    }
)


def proxy_routes(
    remote_modules: tuple[Module, ...],
    owners: dict[str, RemoteGroup],
    http: httpx.AsyncClient,
    timeout: float,
) -> list[HTTPRouteHandler]:
    """One route per public path of each remote module, proxied to its owner.

    Path by path, not a catch-all per prefix: one module's paths may nest in another's
    (activity's ``/tasks/{task_id}/activity`` under tasks' ``/tasks``), and a catch-all
    would take what is not its own.
    """
    handlers: list[HTTPRouteHandler] = []
    for module in remote_modules:
        paths = sorted({path for controller in module.routes for path in _public_paths(controller)})
        handlers.append(_proxy(paths, owners[module.name], http, timeout, module.name))
    return handlers


def _public_paths(controller: Any) -> list[str]:
    """The full paths a module's controller (or route handler) serves."""
    return [path for _, path in _public_routes(controller)]


def public_routes(module: Module) -> list[str]:
    """Each public route a module serves, as ``METHOD /path``."""
    return sorted(
        f"{method} {path}"
        for controller in module.routes
        for methods, path in _public_routes(controller)
        for method in sorted(methods)
    )


def _public_routes(controller: Any) -> list[tuple[set[str], str]]:
    base = f"{API_PREFIX}{getattr(controller, 'path', '')}".rstrip("/")
    found = (
        [getattr(controller, name, None) for name in dir(controller)] if isinstance(controller, type) else []
    )
    handlers = [h for h in found if isinstance(h, HTTPRouteHandler)] or [controller]
    return [
        (set(handler.http_methods), f"{base}{path}".rstrip("/") or "/")
        for handler in handlers
        for path in handler.paths
    ]


def proxy_route(
    path: str, owner: RemoteGroup, http: httpx.AsyncClient, *, timeout: float
) -> HTTPRouteHandler:
    """One path (and those under it) proxied to the group that owns it."""
    return _proxy([path, f"{path}/{{rest:path}}"], owner, http, timeout, owner.name)


def _proxy(
    paths: list[str], owner: RemoteGroup, http: httpx.AsyncClient, timeout: float, module: str
) -> HTTPRouteHandler:
    async def forward(request: Request[Any, Any, Any]) -> Response[Any]:
        _refuse_a_body_announced_too_large(request)
        owner.breaker.admit(module)
        context = current_context()
        # Stripped: surrounding whitespace is legal on the way in but refused by h11 on the way out.
        headers = [(k, v.strip()) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        headers += [(REQUEST_ID_HEADER, context.correlation_id), *current_trace_headers().items()]
        headers += [(FORWARDED_FOR, _forwarded_for(request))]
        upstream = http.build_request(
            request.method,
            f"{owner.url.rstrip('/')}{_path_as_sent(request)}",
            params=request.url.query,
            headers=headers,
            content=request.stream(),
            timeout=timeout,
        )
        try:
            answer = await http.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            owner.breaker.record_failure()
            log.warning("proxying to %s (%s) failed: %s: %s", module, owner.name, type(exc).__name__, exc)
            raise DependencyUnavailable(f"The {module} service did not answer; try again shortly.") from None
        owner.breaker.record_status(answer.status_code)
        passed_on = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Stream(_relay(answer), status_code=answer.status_code, headers=passed_on)

    return route(
        paths,
        http_method=METHODS,
        name=f"proxy:{module}:{paths[0]}",
        opt=public(f"the owning group ({owner.name}) authenticates the user itself"),
        include_in_schema=False,
    )(forward)


def _path_as_sent(request: Request[Any, Any, Any]) -> str:
    """The path exactly as the client sent it, percent-escapes and all.

    Decoded, a path may hold characters no URL can carry (a control character, say), and
    the owner must see the same path the gateway was asked for.
    """
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) and raw else request.url.path


def _forwarded_for(request: Request[Any, Any, Any]) -> str:
    """The client's address, for the owner's per-address throttles.

    The server already took it from a trusted proxy's X-Forwarded-For (server.forwarded_allow_ips)
    or from the connection; a client's own header is never passed on.
    """
    return request.client.host if request.client else "unknown"


def _refuse_a_body_announced_too_large(request: Request[Any, Any, Any]) -> None:
    """413 before the owner is called: forwarding would only cut its upload short.

    A body that comes without a length is counted as it streams; the owner then sees the
    upload end early, and says so without calling it an error.
    """
    limit = request.route_handler.resolve_request_max_body_size()
    announced = request.headers.get("content-length", "")
    if limit is not None and announced.isdigit() and int(announced) > limit:
        raise RequestEntityTooLarge


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()


class SimulatedGateway:
    """ASGI: ``simulate`` with a gateway. Each public API request first crosses the simulated
    network, as a pure gateway's proxy hop would; a failed crossing answers 503, as the
    gateway does when the group behind it does not."""

    def __init__(self, app: ASGIApp, network: SimulatedNetwork) -> None:
        self._app = app
        self._network = network

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["path"].startswith(API_PREFIX):
            try:
                await self._network.cross("gateway")
            except DependencyUnavailable as unavailable:
                problem = Problem(
                    type=f"{TYPE_PREFIX}{unavailable.code}",
                    title=unavailable.title,
                    status=503,
                    code=unavailable.code,
                    detail=unavailable.detail,
                    instance=scope["path"],
                    correlation_id=current_context().correlation_id,
                )
                body = msgspec.json.encode(problem)
                headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"retry-after", b"1")]
                start: HTTPResponseStartEvent = {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": headers,
                }
                end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
                await send(start)
                await send(end)
                return
        await self._app(scope, receive, send)
