"""Credentials are throttled: per account, per client address, in one process or shared by many."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import Secret, Settings
from app.kernel.security import Passwords
from contracts import DependencyUnavailable
from tests.conftest import make_settings, register, run_async, service_unavailable
from tests.servers import free_port

Client = TestClient[Any]
WRONG = {"password": "not the password"}


def _throttled(settings: Settings, **limits: Any) -> Settings:
    return msgspec.structs.replace(settings, throttle=msgspec.structs.replace(settings.throttle, **limits))


@pytest.fixture
def app_with(migrated: Settings) -> Iterator[Any]:
    """A client of an app whose throttles are configured by the test."""
    with_limits: list[Client] = []

    def make(**limits: Any) -> Client:
        client = TestClient(app=create_app(compose(_throttled(migrated, **limits))))
        with_limits.append(client.__enter__())
        return client

    yield make
    for client in with_limits:
        client.__exit__(None, None, None)


def _log_in(client: Client, email: str, password: str = "correct horse battery") -> Any:
    return client.post("/api/v1/auth/token", json={"email": email, "password": password})


def _assert_throttled(response: Any, *, longest: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "request.throttled"
    assert 1 <= int(response.headers["retry-after"]) <= longest


class TestFailedLoginsPerAccount:
    def test_after_five_failures_even_the_right_password_waits(self, client: Client) -> None:
        user = register(client)
        for _ in range(5):
            assert _log_in(client, user["email"], **WRONG).status_code == 401
        _assert_throttled(_log_in(client, user["email"]), longest=300)
        other = register(client)  # another account is not held back
        assert _log_in(client, other["email"]).status_code == 200

    def test_the_account_is_counted_whatever_the_case_of_the_address(self, client: Client) -> None:
        user = register(client, email=f"Mixed-{uuid.uuid4().hex[:6]}@Example.com")
        for variant in (str.lower, str.upper, str.title, str.swapcase, str.lower):
            assert _log_in(client, variant(user["email"]), **WRONG).status_code == 401
        _assert_throttled(_log_in(client, user["email"]), longest=300)

    def test_signing_in_gives_the_attempts_back(self, client: Client) -> None:
        user = register(client)
        for _ in range(4):
            assert _log_in(client, user["email"], **WRONG).status_code == 401
        assert _log_in(client, user["email"]).status_code == 200
        for _ in range(4):
            assert _log_in(client, user["email"], **WRONG).status_code == 401
        assert _log_in(client, user["email"]).status_code == 200

    def test_an_unknown_address_is_throttled_like_a_known_one(self, client: Client) -> None:
        email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
        for _ in range(5):
            assert _log_in(client, email, **WRONG).status_code == 401
        _assert_throttled(_log_in(client, email, **WRONG), longest=300)

    def test_the_window_is_configurable(self, app_with: Any) -> None:
        client = app_with(failed_logins_per_account=2, failed_login_window_seconds=60)
        user = register(client)
        for _ in range(2):
            assert _log_in(client, user["email"], **WRONG).status_code == 401
        _assert_throttled(_log_in(client, user["email"]), longest=60)


class TestPerAddress:
    def test_logins_from_one_address_are_limited_per_minute(self, app_with: Any) -> None:
        client = app_with(logins_per_address_per_minute=3)
        users = [register(client) for _ in range(4)]  # different accounts: only the address is shared
        for user in users[:3]:
            response = _log_in(client, user["email"])
            assert response.status_code == 200
            assert response.headers["ratelimit-limit"] == "3"
        _assert_throttled(_log_in(client, users[3]["email"]), longest=60)

    def test_registrations_from_one_address_are_limited_per_minute(self, app_with: Any) -> None:
        client = app_with(registrations_per_address_per_minute=2)
        register(client)
        register(client)
        refused = client.post(
            "/api/v1/users",
            json={"email": "late@example.com", "password": "correct horse battery", "display_name": "L"},
        )
        _assert_throttled(refused, longest=60)
        assert _log_in(client, "late@example.com").status_code == 401  # no account was made

    def test_other_routes_are_not_throttled(self, app_with: Any) -> None:
        client = app_with(logins_per_address_per_minute=1, registrations_per_address_per_minute=1)
        user = register(client)
        token = _log_in(client, user["email"]).json()["access_token"]
        for _ in range(5):
            answer = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200
            assert "ratelimit-limit" not in answer.headers

    def test_throttles_can_be_turned_off(self, app_with: Any) -> None:
        client = app_with(enabled=False)
        user = register(client)
        for _ in range(7):
            assert _log_in(client, user["email"], **WRONG).status_code == 401
        assert _log_in(client, user["email"]).status_code == 200


# -- a store shared by processes ---------------------------------------------------------------


def _redis_reachable() -> None:
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_unavailable(f"Redis at 127.0.0.1:6379 is not reachable: {exc!r}")


def test_with_redis_two_processes_share_the_count_of_an_account(migrated: Settings) -> None:
    """Two apps (as two workers or groups would be) with one Redis: failures add up across them."""
    _redis_reachable()
    namespace = f"t{uuid.uuid4().hex[:12]}"  # this run's own keys on a shared server
    shared = msgspec.structs.replace(
        _throttled(migrated, store="redis"),
        events=msgspec.structs.replace(migrated.events, namespace=namespace),
    )
    with (
        TestClient(app=create_app(compose(shared))) as first,
        TestClient(app=create_app(compose(shared))) as second,
    ):
        user = register(first)
        for client in (first, second, first, second, first):
            assert _log_in(client, user["email"], **WRONG).status_code == 401
        _assert_throttled(_log_in(second, user["email"]), longest=300)
        run_async(_forget(namespace))


async def _forget(namespace: str) -> None:
    import redis.asyncio

    connection = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        async for key in connection.scan_iter(match=f"{namespace}_throttle:*"):
            await connection.delete(key)
    finally:
        await connection.aclose()


def test_an_unreachable_store_is_a_503_not_a_500(tmp_path: Path, migrated: Settings) -> None:
    gone = _throttled(migrated, store="redis", redis_url=Secret(f"redis://127.0.0.1:{free_port()}/0"))
    with TestClient(app=create_app(compose(gone))) as client:
        response = _log_in(client, "anyone@example.com")
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "dependency.unavailable"
        assert "retry-after" in response.headers
        assert "127.0.0.1" not in response.text  # where the store lives is for the log


# -- the hashing queue ------------------------------------------------------------------------


def test_hashes_beyond_the_queue_are_refused_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    cheap = msgspec.structs.replace(settings.security.password_hash, concurrency=1, queue=1)
    passwords = Passwords(cheap)

    async def four_at_once() -> list[Any]:
        return await asyncio.gather(
            *(passwords.verify(None, "guess") for _ in range(4)), return_exceptions=True
        )

    outcomes = run_async(four_at_once())
    # One hashing, one waiting; the other two are told to come back, without a hash spent.
    assert outcomes[:2] == [False, False]
    assert all(isinstance(o, DependencyUnavailable) for o in outcomes[2:]), outcomes
