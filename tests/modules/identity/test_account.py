"""What a signed-in user and an administrator can do with accounts, beyond signing in."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import Settings
from tests.conftest import bearer, log_in, register, run_async
from tests.e2e.flow import eventually
from tests.modules.identity.test_deactivation import identity_events, make_admin, signed_in

Client = TestClient[Any]


def _refused_within_a_second(client: Client, auth: dict[str, str]) -> None:
    eventually(
        lambda: client.get("/api/v1/users/me", headers=auth).status_code == 401 or None,
        within=1.0,
        what="the voided access token is refused",
    )


class TestFindingPeople:
    def test_active_people_are_found_by_part_of_their_name_in_any_case(self, client: Client) -> None:
        _, auth, _ = signed_in(client, "Searcher")
        grace = register(client, display_name="Grace Hopper")
        register(client, display_name="Ada Lovelace")
        gone, gone_auth, _ = signed_in(client, "Grace Gone")
        client.post(f"/api/v1/users/{gone['id']}/deactivate", headers=gone_auth)
        found = client.get("/api/v1/users", params={"q": "gRAce"}, headers=auth)
        assert found.status_code == 200, found.text
        assert found.json() == {
            "items": [{"id": grace["id"], "display_name": "Grace Hopper"}],
            "next_cursor": None,
        }

    def test_pages_follow_the_cursor(self, client: Client) -> None:
        _, auth, _ = signed_in(client, "Searcher")
        names = [f"Pager {n}" for n in "ABCDE"]
        for name in names:
            register(client, display_name=name)
        seen, cursor = [], None
        while True:
            params = {"q": "pager", "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/users", params=params, headers=auth).json()
            seen += [p["display_name"] for p in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert seen == names

    @pytest.mark.parametrize(
        ("params", "field"),
        [({"q": "a"}, "q"), ({}, "q"), ({"q": "ab", "cursor": "forged"}, "cursor"), ({"q": "a\x00b"}, "q")],
    )
    def test_bad_searches_are_refused_naming_the_parameter(
        self, client: Client, params: Any, field: str
    ) -> None:
        _, auth, _ = signed_in(client, "Searcher")
        response = client.get("/api/v1/users", params=params, headers=auth)
        assert response.status_code == 422, response.text
        assert field in response.text

    def test_wildcards_are_matched_as_themselves(self, client: Client) -> None:
        _, auth, _ = signed_in(client, "Searcher")
        register(client, display_name="Plain Name")
        percent = register(client, display_name="100% Sure")
        found = client.get("/api/v1/users", params={"q": "0%"}, headers=auth).json()["items"]
        assert [p["id"] for p in found] == [percent["id"]]
        assert client.get("/api/v1/users", params={"q": "__"}, headers=auth).json()["items"] == []

    def test_searching_needs_a_token(self, client: Client) -> None:
        assert client.get("/api/v1/users", params={"q": "any"}).status_code == 401


def test_searching_is_throttled_per_user(migrated: Settings) -> None:
    throttle = msgspec.structs.replace(migrated.throttle, user_searches_per_user_per_minute=2)
    with TestClient(app=create_app(compose(msgspec.structs.replace(migrated, throttle=throttle)))) as client:
        _, ada, _ = signed_in(client, "Ada")
        _, bob, _ = signed_in(client, "Bob")
        for _ in range(2):
            assert client.get("/api/v1/users", params={"q": "xy"}, headers=ada).status_code == 200
        refused = client.get("/api/v1/users", params={"q": "xy"}, headers=ada)
        assert refused.status_code == 429
        assert refused.json()["code"] == "request.throttled"
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/api/v1/users", params={"q": "xy"}, headers=bob).status_code == 200  # per user


class TestMyAccount:
    def test_a_new_display_name_is_what_everyone_sees_and_is_announced(self, client: Client) -> None:
        user, auth, _ = signed_in(client, "Old Name")
        changed = client.patch("/api/v1/users/me", json={"display_name": "  New Name "}, headers=auth)
        assert changed.status_code == 200, changed.text
        assert changed.json()["display_name"] == "New Name"
        _, other, _ = signed_in(client, "Other")
        assert client.get(f"/api/v1/users/{user['id']}", headers=other).json()["display_name"] == "New Name"
        task = client.post(
            "/api/v1/tasks", json={"title": "t", "assignee_id": user["id"]}, headers=other
        ).json()
        assert task["assignee"]["display_name"] == "New Name"
        assert identity_events(client).count("identity.UserProfileChanged.v1") == 1
        client.patch("/api/v1/users/me", json={"display_name": "New Name"}, headers=auth)  # no change
        assert identity_events(client).count("identity.UserProfileChanged.v1") == 1

    @pytest.mark.parametrize(
        "body",
        [{"display_name": " "}, {"display_name": "A\x07"}, {"display_name": "x", "email": "e@x.io"}, {}],
    )
    def test_a_bad_profile_change_is_refused_and_changes_nothing(self, client: Client, body: Any) -> None:
        _, auth, _ = signed_in(client, "Kept")
        assert client.patch("/api/v1/users/me", json=body, headers=auth).status_code == 422
        assert client.get("/api/v1/users/me", headers=auth).json()["display_name"] == "Kept"

    def test_a_new_password_ends_every_other_session(self, client: Client) -> None:
        user, auth, tokens = signed_in(client, "Ada")
        wrong = client.post(
            "/api/v1/users/me/password",
            json={"current_password": "not it at all", "new_password": "a brand new secret"},
            headers=auth,
        )
        assert wrong.status_code == 422
        assert wrong.json()["errors"] == [{"field": "current_password", "message": "is not your password"}]
        changed = client.post(
            "/api/v1/users/me/password",
            json={"current_password": user["password"], "new_password": "a brand new secret"},
            headers=auth,
        )
        assert changed.status_code == 200, changed.text
        fresh = changed.json()
        assert changed.headers["cache-control"] == "no-store"
        login = client.post("/api/v1/auth/token", json={"email": user["email"], "password": user["password"]})
        assert login.status_code == 401
        assert log_in(client, user["email"], "a brand new secret")["access_token"]
        refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401
        _refused_within_a_second(client, auth)
        assert client.get("/api/v1/users/me", headers=bearer(fresh["access_token"])).status_code == 200

    def test_signing_out_everywhere_ends_every_session(self, client: Client) -> None:
        user, auth, tokens = signed_in(client, "Ada")
        other_device = log_in(client, user["email"])
        assert client.post("/api/v1/auth/logout-all", headers=auth).status_code == 204
        for refresh_token in (tokens["refresh_token"], other_device["refresh_token"]):
            assert (
                client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token}).status_code == 401
            )
        _refused_within_a_second(client, bearer(other_device["access_token"]))
        _refused_within_a_second(client, auth)
        again = log_in(client, user["email"])  # signing in afresh works at once
        assert client.get("/api/v1/users/me", headers=bearer(again["access_token"])).status_code == 200


class TestAdministration:
    def test_only_an_administrator_lists_accounts_with_every_field(self, client: Client) -> None:
        root, root_auth, _ = signed_in(client, "Root")
        _, someone, _ = signed_in(client, "Someone")
        make_admin(client, root["email"])
        assert client.get("/api/v1/admin/users", headers=someone).json()["code"] == "identity.not_permitted"
        listed = client.get("/api/v1/admin/users", headers=root_auth)
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert [a["display_name"] for a in items] == ["Root", "Someone"]
        assert set(items[0]) == {"id", "email", "display_name", "active", "is_admin", "created_at"}

    def test_accounts_filter_by_state_and_page_by_cursor(self, client: Client) -> None:
        root, root_auth, _ = signed_in(client, "Root")
        make_admin(client, root["email"])
        users = [signed_in(client, f"User {n}") for n in range(3)]
        gone, gone_auth, _ = users[1]
        client.post(f"/api/v1/users/{gone['id']}/deactivate", headers=gone_auth)
        inactive = client.get("/api/v1/admin/users", params={"active": "false"}, headers=root_auth).json()
        assert [a["id"] for a in inactive["items"]] == [gone["id"]]
        first = client.get("/api/v1/admin/users", params={"limit": 2}, headers=root_auth).json()
        rest = client.get(
            "/api/v1/admin/users", params={"limit": 2, "cursor": first["next_cursor"]}, headers=root_auth
        ).json()
        assert [a["display_name"] for a in first["items"] + rest["items"]] == [
            "Root",
            "User 0",
            "User 1",
            "User 2",
        ]
        assert rest["next_cursor"] is None

    def test_an_administrator_reactivates_an_account_and_old_tokens_stay_void(self, client: Client) -> None:
        root, root_auth, _ = signed_in(client, "Root")
        make_admin(client, root["email"])
        bob, bob_auth, _ = signed_in(client, "Bob")
        client.post(f"/api/v1/users/{bob['id']}/deactivate", headers=bob_auth)
        _refused_within_a_second(client, bob_auth)
        assert client.post(f"/api/v1/users/{bob['id']}/reactivate", headers=bob_auth).status_code == 401
        _, someone, _ = signed_in(client, "Someone")
        assert client.post(f"/api/v1/users/{bob['id']}/reactivate", headers=someone).status_code == 403
        back = client.post(f"/api/v1/users/{bob['id']}/reactivate", headers=root_auth)
        assert back.status_code == 200
        assert back.json()["active"] is True
        assert identity_events(client).count("identity.UserReactivated.v1") == 1
        fresh = log_in(client, bob["email"])
        assert client.get("/api/v1/users/me", headers=bearer(fresh["access_token"])).status_code == 200
        assert client.get("/api/v1/users/me", headers=bob_auth).status_code == 401
        again = client.post(f"/api/v1/users/{bob['id']}/reactivate", headers=root_auth)
        assert again.status_code == 200  # already active: no second event
        assert identity_events(client).count("identity.UserReactivated.v1") == 1
        missing = client.post(
            "/api/v1/users/00000000-0000-4000-8000-000000000000/reactivate", headers=root_auth
        )
        assert missing.json()["code"] == "identity.user_not_found"


@pytest.mark.postgres
def test_searching_and_listing_page_alike_on_postgres(postgres_settings: Settings) -> None:
    async def upgrade() -> None:
        composition = compose(postgres_settings)
        await composition.upgrade()
        await composition.aclose()

    run_async(upgrade())
    with TestClient(app=create_app(compose(postgres_settings))) as client:
        root, root_auth, _ = signed_in(client, "Root")
        make_admin(client, root["email"])
        for name in ("Pager B", "pager a", "Pager C", "100% Pager"):
            register(client, display_name=name)
        first = client.get("/api/v1/users", params={"q": "PAGER", "limit": 2}, headers=root_auth).json()
        rest = client.get(
            "/api/v1/users",
            params={"q": "PAGER", "limit": 2, "cursor": first["next_cursor"]},
            headers=root_auth,
        ).json()
        names = [p["display_name"] for p in first["items"] + rest["items"]]
        assert names == ["100% Pager", "pager a", "Pager B", "Pager C"]
        assert [
            p["display_name"]
            for p in client.get("/api/v1/users", params={"q": "0%"}, headers=root_auth).json()["items"]
        ] == ["100% Pager"]
        listed = client.get("/api/v1/admin/users", params={"limit": 3}, headers=root_auth).json()
        more = client.get(
            "/api/v1/admin/users", params={"limit": 3, "cursor": listed["next_cursor"]}, headers=root_auth
        ).json()
        assert len(listed["items"] + more["items"]) == 5
