"""The tasks module on its own: its real database, with the verified identity fake for identity.

Nothing here imports the identity module; tokens are minted with the kernel's AccessTokens,
exactly as identity would mint them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

import modules.tasks
from app.composition.container import Composition, compose
from app.composition.web import create_app
from app.kernel.config import Settings
from contracts import Principal
from tests.conftest import run_async
from tests.fakes.identity import FakeIdentity


class People:
    """Users known to the fake identity, each with a bearer header for the API."""

    def __init__(self, identity: FakeIdentity, composition: Composition) -> None:
        self._identity = identity
        self._tokens = composition.access_tokens

    def add(self, display_name: str, *, active: bool = True) -> tuple[UUID, dict[str, str]]:
        user_id = self._identity.add_user(display_name, active=active)
        token = self._tokens.issue(Principal(user_id=user_id)).token
        return user_id, {"Authorization": f"Bearer {token}"}


def compose_tasks_alone(settings: Settings, identity: FakeIdentity) -> Composition:
    return compose(settings, catalog=(modules.tasks.module,), external={"identity": identity})


@pytest.fixture
def identity() -> FakeIdentity:
    return FakeIdentity()


@pytest.fixture
def tasks_composition(settings: Settings, identity: FakeIdentity) -> Composition:
    composition = compose_tasks_alone(settings, identity)

    async def migrate() -> None:
        await composition.upgrade()
        await composition.aclose()  # release connections made on this loop; the app makes its own

    run_async(migrate())
    return composition


@pytest.fixture
def tasks_client(tasks_composition: Composition) -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app(tasks_composition)) as client:
        yield client


@pytest.fixture
def people(identity: FakeIdentity, tasks_composition: Composition) -> People:
    return People(identity, tasks_composition)


def create_task(client: TestClient[Any], auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    """POST a task (title "A task" unless given) and return the created task."""
    response = client.post("/api/v1/tasks", json={"title": "A task", **fields}, headers=auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
