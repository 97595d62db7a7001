"""Every route is guarded unless it says why not; the app is built from the manifests."""

from __future__ import annotations

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler

from app.composition.catalog import MODULES
from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import Settings


def _handlers(app: Litestar) -> list[tuple[str, HTTPRouteHandler]]:
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            automatic = handler.http_methods == {"OPTIONS"}  # CORS preflight, added by Litestar
            if (
                isinstance(handler, HTTPRouteHandler)
                and not automatic
                and not route.path.startswith("/schema")
            ):
                found.append((route.path, handler))
    return found


def test_every_public_route_says_why(settings: Settings) -> None:
    app = create_app(compose(settings))
    for path, handler in _handlers(app):
        if handler.opt.get("exclude_from_auth"):
            assert str(handler.opt.get("public_because", "")).strip(), f"{path} is public without a reason"


def test_every_guarded_route_documents_401(settings: Settings) -> None:
    app = create_app(compose(settings))
    for path, handler in _handlers(app):
        if not handler.opt.get("exclude_from_auth"):
            assert 401 in (handler.responses or {}), f"{path} is guarded but does not document 401"


def test_the_app_serves_exactly_the_routes_the_manifests_declare(settings: Settings) -> None:
    app = create_app(compose(settings))
    served = sorted(handler.handler_name for path, handler in _handlers(app) if path.startswith("/api/"))
    declared = sorted(
        handler.handler_name
        for module in MODULES
        for controller in module.routes
        for handler in vars(controller).values()
        if isinstance(handler, HTTPRouteHandler)
    )
    assert served == declared
