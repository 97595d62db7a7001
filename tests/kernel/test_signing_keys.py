"""Users' token keys: Ed25519 pairs derived from secrets, published as a JWK Set, rotated by kid."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
import pytest
from litestar.testing import TestClient

from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import Secret, Settings
from app.kernel.signing_keys import PublishedKeys, SigningKeys
from contracts import Principal
from tests.conftest import bearer, register, run_async
from tests.contracts.remote import serve_group, split_settings
from tests.e2e.flow import eventually
from tests.servers import free_port

OLD, NEW = "old-secret-of-sufficient-length-000000000", "new-secret-of-sufficient-length-000000000"


def _claims(user_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": user_id,
        "iss": "tessera",
        "aud": "tessera-api",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }


def test_a_secret_stands_for_one_key_pair_and_the_set_publishes_every_one() -> None:
    rotated = SigningKeys(NEW, [OLD])
    assert SigningKeys(NEW).current_kid == rotated.current_kid  # derived: the same secret, the same key
    assert SigningKeys(OLD).current_kid != rotated.current_kid
    published = rotated.jwks()["keys"]
    assert {k["kid"] for k in published} == {rotated.current_kid, SigningKeys(OLD).current_kid}
    assert all(
        (k["kty"], k["crv"], k["alg"], k["use"]) == ("OKP", "Ed25519", "EdDSA", "sig") for k in published
    )
    assert all("d" not in k for k in published)  # never the private half
    token = rotated.sign(_claims("someone"))
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": rotated.current_kid, "typ": "JWT"}
    key = {k.key_id: k.key for k in jwt.PyJWKSet.from_dict(rotated.jwks()).keys}[rotated.current_kid]
    assert jwt.decode(token, key, algorithms=["EdDSA"], audience="tessera-api")["sub"] == "someone"


@pytest.fixture
def app_signing_with(migrated: Settings) -> Iterator[Any]:
    opened: list[TestClient[Any]] = []

    def make(current: str, previous: list[str]) -> TestClient[Any]:
        security = msgspec.structs.replace(
            migrated.security,
            signing_key=Secret(current),
            previous_signing_keys=[Secret(p) for p in previous],
        )
        client = TestClient(app=create_app(compose(msgspec.structs.replace(migrated, security=security))))
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_after_a_rotation_tokens_of_the_previous_key_verify_until_it_is_dropped(
    app_signing_with: Any,
) -> None:
    before = app_signing_with(OLD, [])
    user = register(before)
    old_token = SigningKeys(OLD).sign(_claims(user["id"]))
    assert before.get("/api/v1/users/me", headers=bearer(old_token)).status_code == 200

    rotated = app_signing_with(NEW, [OLD])
    assert rotated.get("/api/v1/users/me", headers=bearer(old_token)).status_code == 200
    fresh = rotated.post("/api/v1/auth/token", json={"email": user["email"], "password": user["password"]})
    assert jwt.get_unverified_header(fresh.json()["access_token"])["kid"] == SigningKeys(NEW).current_kid
    kids = {k["kid"] for k in rotated.get("/.well-known/jwks.json").json()["keys"]}
    assert kids == {SigningKeys(NEW).current_kid, SigningKeys(OLD).current_kid}

    dropped = app_signing_with(NEW, [])
    assert dropped.get("/api/v1/users/me", headers=bearer(old_token)).status_code == 401
    assert dropped.get("/api/v1/users/me", headers=bearer(fresh.json()["access_token"])).status_code == 200


def test_a_group_without_identity_cannot_mint_a_users_token(tmp_path: Any) -> None:
    settings = split_settings(tmp_path, identity=free_port(), tasks=free_port())
    tasks_group = compose(settings, group="tasks")
    with pytest.raises(RuntimeError, match="only the process where identity runs"):
        tasks_group.access_tokens.issue(Principal(user_id=uuid.uuid4()))


class _Quick(PublishedKeys):
    MIN_GAP = 0.05


async def test_published_keys_are_fetched_again_when_a_token_names_an_unknown_kid() -> None:
    served = [SigningKeys(OLD).jwks()]
    fetches: asyncio.Queue[int] = asyncio.Queue()

    async def fetch() -> dict[str, Any]:
        fetches.put_nowait(1)
        return served[-1]

    keys = _Quick(fetch, refresh_seconds=3600)
    await keys.start()
    try:
        await asyncio.wait_for(fetches.get(), timeout=5)  # at start
        assert keys.public_key(SigningKeys(OLD).current_kid) is not None
        served.append(SigningKeys(NEW, [OLD]).jwks())  # identity rotated
        assert keys.public_key(SigningKeys(NEW).current_kid) is None  # unknown: asks for a fetch
        await asyncio.wait_for(fetches.get(), timeout=5)  # long before the hour of refresh_seconds
        assert keys.public_key(SigningKeys(NEW).current_kid) is not None
        assert fetches.empty()  # once for the new kid, not once per token
    finally:
        await keys.stop()


def test_a_group_is_not_ready_until_it_knows_identitys_keys(tmp_path: Any) -> None:
    identity_port = free_port()
    settings = split_settings(tmp_path, identity=identity_port, tasks=free_port())

    async def migrate_tasks() -> None:
        composition = compose(settings, group="tasks")
        await composition.upgrade()
        await composition.aclose()

    run_async(migrate_tasks())
    with TestClient(app=create_app(compose(settings, group="tasks"))) as tasks:
        waiting = tasks.get("/health/ready")  # identity is not running yet
        assert waiting.status_code == 503
        assert waiting.json()["errors"] == [
            {"field": "token_keys", "message": "identity's public keys are not fetched yet"}
        ]
        for _ in serve_group(settings, "identity", identity_port):
            eventually(
                lambda: tasks.get("/health/ready").status_code == 200 or None,
                within=10.0,
                what="the tasks group ready once identity answers",
            )
