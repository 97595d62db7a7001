"""What every response carries and whom the server answers: security headers, hosts, CORS, docs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import Settings

Client = TestClient[Any]


@pytest.fixture
def app_with(migrated: Settings) -> Iterator[Any]:
    opened: list[Client] = []

    def make(**server: Any) -> Client:
        settings = msgspec.structs.replace(
            migrated, server=msgspec.structs.replace(migrated.server, **server)
        )
        client = TestClient(app=create_app(compose(settings))).__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_every_response_carries_the_security_headers(client: Client) -> None:
    for response in (
        client.get("/health/live"),
        client.get("/api/v1/tasks"),  # 401
        client.get("/api/v1/nothing-here"),  # 404
        client.post("/api/v1/users", content=b"{"),  # 400
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert "strict-transport-security" not in response.headers  # not without TLS in front


def test_the_docs_page_may_load_only_from_tessera_and_run_no_inline_script(client: Client) -> None:
    for path in ("/schema", "/schema/swagger"):
        page = client.get(path)
        assert page.status_code == 200
        policy = {
            name: sources
            for name, *sources in (d.split() for d in page.headers["content-security-policy"].split(";"))
        }
        assert policy["default-src"] == ["'none'"]
        assert policy["script-src"] == ["'self'"]  # neither inline nor eval
        assert policy["connect-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        everything = [source for sources in policy.values() for source in sources]
        assert set(everything) <= {"'self'", "'none'", "data:"}, everything  # no other origin, nothing inline


def test_hsts_when_configured(app_with: Any) -> None:
    client = app_with(hsts_seconds=31536000)
    assert client.get("/health/live").headers["strict-transport-security"] == (
        "max-age=31536000; includeSubDomains"
    )


def test_a_host_not_configured_is_refused_with_a_problem(app_with: Any) -> None:
    client = app_with(allowed_hosts=["tessera.example.com", "*.tessera.test"])
    for host in ("tessera.example.com", "tessera.example.com:8443", "api.tessera.test"):
        assert client.get("/health/live", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example.com", "tessera.example.com.evil.net", "tessera.test", ""):
        refused = client.get("/health/live", headers={"Host": host})
        assert refused.status_code == 400, host
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "http.host_not_allowed"


def test_cors_is_off_unless_origins_are_configured(client: Client) -> None:
    preflight = client.options(
        "/api/v1/tasks",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_answers_the_configured_origins_only(app_with: Any) -> None:
    client = app_with(cors_origins=["https://app.example.com"])
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = client.options("/api/v1/tasks", headers={"Origin": "https://app.example.com", **asked})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    read = client.get("/health/live", headers={"Origin": "https://app.example.com"})
    assert "etag" in read.headers["access-control-expose-headers"].lower()
    other = client.options("/api/v1/tasks", headers={"Origin": "https://evil.example.com", **asked})
    assert other.headers.get("access-control-allow-origin") != "https://evil.example.com"


def test_the_docs_can_be_turned_off(app_with: Any) -> None:
    client = app_with(api_docs=False)
    for path in ("/schema", "/schema/openapi.json", "/schema/swagger"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "http.not_found"
