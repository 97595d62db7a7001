"""IdentityApi's conformance suite, one suite for four targets: local, strict, remote, fake."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import cast
from uuid import UUID

import pytest
from sqlalchemy import update

from app.composition.container import Composition, compose
from app.kernel.config import Settings
from app.kernel.rpc import strict
from contracts import Principal, is_idempotent
from contracts.identity import IDENTITY, IdentityApi
from modules.identity.service import IdentityService
from modules.identity.tables import users
from tests.contracts.identity_conformance import IdentityApiConformance
from tests.contracts.remote import AsTheEdge, remote_client, serve_group, split_settings
from tests.fakes.identity import FakeIdentity
from tests.servers import free_port


class LocalIdentity:
    """The identity module's own service, over its real (SQLite) database."""

    def __init__(self, composition: Composition, *, strict_mode: bool = False) -> None:
        self._composed = composition.module("identity")
        self.service: IdentityService = self._composed.api()
        self.api: IdentityApi = strict(IDENTITY, self.service) if strict_mode else self.service

    async def given_user(self, display_name: str, *, active: bool = True) -> UUID:
        user = await self.service.register(
            email=f"{uuid.uuid4().hex}@example.com",
            password="correct horse battery",
            display_name=display_name,
        )
        if not active:
            async with self._composed.database.transaction() as connection:
                await connection.execute(update(users).where(users.c.id == user.id).values(active=False))
        return user.id

    async def deactivate(self, user_id: UUID) -> None:
        await self.service.deactivate(Principal(user_id=user_id), user_id)  # as the user themself

    async def make_admin(self, user_id: UUID) -> None:
        await self.service.make_admin((await self.service.account(user_id)).email)


class FakeTarget:
    def __init__(self) -> None:
        self.fake = FakeIdentity()
        self.api: IdentityApi = self.fake

    async def given_user(self, display_name: str, *, active: bool = True) -> UUID:
        return self.fake.add_user(display_name, active=active)

    async def deactivate(self, user_id: UUID) -> None:
        self.fake.deactivate(user_id)

    async def make_admin(self, user_id: UUID) -> None:
        self.fake.make_admin(user_id)


class RemoteIdentity:
    """Identity served by a real server on loopback, called through the remote adapter.

    Users are seeded through a second composition over the same database.
    """

    def __init__(self, seed: LocalIdentity, api: IdentityApi) -> None:
        self._seed = seed
        self.api = api

    async def given_user(self, display_name: str, *, active: bool = True) -> UUID:
        return await self._seed.given_user(display_name, active=active)

    async def deactivate(self, user_id: UUID) -> None:
        await self._seed.deactivate(user_id)

    async def make_admin(self, user_id: UUID) -> None:
        await self._seed.make_admin(user_id)


@pytest.fixture(scope="module")
def identity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    port = free_port()
    settings = split_settings(tmp_path_factory.mktemp("identity-server"), identity=port, tasks=free_port())
    for base in serve_group(settings, "identity", port):
        yield settings, base


@pytest.fixture(params=["local", "strict", "remote", "fake"])
async def target(request: pytest.FixtureRequest, composition: Composition) -> AsyncIterator[object]:
    if request.param == "fake":
        yield FakeTarget()
    elif request.param == "remote":
        settings, base = request.getfixturevalue("identity_server")
        seeding = compose(settings, group="identity")
        async with remote_client(IDENTITY, base, "identity") as api:
            yield RemoteIdentity(LocalIdentity(seeding), cast(IdentityApi, AsTheEdge(IDENTITY, api)))
        await seeding.aclose()
    else:
        yield LocalIdentity(composition, strict_mode=request.param == "strict")


class TestIdentityApi(IdentityApiConformance):
    pass


def test_every_identity_read_is_marked_idempotent() -> None:
    for name in (
        "get_user",
        "get_users",
        "require_active_user",
        "require_administrator",
        "session_revocations",
        "account_record",
        "close_account",
        "reopen_account",
        "erase_account",
    ):
        assert is_idempotent(getattr(IDENTITY.api, name)), name
