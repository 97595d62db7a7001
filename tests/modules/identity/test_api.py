"""Identity's public API, as a client sees it."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import jwt
import pytest
from litestar.testing import TestClient

from app.kernel.signing_keys import SigningKeys
from tests.conftest import SIGNING_KEY, bearer, log_in, register

Client = TestClient[Any]


class TestRegistration:
    def test_registering_returns_the_user_without_the_password(self, client: Client) -> None:
        response = client.post(
            "/api/v1/users",
            json={"email": "ada@example.com", "password": "correct horse battery", "display_name": "Ada"},
        )
        assert response.status_code == 201
        body = response.json()
        assert body["email"] == "ada@example.com"
        assert body["display_name"] == "Ada"
        assert "password" not in body
        assert "password_hash" not in body
        assert response.headers["location"] == f"/api/v1/users/{body['id']}"

    def test_email_is_unique_whatever_its_case(self, client: Client) -> None:
        register(client, email="Grace@Example.com")
        response = client.post(
            "/api/v1/users",
            json={"email": "grace@EXAMPLE.com", "password": "another password", "display_name": "G"},
        )
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "identity.email_taken"

    def test_invalid_fields_are_each_named(self, client: Client) -> None:
        response = client.post(
            "/api/v1/users", json={"email": "not-an-email", "password": "short", "display_name": ""}
        )
        assert response.status_code == 422
        problem = response.json()
        assert problem["code"] == "request.validation_failed"
        assert {e["field"] for e in problem["errors"]} == {"email", "password", "display_name"}

    def test_missing_and_unknown_fields_are_named(self, client: Client) -> None:
        response = client.post("/api/v1/users", json={"email": "a@example.com", "admin": True})
        assert response.status_code == 422
        fields = {e["field"] for e in response.json()["errors"]}
        assert fields == {"password", "display_name", "admin"}

    def test_a_rejected_registration_creates_no_user(self, client: Client) -> None:
        client.post(
            "/api/v1/users", json={"email": "x@example.com", "password": "short", "display_name": "X"}
        )
        response = client.post("/api/v1/auth/token", json={"email": "x@example.com", "password": "short"})
        assert response.status_code == 401


class TestLogIn:
    def test_credentials_buy_an_access_and_a_refresh_token(self, client: Client) -> None:
        user = register(client)
        response = client.post(
            "/api/v1/auth/token", json={"email": user["email"], "password": user["password"]}
        )
        assert response.status_code == 200
        tokens = response.json()
        assert tokens["token_type"] == "Bearer"
        assert tokens["expires_in"] == 900
        assert tokens["refresh_token"]
        assert response.headers["cache-control"] == "no-store"
        me = client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200
        assert me.json()["id"] == user["id"]

    def test_email_is_matched_whatever_its_case(self, client: Client) -> None:
        register(client, email="Case@Example.com")
        assert log_in(client, "CASE@example.COM")["access_token"]

    def test_unknown_email_and_wrong_password_look_alike(self, client: Client) -> None:
        user = register(client)
        wrong_password = client.post(
            "/api/v1/auth/token", json={"email": user["email"], "password": "nope-nope"}
        )
        unknown = client.post(
            "/api/v1/auth/token", json={"email": "ghost@example.com", "password": "nope-nope"}
        )
        assert wrong_password.status_code == unknown.status_code == 401
        strip = {"correlation_id"}
        assert {k: v for k, v in wrong_password.json().items() if k not in strip} == {
            k: v for k, v in unknown.json().items() if k not in strip
        }

    def test_unknown_email_costs_about_as_much_as_a_wrong_password(self, client: Client) -> None:
        user = register(client)

        def timed(email: str) -> float:
            started = time.perf_counter()
            client.post("/api/v1/auth/token", json={"email": email, "password": "wrong password"})
            return time.perf_counter() - started

        known = median(timed(user["email"]) for _ in range(9))
        unknown = median(timed("nobody@example.com") for _ in range(9))
        # Both paths run one argon2 verification; without the decoy the unknown path is ~10x faster.
        assert 0.5 < unknown / known < 2.0, (known, unknown)


class TestRefresh:
    def test_refresh_rotates_the_refresh_token(self, client: Client) -> None:
        user = register(client)
        first = log_in(client, user["email"])
        response = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert response.status_code == 200
        second = response.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert client.get("/api/v1/users/me", headers=bearer(second["access_token"])).status_code == 200

    def test_reusing_a_rotated_token_revokes_the_whole_family(self, client: Client) -> None:
        user = register(client)
        first = log_in(client, user["email"])
        second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()

        replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert replay.status_code == 401
        assert replay.json()["code"] == "identity.invalid_refresh_token"
        # The thief's replay also locks out the newest token of that family.
        after = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert after.status_code == 401

    def test_other_logins_survive_a_revoked_family(self, client: Client) -> None:
        user = register(client)
        phone = log_in(client, user["email"])
        laptop = log_in(client, user["email"])
        client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
        client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
        response = client.post("/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
        assert response.status_code == 200

    def test_an_unknown_refresh_token_is_refused(self, client: Client) -> None:
        response = client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})
        assert response.status_code == 401

    def test_logout_revokes_the_refresh_token(self, client: Client) -> None:
        user = register(client)
        tokens = log_in(client, user["email"])
        assert (
            client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code
            == 204
        )
        response = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert response.status_code == 401


class TestProfiles:
    def test_me_requires_a_token(self, client: Client) -> None:
        response = client.get("/api/v1/users/me")
        assert response.status_code == 401
        assert response.json()["code"] == "auth.unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_a_public_profile_shows_only_id_and_display_name(self, client: Client) -> None:
        ada = register(client, display_name="Ada")
        grace = register(client, display_name="Grace")
        token = log_in(client, grace["email"])["access_token"]
        response = client.get(f"/api/v1/users/{ada['id']}", headers=bearer(token))
        assert response.status_code == 200
        assert response.json() == {"id": ada["id"], "display_name": "Ada"}

    def test_an_unknown_user_is_404(self, client: Client) -> None:
        user = register(client)
        token = log_in(client, user["email"])["access_token"]
        response = client.get(f"/api/v1/users/{uuid.uuid4()}", headers=bearer(token))
        assert response.status_code == 404
        assert response.json()["code"] == "identity.user_not_found"


def _claims(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "iss": "tessera",
        "aud": "tessera-api",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    return claims


def _signed(claims: dict[str, Any]) -> str:
    """Signed as identity signs, with the key pair the tests' secret stands for."""
    return SigningKeys(SIGNING_KEY).sign(claims)


class TestForgedTokens:
    @pytest.fixture
    def user_id(self, client: Client) -> str:
        return str(register(client)["id"])

    def _me(self, client: Client, token: str) -> int:
        response = client.get("/api/v1/users/me", headers=bearer(token))
        assert (
            response.headers["content-type"].startswith("application/problem+json")
            or response.status_code == 200
        )
        return response.status_code

    def test_a_well_formed_token_is_accepted(self, client: Client, user_id: str) -> None:
        assert self._me(client, _signed(_claims(user_id))) == 200

    def test_alg_none_is_refused(self, client: Client, user_id: str) -> None:
        unsigned = jwt.encode(_claims(user_id), key=None, algorithm="none")
        assert self._me(client, unsigned) == 401

    def test_a_token_signed_with_the_configured_secret_itself_is_refused(
        self, client: Client, user_id: str
    ) -> None:
        """The secret stands for a key pair: holding it as an HMAC key mints nothing (HS256 is refused)."""
        assert self._me(client, jwt.encode(_claims(user_id), SIGNING_KEY, algorithm="HS256")) == 401

    def test_a_token_signed_by_a_key_nobody_published_is_refused(self, client: Client, user_id: str) -> None:
        assert (
            self._me(client, SigningKeys("another-secret-of-sufficient-length-0000").sign(_claims(user_id)))
            == 401
        )

    def test_a_bad_signature_is_refused(self, client: Client, user_id: str) -> None:
        forged = jwt.encode(_claims(user_id), "another-key-of-sufficient-length-000000", algorithm="HS256")
        assert self._me(client, forged) == 401

    def test_an_expired_token_is_refused(self, client: Client, user_id: str) -> None:
        past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
        assert self._me(client, _signed(_claims(user_id, exp=past))) == 401

    def test_a_wrong_issuer_is_refused(self, client: Client, user_id: str) -> None:
        token = _signed(_claims(user_id, iss="evil"))
        assert self._me(client, token) == 401

    def test_a_wrong_audience_is_refused(self, client: Client, user_id: str) -> None:
        token = _signed(_claims(user_id, aud="other-api"))
        assert self._me(client, token) == 401

    def test_garbage_is_refused(self, client: Client) -> None:
        assert self._me(client, "not.a.jwt") == 401

    def test_a_token_for_a_non_uuid_subject_is_refused(self, client: Client) -> None:
        assert self._me(client, _signed(_claims("admin"))) == 401
