"""The API document: valid OpenAPI 3.1, the whole public API, and saying what the API does."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from litestar.testing import TestClient
from openapi_spec_validator import validate

from app.composition.catalog import MODULES
from app.composition.openapi import SWAGGER_UI, document

Client = TestClient[Any]
PUBLIC = {
    ("post", "/api/v1/users"),
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document(MODULES)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_the_served_document_validates_as_openapi_3_1(client: Client) -> None:
    served = client.get("/schema/openapi.json")
    assert served.status_code == 200
    spec = served.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_public_routes_need_no_token_and_every_other_needs_one(spec: dict[str, Any]) -> None:
    assert spec["security"] == [{"BearerToken": []}]
    assert spec["components"]["securitySchemes"]["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A user's access token from POST /api/v1/auth/token.",
    }
    public = {(m, p) for m, p, op in _operations(spec) if op.get("security") == []}
    assert public == PUBLIC
    for method, path, operation in _operations(spec):
        if (method, path) not in PUBLIC:
            assert "401" in operation["responses"], (method, path)


def test_operation_ids_are_unique_and_say_what_they_do(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+_[a-z_]+", i) for i in ids), ids
    assert {"users_register", "auth_token", "tasks_update", "users_find_people"} <= set(ids)


def test_request_bodies_say_unknown_fields_are_refused(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for method, path, operation in _operations(spec):
        if "requestBody" not in operation:
            continue
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        name = ref.rsplit("/", 1)[1]
        assert schemas[name].get("additionalProperties") is False, (method, path, name)
        assert "413" in operation["responses"], (method, path)


def test_every_failure_the_api_can_answer_is_declared_with_its_headers(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        responses = operation["responses"]
        assert {"400", "405", "503"} <= set(responses), (method, path)
        assert "Retry-After" in responses["503"]["headers"], (method, path)
        if "429" in responses:
            assert "Retry-After" in responses["429"]["headers"], (method, path)
        if "401" in responses:
            assert "WWW-Authenticate" in responses["401"]["headers"], (method, path)
    paths = spec["paths"]
    created = paths["/api/v1/tasks"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(created)
    assert "ETag" in paths["/api/v1/tasks/{task_id}"]["get"]["responses"]["200"]["headers"]
    assert "ETag" in paths["/api/v1/tasks/{task_id}"]["patch"]["responses"]["200"]["headers"]
    assert "Location" in paths["/api/v1/users"]["post"]["responses"]["201"]["headers"]
    assert {"429", "503"} <= set(paths["/api/v1/auth/token"]["post"]["responses"])


def test_readiness_documents_what_it_answers(spec: dict[str, Any]) -> None:
    ready = spec["paths"]["/health/ready"]["get"]["responses"]
    assert ready["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HealthStatus"
    }
    assert ready["503"]["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")


def test_every_route_served_is_documented(client: Client, spec: dict[str, Any]) -> None:
    from litestar.routes import HTTPRoute

    served = {
        (method.lower(), route.path_format)
        for route in client.app.routes
        if isinstance(route, HTTPRoute) and route.path_format.startswith(("/api/", "/health/"))
        for method in route.methods - {"OPTIONS", "HEAD"}
    }
    assert served == {(m, p) for m, p, _ in _operations(spec)}


def test_a_path_under_the_docs_that_is_not_there_is_a_problem_document(client: Client) -> None:
    for path in (
        "/schema/nothing",
        "/schema/redoc",
        "/schema/openapi.yaml",
        "/schema/assets/nothing.js",
        f"/schema/assets/{SWAGGER_UI}/swagger-ui.css.map",  # the maps are not shipped
        f"/schema/assets/{SWAGGER_UI}/..",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "http.not_found"
    assert client.get("/schema").status_code == 200  # the docs page


class _References(HTMLParser):
    """Every URL a page makes the browser fetch or offers a link to, and its inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value is not None]
        if tag == "style" or "style" in named or any(name.startswith("on") for name in named):
            self.inline.append(tag)
        if tag == "script" and "src" not in named:
            self.inline.append(tag)


def _references(page: str) -> _References:
    found = _References()
    found.feed(page)
    return found


def test_the_docs_page_loads_only_what_tessera_serves(client: Client) -> None:
    page = client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<html lang="en">' in page.text
    assert re.search(r"<title>[^<]+</title>", page.text)
    found = _references(page.text)
    assert found.inline == []  # the policy would refuse them
    assert not re.search(r"https?:|//", " ".join(found.urls)), found.urls
    assert all(url.startswith("/schema/") for url in found.urls), found.urls
    expected = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".png": "image/png",
        ".json": "application/vnd.oai.openapi+json",
    }
    for url in found.urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == expected[url[url.rindex(".") :]], url
        assert b"sourceMappingURL" not in response.content, url  # no request for a missing map
    assert {
        f"/schema/assets/{SWAGGER_UI}/swagger-ui-bundle.js",
        f"/schema/assets/{SWAGGER_UI}/swagger-ui.css",
        f"/schema/assets/{SWAGGER_UI}/favicon-32x32.png",
        "/schema/assets/init.js",
    } <= set(found.urls)


def test_the_docs_page_starts_swagger_ui_on_the_served_document(client: Client) -> None:
    script = client.get("/schema/assets/init.js").text
    assert 'url: "/schema/openapi.json"' in script
    assert 'dom_id: "#swagger-ui"' in script
    assert 'id="swagger-ui"' in client.get("/schema").text


def test_swagger_ui_is_cached_for_good_under_its_versioned_path_and_ours_is_revalidated(
    client: Client,
) -> None:
    vendored = client.get(f"/schema/assets/{SWAGGER_UI}/swagger-ui-bundle.js")
    assert set(vendored.headers["cache-control"].split(", ")) == {"public", "max-age=31536000", "immutable"}
    assert client.get("/schema/assets/init.js").headers["cache-control"] == "no-cache"


def test_swagger_ui_licence_and_notice_are_served_with_it(client: Client) -> None:
    licence = client.get(f"/schema/assets/{SWAGGER_UI}/LICENSE")
    assert licence.status_code == 200
    assert licence.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Apache License" in licence.text
    assert "SmartBear" in client.get(f"/schema/assets/{SWAGGER_UI}/NOTICE").text
    bundled = client.get(f"/schema/assets/{SWAGGER_UI}/swagger-ui-bundle.js.LICENSE.txt")
    assert bundled.status_code == 200
    assert "MIT" in bundled.text
