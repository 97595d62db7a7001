"""The API document: Litestar's OpenAPI 3.1, made valid and complete, and the routes that serve it.

Litestar derives the document from the routes a process serves. Tessera's document is the
whole public API in every process (a split's gateway serves few routes itself but proxies
them all), so it is derived from every module's controllers in a documentation-only app,
then finished here:

- the bearer scheme without ``name`` (3.1 allows none on an ``http`` scheme), required
  globally; public routes (``public(...)``) say they need no security at all;
- operation ids ``<tag>_<handler>`` (``tasks_update``), unique, never stuttering;
- request bodies that refuse unknown fields say ``additionalProperties: false``;
- every operation documents 405 and 503, one with a body 413; 401 carries
  ``WWW-Authenticate``, 429 and 503 ``Retry-After``.

It is served at ``/schema/openapi.json`` with a docs page at ``/schema`` (``server.api_docs``):
Swagger UI, vendored in ``docs_assets/`` (see its README) and served from ``/schema/assets/``,
so the page works offline under a policy that allows nothing from another origin (see
``app.composition.edge``). Anything else under ``/schema`` is the usual 404 problem document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cache
from html import escape
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import PurePath
from typing import Any

import msgspec
from litestar import Litestar, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.params import FromPath
from litestar.routes import HTTPRoute

from app.composition.health import HealthController
from app.kernel.module import API_PREFIX, Module
from app.kernel.problems import PROBLEM_MEDIA_TYPE
from app.kernel.security import public

__all__ = ("ASSETS_PATH", "DOCS_PATH", "SWAGGER_UI", "docs_router", "document")

DOCS_PATH = "/schema"
ASSETS_PATH = f"{DOCS_PATH}/assets"
SWAGGER_UI = "swagger-ui-5.36.0"  # the folder of docs_assets/ that holds it, named for its version
BEARER = "BearerToken"

_PROBLEM = Reference(ref="#/components/schemas/Problem")
_RETRY_AFTER = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.INTEGER, minimum=1), description="Seconds to wait before trying again"
)
_ADDED: dict[int, str] = {
    405: "`http.method_not_allowed`: the path does not serve that method (see `Allow`)",
    503: "`dependency.unavailable`: a service or database this request needs is unavailable",
}


def document(catalog: Sequence[Module]) -> dict[str, Any]:
    """The OpenAPI document of the whole public API of ``catalog``, as a JSON-ready dict.

    Built once per set of modules (about a quarter of a second), then shared by every app
    of this process: treat it as read-only.
    """
    key = tuple(m.name for m in catalog)
    if key not in _DOCUMENTS:
        app = _documentation_app(catalog, _version())
        openapi = app.openapi_schema
        _finish(openapi, app)
        _DOCUMENTS[key] = openapi.to_schema()
    return _DOCUMENTS[key]


_DOCUMENTS: dict[tuple[str, ...], dict[str, Any]] = {}


def docs_router(schema: dict[str, Any]) -> Router:
    """``/schema/openapi.json``, the docs page and its assets, public: documentation needs no user."""
    encoded = msgspec.json.encode(schema)
    page = _page(title=f"{schema['info']['title']} API")
    _assets()  # read now: a build that lost them fails at start, not on a reader's first visit
    why = public("the API document describes the API; it needs no user")
    assets = public("the docs page's scripts, styles, icon and licences: what it needs to show the document")

    @get(
        "/openapi.json",
        media_type="application/vnd.oai.openapi+json",
        opt=why,
        include_in_schema=False,
        sync_to_thread=False,
    )
    def openapi_json() -> bytes:
        return encoded

    @get(["/", "/swagger"], media_type=MediaType.HTML, opt=why, include_in_schema=False, sync_to_thread=False)
    def docs_page() -> bytes:
        return page

    @get(
        f"/assets/{SWAGGER_UI}/{{name:str}}",
        opt=assets,
        include_in_schema=False,
        sync_to_thread=False,
        cache_control=CacheControlHeader(max_age=365 * 24 * 3600, public=True, immutable=True),
    )
    def swagger_ui_asset(name: FromPath[str]) -> Response[bytes]:
        return _asset(f"{SWAGGER_UI}/{name}")  # the path names the version: it never changes

    @get(
        "/assets/{name:str}",
        opt=assets,
        include_in_schema=False,
        sync_to_thread=False,
        cache_control=CacheControlHeader(no_cache=True),
    )
    def page_asset(name: FromPath[str]) -> Response[bytes]:
        return _asset(name)  # Tessera's own: may change with any release, so always revalidated

    return Router(
        DOCS_PATH,
        route_handlers=[openapi_json, docs_page, swagger_ui_asset, page_asset],
        include_in_schema=False,
    )


# -- the docs page -------------------------------------------------------------------------

# Only what the page's policy allows: every script and stylesheet a file served from here.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{swagger_ui}/favicon-32x32.png">
<link rel="stylesheet" href="{swagger_ui}/swagger-ui.css">
<link rel="stylesheet" href="{assets}/docs.css">
<script src="{swagger_ui}/swagger-ui-bundle.js" defer></script>
<script src="{assets}/init.js" defer></script>
</head>
<body>
<main id="swagger-ui">
<noscript><p>This page needs JavaScript. The API document is at
<a href="{document}">{document}</a>.</p></noscript>
</main>
</body>
</html>
"""
_MEDIA_TYPES = {
    ".js": "text/javascript",  # Litestar adds "; charset=utf-8" to text/*
    ".css": "text/css",
    ".png": "image/png",
    ".txt": "text/plain",
    "": "text/plain",  # LICENSE, NOTICE, README
}


def _page(*, title: str) -> bytes:
    return _PAGE.format(
        title=escape(title),
        assets=ASSETS_PATH,
        swagger_ui=f"{ASSETS_PATH}/{SWAGGER_UI}",
        document=f"{DOCS_PATH}/openapi.json",
    ).encode()


def _asset(name: str) -> Response[bytes]:
    found = _assets().get(name)
    if found is None:
        raise NotFoundException  # the usual 404, as for any other path not served
    content, media_type = found
    return Response(content, media_type=media_type)


@cache
def _assets() -> dict[str, tuple[bytes, str]]:
    """Every file of ``docs_assets/`` by its name there, with its media type; read once, about 2 MB.

    Found with ``importlib.resources``: the files ship inside the wheel, beside this module.
    The media types are Tessera's own, not the platform's table (which may call ``.js``
    ``text/plain``, refused under ``nosniff``).
    """
    root = files("app.composition") / "docs_assets"
    found: dict[str, tuple[bytes, str]] = {}
    for folder, prefix in ((root, ""), (root / SWAGGER_UI, f"{SWAGGER_UI}/")):
        for entry in folder.iterdir():
            if entry.is_file():
                suffix = PurePath(entry.name).suffix
                if suffix not in _MEDIA_TYPES:
                    raise RuntimeError(f"docs asset {entry.name} has no known media type")
                found[prefix + entry.name] = (entry.read_bytes(), _MEDIA_TYPES[suffix])
    return found


# -- building ------------------------------------------------------------------------------


def _documentation_app(catalog: Sequence[Module], version_: str) -> Litestar:
    """Every module's controllers in an app that is never served: only its routes are read."""
    routers = [Router(API_PREFIX, route_handlers=list(m.routes)) for m in catalog if m.routes]
    needed = {"principal", "composition", *(name for m in catalog for name in m.route_dependencies)}
    return Litestar(
        route_handlers=[HealthController, *routers],
        dependencies={name: Provide(_never(name), sync_to_thread=False) for name in needed},
        openapi_config=OpenAPIConfig(
            title="Tessera",
            version=version_,
            description="Task management: a modular monolith whose modules can each run as a service.",
            path=DOCS_PATH,
        ),
        logging_config=None,
    )


def _never(name: str) -> Callable[[], None]:
    """A provider of its own for each dependency (Litestar tells providers apart by identity)."""

    def provide() -> None:
        raise RuntimeError(f"the documentation app serves no request (dependency {name!r})")

    return provide


def _finish(openapi: OpenAPI, app: Litestar) -> None:
    components = openapi.components if isinstance(openapi.components, Components) else Components()
    components.security_schemes = {
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="A user's access token from POST /api/v1/auth/token.",
        )
    }
    openapi.components = components
    openapi.security = [{BEARER: []}]
    closed = set()
    operation_ids: set[str] = set()
    for path, method, handler, operation in _operations(openapi, app):
        data = handler.parsed_data_field
        body_type = data.annotation if data is not None else None
        if (
            isinstance(body_type, type)
            and issubclass(body_type, msgspec.Struct)
            and body_type.__struct_config__.forbid_unknown_fields
        ):
            closed.add(body_type.__name__)
        if handler.opt.get("exclude_from_auth"):
            operation.security = []
        tag = (handler.resolve_tags() or ["api"])[0]
        operation.operation_id = f"{tag}_{handler.handler_name}"
        if operation.operation_id in operation_ids:
            raise RuntimeError(f"two operations are called {operation.operation_id} ({method} {path})")
        operation_ids.add(operation.operation_id)
        _complete_responses(operation, has_body=operation.request_body is not None)
    for name in closed:
        schema = (components.schemas or {}).get(name)
        if isinstance(schema, Schema):
            schema.additional_properties = False


def _operations(openapi: OpenAPI, app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler, Operation]]:
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in (openapi.paths or {}):
            continue
        item = (openapi.paths or {})[route.path_format]
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if isinstance(operation, Operation):
                    yield route.path_format, method, handler, operation


def _complete_responses(operation: Operation, *, has_body: bool) -> None:
    responses = operation.responses if operation.responses is not None else {}
    added = dict(_ADDED)
    if has_body:
        added[413] = "`http.payload_too_large`: the body is larger than the server accepts"
    for added_status, description in added.items():
        responses.setdefault(str(added_status), _problem(description))
    for code, response in responses.items():
        if not isinstance(response, OpenAPIResponse):
            continue
        headers = dict(response.headers or {})
        for header in headers.values():  # a header declared for documentation only has no schema yet
            if isinstance(header, OpenAPIHeader) and header.schema is None and header.content is None:
                header.schema = Schema(type=OpenAPIType.STRING)
        if code in {"429", "503"}:
            headers.setdefault("Retry-After", _RETRY_AFTER)
        if code == "401":
            headers.setdefault(
                "WWW-Authenticate",
                OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), description='`Bearer realm="tessera"`'),
            )
        response.headers = headers or None
    operation.responses = responses


def _problem(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description, content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=_PROBLEM)}
    )


def _version() -> str:
    try:
        return version("tessera")
    except PackageNotFoundError:
        return "0.0.0"
