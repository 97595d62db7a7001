"""IdentityApi's conformance suite against each implementation: the module itself and the fake."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import pytest
from sqlalchemy import update

from app.container import Composition
from app.kernel.rpc import strict
from contracts import is_idempotent
from contracts.identity import IDENTITY, IdentityApi
from modules.identity.service import IdentityService
from modules.identity.tables import users
from tests.contracts.identity_conformance import IdentityApiConformance
from tests.fakes.identity import FakeIdentity


class LocalIdentity:
    """The identity module's own service, over its real (SQLite) database."""

    def __init__(self, composition: Composition, *, strict_mode: bool = False) -> None:
        self._composed = composition.module("identity")
        self.service: IdentityService = self._composed.container.api()
        self.api: IdentityApi = strict(IDENTITY, self.service) if strict_mode else self.service

    async def given_user(self, display_name: str, *, active: bool = True) -> UUID:
        user = await self.service.register(
            email=f"{uuid.uuid4().hex}@example.com",
            password="correct horse battery",
            display_name=display_name,
        )
        if not active:
            async with self._composed.database.transaction() as session:
                await session.execute(update(users).where(users.c.id == user.id).values(active=False))
        return user.id


class FakeTarget:
    def __init__(self) -> None:
        self.fake = FakeIdentity()
        self.api: IdentityApi = self.fake

    async def given_user(self, display_name: str, *, active: bool = True) -> UUID:
        return self.fake.add_user(display_name, active=active)


@pytest.fixture(params=["local", "fake"])
async def target(request: pytest.FixtureRequest, composition: Composition) -> AsyncIterator[object]:
    return LocalIdentity(composition) if request.param == "local" else FakeTarget()


class TestIdentityApi(IdentityApiConformance):
    pass


def test_every_identity_read_is_marked_idempotent() -> None:
    for name in ("get_user", "get_users", "require_active_user"):
        assert is_idempotent(getattr(IDENTITY.api, name)), name
