"""The edge: every error is problem details with a stable code; every response a request id."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import msgspec
import pytest
from litestar.testing import TestClient

from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import Settings
from modules.identity.service import IdentityService
from tests.conftest import bearer, log_in, register

Client = TestClient[Any]


def _is_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == f"urn:tessera:problem:{code}"
    assert problem["title"]
    return problem


def test_an_unknown_route_is_a_404_problem(client: Client) -> None:
    _is_problem(client.get("/api/v1/nothing-here"), 404, "http.not_found")


def test_a_wrong_method_is_a_405_problem(client: Client) -> None:
    _is_problem(client.delete("/api/v1/auth/token"), 405, "http.method_not_allowed")


def test_a_body_over_the_limit_is_a_413_problem(client: Client) -> None:
    huge = {"email": "a@example.com", "password": "x" * (1024 * 1024 + 1), "display_name": "A"}
    _is_problem(client.post("/api/v1/users", json=huge), 413, "http.payload_too_large")


def test_malformed_json_is_a_problem(client: Client) -> None:
    response = client.post(
        "/api/v1/users", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code in {400, 422}
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_missing_token_is_a_401_problem(client: Client) -> None:
    _is_problem(client.get("/api/v1/users/me"), 401, "auth.unauthorized")


def test_an_unexpected_error_is_a_500_problem_without_a_trace(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = register(client)
    token = log_in(client, user["email"])["access_token"]

    async def explode(self: IdentityService, user_id: Any) -> Any:
        raise RuntimeError("secret internals: db password is hunter2")

    monkeypatch.setattr(IdentityService, "account", explode)
    problem = _is_problem(client.get("/api/v1/users/me", headers=bearer(token)), 500, "server.internal_error")
    assert "hunter2" not in str(problem)
    assert "Traceback" not in str(problem)
    assert problem["correlation_id"]


def test_a_request_id_is_generated_and_returned(client: Client) -> None:
    response = client.get("/health/live")
    assert len(response.headers["x-request-id"]) == 32


def test_a_given_request_id_is_returned_and_quoted_in_problems(client: Client) -> None:
    response = client.get("/api/v1/users/me", headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    assert response.json()["correlation_id"] == "trace-42"


def test_an_unsafe_request_id_is_replaced(client: Client) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": "evil\tvalue<script>"})
    assert response.headers["x-request-id"] != "evil\tvalue<script>"
    assert len(response.headers["x-request-id"]) == 32


def test_liveness_needs_nothing(client: Client) -> None:
    assert client.get("/health/live").json() == {"status": "ok", "modules": {}}


def test_readiness_reports_each_module_database(client: Client) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "modules": {
            "identity": "ok",
            "tasks": "ok",
            "notifications": "ok",
            "activity": "ok",
            "accounts": "ok",
        },
    }


def test_readiness_fails_with_503_when_a_database_cannot_be_reached(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.kernel.db import Database

    async def unreachable(self: Database) -> None:
        raise ConnectionRefusedError("no database")

    monkeypatch.setattr(Database, "ping", unreachable)
    problem = _is_problem(client.get("/health/ready"), 503, "health.not_ready")
    assert [e["field"] for e in problem["errors"]] == [
        "identity",
        "tasks",
        "notifications",
        "activity",
        "accounts",
    ]


def test_openapi_is_served(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()
    assert "/api/v1/users" in spec["paths"]
    assert "/api/v1/auth/token" in spec["paths"]


def test_every_operation_documents_its_error_responses(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            errors = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
            assert errors, f"{method.upper()} {path} documents no error response"
            for response in errors.values():
                assert "application/problem+json" in response.get("content", {}), (method, path)


def test_options_names_every_method_the_path_serves(client: Client) -> None:
    for path, methods in (
        ("/api/v1/tasks", "GET, OPTIONS, POST"),
        ("/api/v1/users/me", "GET, OPTIONS, PATCH"),
    ):
        response = client.options(path)
        assert (response.status_code, response.headers["allow"]) == (204, methods)


def test_a_request_that_gets_no_database_connection_in_time_is_a_503_with_retry_after(
    migrated: Settings,
) -> None:
    database = msgspec.structs.replace(migrated.database, pool_size=1, pool_timeout_seconds=0.1)
    composition = compose(msgspec.structs.replace(migrated, database=database))
    with TestClient(app=create_app(composition)) as client:
        user = register(client)
        auth = bearer(log_in(client, user["email"])["access_token"])
        tasks = composition.module("tasks").database
        held, release = threading.Event(), threading.Event()

        async def hold_the_only_connection() -> None:
            async with tasks.read():
                held.set()
                await anyio.to_thread.run_sync(release.wait)

        holder = client.blocking_portal.start_task_soon(hold_the_only_connection)
        assert held.wait(5)
        try:
            response = client.get("/api/v1/tasks", headers=auth)
            problem = _is_problem(response, 503, "dependency.unavailable")
            assert "tasks database" in problem["detail"]
            assert int(response.headers["retry-after"]) >= 1
        finally:
            release.set()
            holder.result(timeout=5)
        assert client.get("/api/v1/tasks", headers=auth).status_code == 200
