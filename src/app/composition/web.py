"""The web application, assembled from the modules' manifests."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.datastructures import CacheControlHeader, MutableScopeHeaders, State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import HTTPRouteHandler
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

from app.composition.container import ComposedModule, Composition, compose
from app.composition.edge import AllowedHosts, cors, security_headers
from app.composition.gateway import SimulatedGateway, proxy_route, proxy_routes
from app.composition.health import HealthController
from app.composition.openapi import DOCS_PATH, docs_router, document
from app.composition.ops import OPS, LocalOps, OpsApi, ops_of_every_group
from app.composition.ui import WebUi
from app.kernel.config import load_settings
from app.kernel.context import RequestContextMiddleware, bind_principal
from app.kernel.module import API_PREFIX
from app.kernel.problems import exception_handlers
from app.kernel.rpc import SimulatedNetwork, internal_router, service_keys_route
from app.kernel.security import public
from app.kernel.server import ClientLimits, Drain, GuardedHttpToolsProtocol
from app.kernel.signing_keys import JWKS_PATH
from app.kernel.telemetry import configure_logging
from app.kernel.telemetry.http import RequestTelemetryMiddleware, metrics_route
from app.kernel.telemetry.metrics import process_ended
from app.kernel.telemetry.tracing import configure_tracing, name_by_route, tracing_provider
from app.kernel.throttle import STORE_NAME
from contracts import Principal
from contracts.identity import IDENTITY

__all__ = ("create_app", "serve_app")

log = logging.getLogger("tessera.web")


def create_app(composition: Composition | None = None) -> Litestar:
    """The Litestar app for a composition (by default: every module, configured from the environment)."""
    composition = composition or compose(load_settings())
    auth = composition.access_tokens.auth(composition.revoked_sessions)
    settings = composition.settings
    metrics_here = settings.metrics.enabled and not settings.metrics.port  # else its own port, or off
    ops = LocalOps(composition)
    drain = Drain(settings.server.drain_seconds)  # SIGTERM: readiness 503 first (app.kernel.server)
    ui = WebUi(composition, ops_of_every_group(composition, ops)) if WebUi.serves(composition) else None
    app = Litestar(
        route_handlers=[
            HealthController,
            *([metrics_route(settings.metrics.path)] if metrics_here else []),
            *(_module_router(m) for m in composition.modules if m.module.routes),
            *_internal_routers(composition, ops),
            *_gateway_routes(composition),
            *_docs(composition),
            *_published_keys_route(composition),
            *([ui.router()] if ui else []),
        ],
        dependencies={
            "principal": Provide(_principal, sync_to_thread=False),
            "composition": Provide(lambda: composition, sync_to_thread=False),
        },
        middleware=composition.throttles.rate_limits(),  # after authentication: per user, per address
        stores={STORE_NAME: composition.throttles.store},
        before_request=_bind_principal,
        before_send=[
            drain.close_connections,
            _allow_what_the_path_serves,
            security_headers(settings.server, docs_path=DOCS_PATH),
            *([name_by_route] if tracing_provider() else []),
        ],
        cors_config=cors(settings.server),
        on_app_init=[auth.on_app_init],
        plugins=_tracing_plugins(),
        on_startup=[composition.start, drain.install],  # relays, consumers, the revocation poll
        on_shutdown=[ops.aclose, composition.aclose, process_ended],
        exception_handlers=exception_handlers(),
        logging_config=None,  # logs go to the root logger: JSON lines, see kernel.telemetry
        request_max_body_size=composition.settings.server.max_body_bytes,
        openapi_config=None,  # Tessera serves its own document: see app.composition.openapi
        state=State({"composition": composition, "drain": drain, **(ui.state if ui else {})}),
        template_config=ui.template_config() if ui else None,
    )
    # Outermost, so that 404s, 405s and auth failures are measured and carry the correlation id too.
    measure, log_requests = settings.metrics.enabled, settings.server.request_log
    handler = app.asgi_handler
    if composition.network is not None and settings.simulate.gateway:
        hop = settings.simulate.gateway_latencies_ms
        network = SimulatedNetwork(hop, settings.simulate.failure_rate) if hop else composition.network
        handler = SimulatedGateway(handler, network)
    if AllowedHosts.needed(settings.server.allowed_hosts):
        handler = AllowedHosts(handler, settings.server.allowed_hosts)
    if measure or log_requests:
        handler = RequestTelemetryMiddleware(handler, measure=measure, log_requests=log_requests)
    app.asgi_handler = RequestContextMiddleware(handler)
    return app


def serve_app() -> Litestar:
    """Factory for the ASGI server: each worker configures logging, then builds the app.

    ``TESSERA_GROUP`` (set by ``tessera serve --group``) picks the topology group to run.
    """
    settings = load_settings()
    configure_logging(settings.server.log_level, settings.server.log_format)
    server = settings.server
    GuardedHttpToolsProtocol.configure(
        ClientLimits(
            max_header_bytes=server.max_header_bytes,
            header_timeout_seconds=server.header_timeout_seconds,
            body_timeout_seconds=server.body_timeout_seconds,
        )
    )
    group = os.environ.get("TESSERA_GROUP") or None
    configure_tracing(group)  # before anything makes an engine or an HTTP client
    throttle = settings.throttle
    if throttle.enabled and throttle.store == "memory" and settings.server.workers > 1:
        log.warning(
            'throttle.store is "memory": each of %d workers counts sign-in attempts on its own; '
            'set throttle.store = "redis" to share the counts',
            settings.server.workers,
        )
    app = create_app(compose(settings, group=group))
    # What start-up made (modules, routes, compiled statements, the API document) lives as
    # long as the worker: out of the collector's sight, a full collection under load walks
    # only what requests make. p99 of GET one task at 64 clients 151 -> 74-109 ms, the list
    # 237-251 -> 150-229 ms (SQLite, one worker, interleaved runs).
    gc.collect()
    gc.freeze()
    return app


def _published_keys_route(composition: Composition) -> list[HTTPRouteHandler]:
    """``/.well-known/jwks.json``: served where identity runs, proxied to it from anywhere else."""
    owner = composition.placement.remote.get(IDENTITY.name)
    if owner is None:
        tokens = composition.access_tokens

        @get(
            JWKS_PATH,
            opt=public("verifiers fetch the public keys before they can check any token"),
            include_in_schema=False,
            sync_to_thread=False,
            cache_control=CacheControlHeader(max_age=60, public=True),
        )
        def published_keys() -> dict[str, Any]:
            return tokens.jwks()

        return [published_keys]
    if composition.remotes.http is None:
        return []
    return [
        proxy_route(
            JWKS_PATH, owner, composition.remotes.http, timeout=composition.settings.rpc.timeout_seconds
        )
    ]


def _docs(composition: Composition) -> list[Router]:
    if not composition.settings.server.api_docs:
        return []
    return [docs_router(document(composition.placement.every_module))]


def _tracing_plugins() -> list[OpenTelemetryPlugin]:
    """Litestar's own plugin records a server span per request, once tracing is configured."""
    provider = tracing_provider()
    if provider is None:
        return []
    untraced = [r"^/metrics", r"^/health/"]  # scraped and probed every few seconds
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        exclude=untraced,
        exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
    )
    return [OpenTelemetryPlugin(config)]


def _internal_routers(composition: Composition, ops: OpsApi) -> list[Router | HTTPRouteHandler]:
    """In a split topology: each local module's contract, served to the other groups, what this
    process tells the ops console, and the public keys they check this group's calls with."""
    placement, tokens = composition.placement, composition.remotes.tokens
    if not placement.is_split or tokens is None:
        return []
    return [
        service_keys_route(tokens),
        *(internal_router(m.module.provides, m.api, tokens=tokens) for m in composition.modules),
        internal_router(OPS, lambda: ops, tokens=tokens),
    ]


def _gateway_routes(composition: Composition) -> list[HTTPRouteHandler]:
    placement = composition.placement
    if composition.remotes.http is None:
        return []
    return proxy_routes(
        placement.remote_modules,
        placement.remote,
        composition.remotes.http,
        timeout=composition.settings.rpc.proxy_timeout_seconds,
    )


def _module_router(composed: ComposedModule) -> Router:
    return Router(
        path=API_PREFIX,
        route_handlers=list(composed.module.routes),
        dependencies={
            name: Provide(
                _resolver(composed.provider(declared, f"route dependency {name!r}")), sync_to_thread=False
            )
            for name, declared in composed.module.route_dependencies.items()
        },
    )


def _resolver(provider: Callable[[], Any]) -> Callable[[], Any]:
    # Litestar reads a dependency's signature; a provider has none, so wrap it.
    def resolve() -> Any:
        return provider()

    return resolve


async def _allow_what_the_path_serves(message: Message, scope: Scope) -> None:
    """``Allow`` on an OPTIONS answer names every method of the path.

    Litestar 2 builds it from the first handler registered at a path only (litestar#4169,
    fixed in 3): ``OPTIONS /api/v1/tasks`` said ``OPTIONS, POST``, leaving out GET.
    """
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    handler = scope.get("route_handler")
    if not isinstance(handler, HTTPRouteHandler) or handler.http_methods != {"OPTIONS"}:
        return  # not Litestar's generated answer: a proxied route passes on its owner's
    methods = _methods_by_path(scope["litestar_app"]).get(scope.get("path_template", ""))
    if methods:
        MutableScopeHeaders.from_message(message)["allow"] = ", ".join(sorted(methods))


def _methods_by_path(app: Litestar) -> dict[str, frozenset[str]]:
    known: dict[str, frozenset[str]] | None = app.state.get("methods_by_path")
    if known is None:
        known = {r.path_format: frozenset(r.methods) for r in app.routes if isinstance(r, HTTPRoute)}
        app.state["methods_by_path"] = known
    return known


def _principal(request: Request[Any, Any, Any]) -> Principal:
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthorizedException("authentication required")
    return user


async def _bind_principal(request: Request[Any, Any, Any]) -> None:
    # async, though it awaits nothing: Litestar runs a synchronous hook on a worker thread,
    # where the context variable it sets would be lost with the thread's copy of the context.
    user = request.scope.get("user")
    bind_principal(user if isinstance(user, Principal) else None)
