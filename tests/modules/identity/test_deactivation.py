"""Deactivating a user: who may, what it does to their credentials, and what other modules hear.

These run the whole monolith (in-process bus), so the last tests see the tasks module react.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import select

from app.composition.container import Composition
from app.kernel.events.tables import outbox
from tests.conftest import bearer, log_in, register
from tests.e2e.flow import eventually

Client = TestClient[Any]


def signed_in(client: Client, name: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    user = register(client, display_name=name)
    tokens = log_in(client, user["email"])
    return user, bearer(tokens["access_token"]), tokens


def composition_of(client: Client) -> Composition:
    composition: Composition = client.app.state["composition"]
    return composition


def make_admin(client: Client, email: str) -> None:
    service = composition_of(client).module("identity").container.service()
    client.blocking_portal.call(service.make_admin, email)


def identity_events(client: Client) -> list[str]:
    async def read() -> list[str]:
        async with composition_of(client).module("identity").database.read() as connection:
            rows = await connection.execute(select(outbox.c.event_type).order_by(outbox.c.id))
            return [event_type for (event_type,) in rows]

    return client.blocking_portal.call(read)


def test_registration_announces_the_new_user(client: Client) -> None:
    register(client)
    assert identity_events(client) == ["identity.UserRegistered.v1"]


def test_a_user_may_deactivate_themself_and_then_cannot_sign_in(client: Client) -> None:
    user, auth, tokens = signed_in(client, "Ada")
    response = client.post(f"/api/v1/users/{user['id']}/deactivate", headers=auth)
    assert response.status_code == 200
    assert response.json()["active"] is False
    login = client.post("/api/v1/auth/token", json={"email": user["email"], "password": user["password"]})
    assert login.status_code == 401
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    assert identity_events(client).count("identity.UserDeactivated.v1") == 1


def test_a_deactivated_users_access_token_is_refused_everywhere_within_a_second(client: Client) -> None:
    root, root_auth, _ = signed_in(client, "Root")
    bob, bob_auth, _ = signed_in(client, "Bob")
    make_admin(client, root["email"])
    assert client.post("/api/v1/tasks", json={"title": "before"}, headers=bob_auth).status_code == 201
    assert client.post(f"/api/v1/users/{bob['id']}/deactivate", headers=root_auth).status_code == 200
    deactivated = time.monotonic()

    def refused() -> bool | None:
        answers = [
            client.post("/api/v1/tasks", json={"title": "after"}, headers=bob_auth),
            client.get("/api/v1/users/me", headers=bob_auth),
            client.get("/api/v1/notifications", headers=bob_auth),
        ]
        return all(a.status_code == 401 and a.json()["code"] == "auth.unauthorized" for a in answers) or None

    eventually(refused, within=1.0, what="Bob's token refused by every module")
    print(f"refused {time.monotonic() - deactivated:.2f} s after the deactivation")
    assert client.get("/api/v1/users/me", headers=root_auth).status_code == 200  # others keep theirs


def test_another_user_may_not_deactivate_someone(client: Client) -> None:
    ada, _, _ = signed_in(client, "Ada")
    _, mallory, _ = signed_in(client, "Mallory")
    response = client.post(f"/api/v1/users/{ada['id']}/deactivate", headers=mallory)
    assert response.status_code == 403
    assert response.json()["code"] == "identity.not_permitted"
    assert client.post(
        "/api/v1/auth/token", json={"email": ada["email"], "password": ada["password"]}
    ).is_success
    assert "identity.UserDeactivated.v1" not in identity_events(client)


def test_an_administrator_may_deactivate_anyone(client: Client) -> None:
    admin, admin_auth, _ = signed_in(client, "Root")
    bob, _, _ = signed_in(client, "Bob")
    make_admin(client, admin["email"])
    assert client.get("/api/v1/users/me", headers=admin_auth).json()["is_admin"] is True
    response = client.post(f"/api/v1/users/{bob['id']}/deactivate", headers=admin_auth)
    assert response.status_code == 200
    assert response.json()["id"] == bob["id"]
    unknown = client.post(f"/api/v1/users/{uuid.uuid4()}/deactivate", headers=admin_auth)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "identity.user_not_found"


def test_deactivating_twice_announces_it_once(client: Client) -> None:
    user, auth, _ = signed_in(client, "Ada")
    root, root_auth, _ = signed_in(client, "Root")
    make_admin(client, root["email"])
    assert client.post(f"/api/v1/users/{user['id']}/deactivate", headers=auth).status_code == 200
    again = client.post(f"/api/v1/users/{user['id']}/deactivate", headers=root_auth)
    assert again.status_code == 200
    assert again.json()["active"] is False
    assert identity_events(client).count("identity.UserDeactivated.v1") == 1


def test_a_deactivated_users_open_tasks_return_to_their_owners(client: Client) -> None:
    _, ada, _ = signed_in(client, "Ada")
    bob, bob_auth, _ = signed_in(client, "Bob")
    task = client.post("/api/v1/tasks", json={"title": "t", "assignee_id": bob["id"]}, headers=ada).json()
    assert client.post(f"/api/v1/users/{bob['id']}/deactivate", headers=bob_auth).status_code == 200
    deadline = time.monotonic() + 5
    while client.get(f"/api/v1/tasks/{task['id']}", headers=ada).json()["assignee"] is not None:
        assert time.monotonic() < deadline, "the task was not unassigned within 5 s"
        time.sleep(0.02)
    refused = client.post("/api/v1/tasks", json={"title": "t", "assignee_id": bob["id"]}, headers=ada)
    assert refused.status_code == 422
