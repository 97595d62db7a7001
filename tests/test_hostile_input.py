"""Input that used to crash into a 500 gets a 4xx problem document with a stable code, and changes nothing.

Each case is a finding of the hardening issue (12), written as the specification of the
fixed behaviour, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import Settings
from tests.conftest import bearer, log_in, register, run_async

NAIVE = "2030-01-01T00:00:00"
BEYOND_UTC = "0001-01-01T00:00:00+05:00"  # aware, but UTC cannot hold it


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest) -> Iterator[TestClient[Any]]:
    settings: Settings = (
        request.getfixturevalue("settings")
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_settings")
    )

    async def upgrade() -> None:
        composition = compose(settings)
        await composition.upgrade()
        await composition.aclose()

    run_async(upgrade())
    with TestClient(app=create_app(compose(settings))) as client:
        yield client


@pytest.fixture
def auth(api: TestClient[Any]) -> dict[str, str]:
    user = register(api)
    return bearer(log_in(api, user["email"])["access_token"])


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/auth/token", "/api/v1/tasks"])
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"email": "\xff\xfe"}', "The body is not valid UTF-8."),
        (b"[" * 1000 + b"]" * 1000, "The body is nested too deeply."),
    ],
)
def test_a_body_no_json_decoder_can_read_is_a_bad_request(
    api: TestClient[Any], auth: dict[str, str], path: str, body: bytes, detail: str
) -> None:
    response = api.post(path, content=body, headers={**auth, "content-type": "application/json"})
    assert _problem(response, 400, "http.bad_request")["detail"] == detail


@pytest.mark.parametrize("due_at", [NAIVE, BEYOND_UTC])
def test_a_due_date_without_an_offset_or_beyond_utc_is_refused_naming_the_field(
    api: TestClient[Any], auth: dict[str, str], due_at: str
) -> None:
    created = api.post("/api/v1/tasks", json={"title": "Dated", "due_at": due_at}, headers=auth)
    assert "due_at" in _problem(created, 422, "request.validation_failed")["detail"]
    task = api.post("/api/v1/tasks", json={"title": "Dated"}, headers=auth).json()
    patched = api.patch(f"/api/v1/tasks/{task['id']}", json={"due_at": due_at}, headers=auth)
    assert "due_at" in _problem(patched, 422, "request.validation_failed")["detail"]
    assert [t["title"] for t in api.get("/api/v1/tasks", headers=auth).json()["items"]] == ["Dated"]
    assert api.get(f"/api/v1/tasks/{task['id']}", headers=auth).json()["due_at"] is None  # unchanged


def test_a_due_before_filter_without_an_offset_is_refused_naming_the_parameter(
    api: TestClient[Any], auth: dict[str, str]
) -> None:
    naive = api.get("/api/v1/tasks", params={"due_before": NAIVE}, headers=auth)
    assert "due_before" in _problem(naive, 422, "request.validation_failed")["detail"]
    beyond = api.get("/api/v1/tasks", params={"due_before": BEYOND_UTC}, headers=auth)
    assert _problem(beyond, 422, "request.validation_failed")["errors"] == [
        {"field": "due_before", "message": "not a moment UTC can represent"}
    ]
    number = api.get("/api/v1/tasks", params={"due_before": "0.5"}, headers=auth)  # not RFC 3339
    assert [e["field"] for e in _problem(number, 422, "request.validation_failed")["errors"]] == [
        "due_before"
    ]
    aware = api.get("/api/v1/tasks", params={"due_before": "2030-01-01T00:00:00+01:00"}, headers=auth)
    assert aware.status_code == 200


@pytest.mark.parametrize("cursor", ["abc", "eyJ4IjoxfQ", "%%%", "e30"])
def test_a_forged_cursor_is_refused(api: TestClient[Any], auth: dict[str, str], cursor: str) -> None:
    response = api.get("/api/v1/tasks", params={"cursor": cursor}, headers=auth)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("q", ["ab\x00", "ab\n"])  # a final newline too (schemathesis found it)
def test_a_control_character_in_the_search_text_is_refused_not_matched(
    api: TestClient[Any], auth: dict[str, str], q: str
) -> None:
    api.post("/api/v1/tasks", json={"title": "Mine"}, headers=auth)
    for path in ("/api/v1/tasks", "/api/v1/users"):
        response = api.get(path, params={"q": q}, headers=auth)
        errors = _problem(response, 422, "request.validation_failed")["errors"]
        assert [e["field"] for e in errors] == ["q"], errors
        assert "without control characters" in errors[0]["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "a\x00b@example.com"), ("display_name", "Ada\x07"), ("display_name", "A\nB")],
)
def test_control_characters_are_refused_in_an_account(api: TestClient[Any], field: str, value: str) -> None:
    account = {"email": "clean@example.com", "password": "correct horse battery", "display_name": "Ada"}
    response = api.post("/api/v1/users", json={**account, field: value})
    assert field in _problem(response, 422, "request.validation_failed")["detail"]
    assert (
        api.post("/api/v1/auth/token", json={"email": account["email"], "password": "x" * 8}).status_code
        == 401
    )


def test_a_value_of_the_wrong_form_is_said_in_words_not_as_a_regular_expression(api: TestClient[Any]) -> None:
    response = api.post(
        "/api/v1/users",
        json={"email": "not-an-address", "password": "correct horse battery", "display_name": " "},
    )
    errors = _problem(response, 422, "request.validation_failed")["errors"]
    assert errors == [
        {"field": "email", "message": "Expected an e-mail address"},
        {"field": "display_name", "message": "Expected a name that is not blank, without control characters"},
    ]
    assert "regex" not in response.text
